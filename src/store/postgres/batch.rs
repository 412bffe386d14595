//! Group commit for the common exchange (a question and its answers, nothing the other nodes
//! must hear of): exchanges waiting at the same moment are written by one statement and one
//! commit. PostgreSQL shares WAL flushes between concurrent commits itself, but each
//! transaction still costs it about as much CPU as a small statement; under a sale-night load
//! that, not the disk, is what limits a node.
//!
//! One task gathers what is waiting while earlier batches are in flight (a few at once) and
//! answers each exchange once its batch has committed. An idle node writes a lone exchange at
//! once. A conversation appears at most once in a batch, so its state is never written twice
//! by one statement. Each exchange stays all or nothing: the only way one fails alone is a
//! missing conversation, which writes none of its rows.

use std::collections::HashSet;
use std::sync::Arc;

use deadpool_postgres::Pool;
use tokio::sync::{Semaphore, mpsc, oneshot};

use super::conversations::{first_answer, missing, write_exchanges};
use super::unavailable;
use crate::store::{Exchange, Recorded, StoreError};

/// Exchanges waiting for a batch; callers wait when it is full.
const QUEUE_CAPACITY: usize = 4096;
/// Most exchanges in one statement, to bound a batch's latency and size.
const MAX_BATCH: usize = 256;
/// Batches in flight at once (each holds a pooled connection).
const IN_FLIGHT: usize = 4;

struct Job {
    exchange: Exchange,
    done: oneshot::Sender<Result<Recorded, StoreError>>,
}

/// Where exchanges are sent to be batched.
pub struct Batcher {
    jobs: mpsc::Sender<Job>,
}

impl Batcher {
    pub fn start(pool: Pool) -> Batcher {
        let (jobs, queue) = mpsc::channel(QUEUE_CAPACITY);
        tokio::spawn(gather(pool, queue));
        Batcher { jobs }
    }

    /// Writes `exchange` in the next batch; returns once that batch committed.
    pub async fn record(&self, exchange: Exchange) -> Result<Recorded, StoreError> {
        let (done, answer) = oneshot::channel();
        self.jobs
            .send(Job { exchange, done })
            .await
            .map_err(|_| StoreError::Unavailable("the batch writer stopped".into()))?;
        answer
            .await
            .map_err(|_| StoreError::Unavailable("the batch writer stopped".into()))?
    }
}

async fn gather(pool: Pool, mut queue: mpsc::Receiver<Job>) {
    let in_flight = Arc::new(Semaphore::new(IN_FLIGHT));
    // Exchanges of a conversation already in the batch being gathered wait for the next.
    let mut held_back: Vec<Job> = Vec::new();
    loop {
        let Ok(permit) = in_flight.clone().acquire_owned().await else {
            return;
        };
        let mut batch: Vec<Job> = Vec::new();
        let mut conversations = HashSet::new();
        for job in std::mem::take(&mut held_back) {
            take(job, &mut batch, &mut conversations, &mut held_back);
        }
        if batch.is_empty() {
            match queue.recv().await {
                Some(job) => take(job, &mut batch, &mut conversations, &mut held_back),
                None => return,
            }
        }
        while batch.len() < MAX_BATCH {
            match queue.try_recv() {
                Ok(job) => take(job, &mut batch, &mut conversations, &mut held_back),
                Err(_) => break,
            }
        }
        let pool = pool.clone();
        tokio::spawn(async move {
            write(&pool, batch).await;
            drop(permit);
        });
    }
}

/// Adds `job` to the batch, or holds it back when its conversation is already there.
fn take(
    job: Job,
    batch: &mut Vec<Job>,
    conversations: &mut HashSet<String>,
    held_back: &mut Vec<Job>,
) {
    if conversations.insert(job.exchange.conversation.clone()) {
        batch.push(job);
    } else {
        held_back.push(job);
    }
}

async fn write(pool: &Pool, batch: Vec<Job>) {
    let client = match pool.get().await {
        Ok(client) => client,
        Err(e) => {
            let e = unavailable(e);
            for job in batch {
                let _ = job.done.send(Err(e.clone()));
            }
            return;
        }
    };
    let exchanges: Vec<&Exchange> = batch.iter().map(|j| &j.exchange).collect();
    let written = write_exchanges(&client, &exchanges).await;
    for job in batch {
        let conversation = &job.exchange.conversation;
        let result = match &written {
            Ok(written) if written.new.contains(conversation) => Ok(Recorded::New),
            // Rare: only a resend reads what its first got.
            Ok(written) if written.resent.contains(conversation) => {
                first_answer(&client, &job.exchange).await
            }
            Ok(_) => Err(missing(&job.exchange)),
            Err(e) => Err(e.clone()),
        };
        let _ = job.done.send(result);
    }
}
