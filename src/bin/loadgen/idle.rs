//! Idle connections: open many buyers, hold them without a word, and see what each costs
//! the server in resident memory.

use futures_util::{StreamExt, stream};
use std::time::Duration;
use tokio_tungstenite::tungstenite::Message;

use crate::args::Args;
use crate::report::IdleReport;
use crate::server::{Server, ServerKind};
use crate::socket::{Socket, buyer_url, connect, socket_config};

/// Connections being opened at once; more would overflow the listen backlog.
const OPENING_AT_ONCE: usize = 200;

pub async fn hold(args: &Args, server: &Server, count: usize) -> anyhow::Result<IdleReport> {
    // Let start-up work (index building, the first database writes) settle first.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let rss_before = server.rss_kib();
    let config = socket_config(args.socket_buffer_bytes, args.max_frame_bytes);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let run_id = format!("idle{:x}{nanos:x}", std::process::id());
    let welcomed = server.kind == ServerKind::Service;
    let started = std::time::Instant::now();
    let results: Vec<Result<Socket, String>> = stream::iter(0..count)
        .map(|i| {
            let url = buyer_url(
                &server.urls[i % server.urls.len()],
                &args.shop,
                &format!("{run_id}-{i}"),
            );
            async move {
                let mut socket = connect(&url, config).await?;
                if welcomed {
                    // The session is set up once its first frame (the welcome) arrives.
                    match tokio::time::timeout(Duration::from_secs(30), socket.next()).await {
                        Ok(Some(Ok(Message::Text(_)))) => {}
                        other => return Err(format!("no welcome: {other:?}")),
                    }
                }
                Ok(socket)
            }
        })
        .buffer_unordered(OPENING_AT_ONCE)
        .collect()
        .await;
    let seconds_to_open = started.elapsed().as_secs_f64();
    let mut sockets = Vec::with_capacity(count);
    let mut failed = 0;
    let mut first_error = None;
    for result in results {
        match result {
            Ok(socket) => sockets.push(socket),
            Err(e) => {
                failed += 1;
                first_error.get_or_insert(e);
            }
        }
    }
    tokio::time::sleep(Duration::from_secs_f64(args.idle_settle)).await;
    let rss_after = server.rss_kib();
    let opened = sockets.len();
    let per_connection = match (rss_before, rss_after) {
        (Some(b), Some(a)) if opened > 0 => Some(a.saturating_sub(b) as f64 / opened as f64),
        _ => None,
    };
    drop(sockets);
    Ok(IdleReport {
        server: match server.kind {
            ServerKind::Service => "service",
            ServerKind::Echo => "echo",
        },
        connections: count,
        opened,
        failed,
        first_error,
        rss_before_kib: rss_before,
        rss_after_kib: rss_after,
        rss_per_connection_kib: per_connection,
        seconds_to_open,
    })
}
