//! Accepting TCP connections and serving HTTP/1.1 on each, websocket upgrades included.
//!
//! `axum::serve` gives hyper no timer, which leaves hyper's header read timeout off: a client
//! that opens a connection and sends part of a request, or nothing at all, would hold a
//! socket and a task for ever, and enough of them would use up the file descriptors real
//! buyers need (slowloris). Here every connection must send its whole request head within
//! `Limits::header_read_timeout`, and a keep-alive connection that sends no next request is
//! closed after as long. An upgraded websocket leaves hyper and is bounded by pings instead.

use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower_service::Service;

/// Serves `router` on `listener` until `stopping` is cancelled, then stops accepting, lets
/// each HTTP connection finish its request, and returns once they are all closed.
pub async fn serve_http(
    listener: TcpListener,
    router: Router,
    header_read_timeout: Duration,
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
        // Chat frames are small and a reply often comes as two (a notice, then the answer):
        // without TCP_NODELAY the second waits for the client's delayed ACK, up to 40 ms.
        if let Err(e) = stream.set_nodelay(true) {
            tracing::debug!(error = %e, "cannot set TCP_NODELAY");
        }
        connections.spawn(serve_connection(
            http.clone(),
            stream,
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
    stream: TcpStream,
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

fn is_connection_error(e: &std::io::Error) -> bool {
    use std::io::ErrorKind;
    matches!(
        e.kind(),
        ErrorKind::ConnectionRefused | ErrorKind::ConnectionAborted | ErrorKind::ConnectionReset
    )
}
