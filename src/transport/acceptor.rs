//! Accepting TCP connections and serving HTTP/1.1 on each, websocket upgrades included.
//!
//! `axum::serve` gives hyper no timer, which leaves hyper's header read timeout off: a client
//! that opens a connection and sends part of a request, or nothing at all, would hold a
//! socket and a task for ever, and enough of them would use up the file descriptors real
//! buyers need (slowloris). Here every connection must send its whole request head within
//! `Limits::header_read_timeout`, and a keep-alive connection that sends no next request is
//! closed after as long. An upgraded websocket leaves hyper and is bounded by pings instead.
//!
//! Every accepted connection also takes a place of the TCP caps (`max_http_connections`, and
//! per socket address `max_http_connections_per_address`) before anything is read from it:
//! without them one address could hold thousands of half-sent requests or idle keep-alives,
//! each a file descriptor, within the header timeout. Past a cap the connection gets a bare
//! 503 and is closed at once.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower_service::Service;

use super::slots::{self, Slot, Slots};

/// Serves `router` on `listener` until `stopping` is cancelled, then stops accepting, lets
/// each HTTP connection finish its request, and returns once they are all closed.
pub async fn serve_http(
    listener: TcpListener,
    router: Router,
    header_read_timeout: Duration,
    places: Arc<Slots>,
    stopping: CancellationToken,
) -> std::io::Result<()> {
    let connections = TaskTracker::new();
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(header_read_timeout);
    loop {
        let (stream, remote) = tokio::select! {
            _ = stopping.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) if is_connection_error(&e) => continue,
                Err(e) => {
                    // Out of file descriptors, most likely: wait for some to be given back
                    // rather than spin.
                    tracing::warn!(error = %e, "cannot accept a connection");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let place = match places.take(remote.ip()) {
            Ok(place) => place,
            Err(full) => {
                refuse(stream, full);
                continue;
            }
        };
        // Chat frames are small and a reply often comes as two (a notice, then the answer):
        // without TCP_NODELAY the second waits for the client's delayed ACK, up to 40 ms.
        if let Err(e) = stream.set_nodelay(true) {
            tracing::debug!(error = %e, "cannot set TCP_NODELAY");
        }
        connections.spawn(serve_connection(
            http.clone(),
            Counted {
                stream,
                _place: place,
            },
            remote,
            router.clone(),
            stopping.clone(),
        ));
    }
    drop(listener);
    connections.close();
    connections.wait().await;
    Ok(())
}

async fn serve_connection(
    http: hyper::server::conn::http1::Builder,
    stream: Counted,
    remote: SocketAddr,
    router: Router,
    stopping: CancellationToken,
) {
    let service = hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
        // What `into_make_service_with_connect_info` would do: handlers see the client.
        request.extensions_mut().insert(ConnectInfo(remote));
        router.clone().call(request.map(axum::body::Body::new))
    });
    let connection = http
        .serve_connection(TokioIo::new(stream), service)
        .with_upgrades();
    tokio::pin!(connection);
    let result = tokio::select! {
        result = connection.as_mut() => result,
        _ = stopping.cancelled() => {
            connection.as_mut().graceful_shutdown();
            connection.await
        }
    };
    if let Err(e) = result {
        tracing::debug!(error = %e, %remote, "an HTTP connection ended with an error");
    }
}

/// Answers a connection past the TCP caps with a bare 503 and closes it, reading nothing. The
/// answer is one small non-blocking write into an empty socket buffer, so it never waits; if
/// even that cannot be sent, the client just sees the connection closed. (Through the std
/// socket: tokio's `try_write` refuses until its reactor has seen the socket writable.)
fn refuse(stream: TcpStream, full: slots::Full) {
    use std::io::Write;
    let body = format!("{}; please try again shortly\n", full.reason());
    let response = format!(
        "HTTP/1.1 503 Service Unavailable\r\nRetry-After: {}\r\nContent-Type: text/plain; \
         charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        slots::RETRY_AFTER_SECONDS,
        body.len()
    );
    if let Ok(mut stream) = stream.into_std() {
        let _ = stream.write(response.as_bytes());
    }
    tracing::debug!(
        reason = full.reason(),
        "refused a connection past the TCP caps"
    );
}

/// An accepted connection with its place of the TCP caps. The place goes wherever the socket
/// goes: an upgraded websocket carries this stream out of hyper, so it keeps its TCP place
/// for as long as it lives (besides its place among buyers or agents, which is why the TCP
/// caps must be above the websocket caps), and the place is given back when the socket is
/// closed, however that happens.
struct Counted {
    stream: TcpStream,
    _place: Slot,
}

impl AsyncRead for Counted {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for Counted {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }
}

fn is_connection_error(e: &std::io::Error) -> bool {
    use std::io::ErrorKind;
    matches!(
        e.kind(),
        ErrorKind::ConnectionRefused | ErrorKind::ConnectionAborted | ErrorKind::ConnectionReset
    )
}
