//! The loadgen's websocket client plumbing, shared by the buyers, the agent console and the
//! idle connections: the socket type, its small-buffer settings, connecting, and the buyer
//! endpoint's URL.

use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

pub type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// The buyer side's socket settings: small buffers, as the service's.
pub fn socket_config(buffer: usize, max_frame: usize) -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(buffer)
        .write_buffer_size(buffer)
        .max_write_buffer_size(buffer + 2 * max_frame)
        .max_message_size(Some(max_frame * 4))
        .max_frame_size(Some(max_frame * 4))
}

pub async fn connect(url: &str, config: WebSocketConfig) -> Result<Socket, String> {
    match tokio_tungstenite::connect_async_with_config(url, Some(config), true).await {
        Ok((socket, _)) => Ok(socket),
        Err(e) => Err(e.to_string()),
    }
}

pub fn buyer_url(base: &str, shop: &str, buyer: &str) -> String {
    format!("{base}/ws/buyer?shop={shop}&buyer={buyer}")
}
