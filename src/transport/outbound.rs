//! What buyer and agent connections share: a writer task draining a bounded queue into the
//! socket, the frames every connection sends (errors, close), and the connection gauge.
//!
//! A client that stops reading fills its queue; a frame that waits longer than
//! `Limits::outbound_wait` for room drops the client instead of growing memory, and a writer
//! still stuck on such a client when its session ends is aborted, which closes the socket.

use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, WebSocket, close_code};
use futures_util::SinkExt;
use futures_util::stream::SplitSink;
use serde_json::Value;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::wire::{ErrorCode, FrameError, ServerFrame};
use crate::telemetry::Metrics;

/// How long an ended session lets its writer send what is still queued (the close frame
/// included) before aborting it.
const WRITER_DRAIN: Duration = Duration::from_secs(2);

/// Why the connection should stop.
pub struct Closed;

/// Counts a connection in the `connections` gauge until dropped, however the session ends.
pub struct ConnectionGuard(prometheus::IntGauge);

impl ConnectionGuard {
    pub fn new(metrics: &Metrics, side: &str) -> ConnectionGuard {
        let gauge = metrics.connections.with_label_values(&[side]);
        gauge.inc();
        ConnectionGuard(gauge)
    }
}

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// The sending half of a connection.
pub struct Outbound {
    frames: mpsc::Sender<Message>,
    /// How long a frame may wait for room before the client counts as not reading.
    wait: Duration,
    metrics: Metrics,
}

impl Outbound {
    /// Starts the writer task for `sink`; it ends once the queue is drained and closed (or
    /// after a close frame). Pass the handle to [`finish`] after dropping the `Outbound`.
    pub fn start(
        sink: SplitSink<WebSocket, Message>,
        capacity: usize,
        wait: Duration,
        metrics: Metrics,
    ) -> (Outbound, JoinHandle<()>) {
        let (frames, queue) = mpsc::channel(capacity);
        let writer = tokio::spawn(write_frames(sink, queue));
        (
            Outbound {
                frames,
                wait,
                metrics,
            },
            writer,
        )
    }

    /// Queues a frame for the writer; a client whose queue stays full is dropped.
    pub async fn queue(&self, message: Message) -> Result<(), Closed> {
        match self.frames.send_timeout(message, self.wait).await {
            Ok(()) => Ok(()),
            Err(mpsc::error::SendTimeoutError::Timeout(_)) => {
                tracing::info!("dropping a client that does not read its socket");
                self.metrics.slow_clients_dropped.inc();
                Err(Closed)
            }
            Err(mpsc::error::SendTimeoutError::Closed(_)) => Err(Closed),
        }
    }

    pub async fn send_error(&self, code: ErrorCode, message: &str) -> Result<(), Closed> {
        self.send_error_to(code, message, None).await
    }

    /// An error that answers the client's message `in_reply_to` (its `id`), so the client
    /// knows which message to send again.
    pub async fn send_error_to(
        &self,
        code: ErrorCode,
        message: &str,
        in_reply_to: Option<&Value>,
    ) -> Result<(), Closed> {
        self.metrics
            .errors
            .with_label_values(&[code.as_str()])
            .inc();
        let frame = ServerFrame::Error {
            code,
            message,
            in_reply_to,
        };
        self.queue(Message::text(frame.to_json())).await
    }

    /// A client's frame as parsed, if it may be acted on: a mistake, or a frame over the
    /// client's rate (`within_rate` takes a token, or says there is none), is answered with
    /// its error frame instead and gives `None`. Both answer the frame's id (`id_of`), when
    /// it has one.
    pub async fn admit<T>(
        &self,
        parsed: Result<T, FrameError>,
        within_rate: impl FnOnce() -> bool,
        too_many: &str,
        id_of: impl FnOnce(&T) -> Option<&Value>,
    ) -> Result<Option<T>, Closed> {
        let frame = match parsed {
            Ok(frame) => frame,
            Err(e) => {
                let id = e.in_reply_to.as_ref();
                return self
                    .send_error_to(e.code, &e.message, id)
                    .await
                    .map(|()| None);
            }
        };
        if !within_rate() {
            self.send_error_to(ErrorCode::RateLimited, too_many, id_of(&frame))
                .await?;
            return Ok(None);
        }
        Ok(Some(frame))
    }

    pub async fn close(&self, code: u16, reason: &str) {
        let frame = CloseFrame {
            code,
            reason: reason.into(),
        };
        let _ = self.queue(Message::Close(Some(frame))).await;
    }

    /// Closes the connection after the client broke the websocket rules, with the code that
    /// says which: 1009 for a frame or message over `max_frame_bytes`, 1007 for a text frame
    /// that is not UTF-8, 1002 for anything else against the protocol. A connection that
    /// simply failed (reset, gone) needs no answer.
    pub async fn close_after(&self, error: axum::Error, max_frame_bytes: usize) {
        use tokio_tungstenite::tungstenite::Error as WsError;
        let inner = error.into_inner();
        match inner.downcast_ref::<WsError>() {
            Some(WsError::Capacity(e)) => {
                tracing::info!(error = %e, "closing a connection that sent an oversized frame");
                self.metrics
                    .errors
                    .with_label_values(&[ErrorCode::TooLarge.as_str()])
                    .inc();
                let reason = format!("frames are limited to {max_frame_bytes} bytes");
                self.close(close_code::SIZE, &reason).await;
            }
            Some(WsError::Utf8(e)) => {
                tracing::info!(error = %e, "closing a connection that sent a text frame that is not UTF-8");
                self.close(close_code::INVALID, "text frames must be UTF-8")
                    .await;
            }
            Some(WsError::Protocol(e)) => {
                tracing::info!(error = %e, "closing a connection that broke the protocol");
                self.close(close_code::PROTOCOL, "websocket protocol error")
                    .await;
            }
            _ => tracing::debug!(error = %inner, "the connection failed"),
        }
    }
}

/// Lets an ended session's writer send what is queued, then aborts it if the client still
/// does not take it: dropping the socket's last half closes it. Returns once the writer is
/// gone, so the connection is not counted as ended while its socket is still open.
pub async fn finish(mut writer: JoinHandle<()>) {
    if tokio::time::timeout(WRITER_DRAIN, &mut writer)
        .await
        .is_err()
    {
        tracing::debug!("aborting the writer of a client that does not read");
        writer.abort();
        let _ = writer.await;
    }
}

async fn write_frames(mut sink: SplitSink<WebSocket, Message>, mut queue: mpsc::Receiver<Message>) {
    while let Some(message) = queue.recv().await {
        let closing = matches!(message, Message::Close(_));
        if sink.send(message).await.is_err() || closing {
            break;
        }
    }
    let _ = sink.close().await;
}
