//! The echo baseline: a bare tokio-tungstenite server with the service's socket settings that
//! answers each text frame with a reply-shaped frame carrying its `in_reply_to`. What the
//! service does beyond this (matching, the store, the desk) is what the ratio measures.

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

pub fn serve(buffer: usize, max_frame: usize) -> anyhow::Result<()> {
    // The same runtime as the service's: tokio's default multi-threaded one.
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        println!("listening on {}", listener.local_addr()?);
        let config = WebSocketConfig::default()
            .read_buffer_size(buffer)
            .write_buffer_size(buffer)
            .max_write_buffer_size(buffer + 2 * max_frame)
            .max_message_size(Some(max_frame))
            .max_frame_size(Some(max_frame));
        loop {
            let (stream, _) = listener.accept().await?;
            tokio::spawn(connection(stream, config));
        }
    })
}

async fn connection(stream: TcpStream, config: WebSocketConfig) {
    let Ok(mut socket) = tokio_tungstenite::accept_async_with_config(stream, Some(config)).await
    else {
        return;
    };
    while let Some(Ok(message)) = socket.next().await {
        match message {
            Message::Text(text) => {
                let Ok(value) = serde_json::from_str::<Value>(&text) else {
                    continue;
                };
                let at = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
                let reply = json!({
                    "type": "reply",
                    "kind": "answer",
                    "intent": "echo",
                    "text": value["text"],
                    "in_reply_to": value["id"],
                    "conversation": "echo",
                    "at": at,
                });
                if socket.send(Message::text(reply.to_string())).await.is_err() {
                    break;
                }
            }
            Message::Close(_) => break,
            _ => {}
        }
    }
}
