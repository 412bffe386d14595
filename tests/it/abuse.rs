//! The bad-input battery: what a broken or hostile client can do to a connection (binary
//! frames, invalid UTF-8, huge frames, floods, never reading, half-open upgrades, reconnect
//! storms), and proof that the service answers or bounds each one and keeps serving everyone
//! else. `limits.rs` covers the everyday error codes; these go further.
//!
//! Some clients here are written by hand over a `TcpStream` (`RawSocket`), because
//! tungstenite refuses to send what they send.

use std::time::{Duration, Instant};

use autoresponder::config::Limits;
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;

use crate::helpers::{Client, PATIENCE, Setup, TestApp};

/// Websocket opcodes.
const TEXT: u8 = 0x1;
const CONTINUATION: u8 = 0x0;
const CLOSE: u8 = 0x8;

/// A websocket client written by hand, for frames no library sends.
struct RawSocket {
    stream: TcpStream,
    /// Bytes read past the end of the last frame (or of the upgrade response).
    buffered: Vec<u8>,
}

/// The upgrade request of a websocket client, for `path`.
fn upgrade_request(path: &str) -> String {
    format!(
        "GET {path} HTTP/1.1\r\nHost: test\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
}

/// A client frame: masked, as RFC 6455 requires of clients.
fn client_frame(opcode: u8, payload: &[u8], fin: bool) -> Vec<u8> {
    let mut frame = vec![if fin { 0x80 } else { 0 } | opcode];
    match payload.len() {
        n if n < 126 => frame.push(0x80 | n as u8),
        n if n <= usize::from(u16::MAX) => {
            frame.push(0x80 | 126);
            frame.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            frame.push(0x80 | 127);
            frame.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    let mask = [0x37, 0xfa, 0x21, 0x3d];
    frame.extend_from_slice(&mask);
    frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    frame
}

impl RawSocket {
    /// Upgrades `path` by hand and checks the server switched protocols.
    async fn upgrade(app: &TestApp, path: &str) -> RawSocket {
        let stream = TcpStream::connect(app.address).await.unwrap();
        RawSocket::upgrade_over(stream, path).await
    }

    async fn upgrade_over(stream: TcpStream, path: &str) -> RawSocket {
        match RawSocket::try_upgrade_over(stream, path).await {
            Ok(socket) => socket,
            Err(status) => panic!("the upgrade was refused with {status}"),
        }
    }

    /// Upgrades by hand over `stream`, or returns the HTTP status of the refusal.
    async fn try_upgrade_over(mut stream: TcpStream, path: &str) -> Result<RawSocket, u16> {
        stream
            .write_all(upgrade_request(path).as_bytes())
            .await
            .unwrap();
        let mut received = Vec::new();
        let end = loop {
            if let Some(end) = received.windows(4).position(|w| w == b"\r\n\r\n") {
                break end + 4;
            }
            let mut chunk = [0u8; 1024];
            let n = tokio::time::timeout(PATIENCE, stream.read(&mut chunk))
                .await
                .expect("the upgrade is answered")
                .unwrap();
            assert!(n > 0, "the server closed during the upgrade");
            received.extend_from_slice(&chunk[..n]);
        };
        let head = String::from_utf8_lossy(&received[..end]);
        let status = head[9..12].parse().unwrap();
        if status != 101 {
            return Err(status);
        }
        Ok(RawSocket {
            stream,
            buffered: received[end..].to_vec(),
        })
    }

    async fn send(&mut self, opcode: u8, payload: &[u8], fin: bool) {
        self.stream
            .write_all(&client_frame(opcode, payload, fin))
            .await
            .unwrap();
    }

    /// Reads until `buffered` holds `n` bytes; false at end of stream.
    async fn fill(&mut self, n: usize) -> bool {
        while self.buffered.len() < n {
            let mut chunk = [0u8; 8192];
            let read = tokio::time::timeout(PATIENCE, self.stream.read(&mut chunk))
                .await
                .expect("the server sends or closes in time");
            match read {
                Ok(0) | Err(_) => return false,
                Ok(read) => self.buffered.extend_from_slice(&chunk[..read]),
            }
        }
        true
    }

    /// The next server frame (opcode and payload), or `None` once the connection is gone.
    async fn frame(&mut self) -> Option<(u8, Vec<u8>)> {
        if !self.fill(2).await {
            return None;
        }
        let opcode = self.buffered[0] & 0x0f;
        let (length, header) = match self.buffered[1] & 0x7f {
            126 => {
                self.fill(4).await.then_some(())?;
                (
                    usize::from(u16::from_be_bytes([self.buffered[2], self.buffered[3]])),
                    4,
                )
            }
            127 => {
                self.fill(10).await.then_some(())?;
                let bytes: [u8; 8] = self.buffered[2..10].try_into().unwrap();
                (u64::from_be_bytes(bytes) as usize, 10)
            }
            n => (usize::from(n), 2),
        };
        self.fill(header + length).await.then_some(())?;
        let payload = self.buffered[header..header + length].to_vec();
        self.buffered.drain(..header + length);
        Some((opcode, payload))
    }

    /// The next JSON frame, skipping pings.
    async fn json(&mut self) -> Value {
        loop {
            match self.frame().await {
                Some((TEXT, payload)) => return serde_json::from_slice(&payload).unwrap(),
                Some((CLOSE, payload)) => panic!("closed: {payload:?}"),
                Some(_) => continue,
                None => panic!("the connection ended"),
            }
        }
    }

    /// The code of the close frame the server ends with, skipping other frames; `None` if
    /// the connection ends without one.
    async fn close_code(&mut self) -> Option<u16> {
        loop {
            match self.frame().await? {
                (CLOSE, payload) if payload.len() >= 2 => {
                    return Some(u16::from_be_bytes([payload[0], payload[1]]));
                }
                (CLOSE, _) => return None,
                _ => continue,
            }
        }
    }
}

/// The value of one series in `/metrics` (`name{labels}` exactly as rendered), if present.
async fn metric(app: &TestApp, series: &str) -> Option<f64> {
    let (status, body) = app.http_get("/metrics").await;
    assert_eq!(status, 200);
    body.lines()
        .filter_map(|line| line.rsplit_once(' '))
        .find(|(name, _)| *name == series)
        .map(|(_, value)| value.parse().unwrap())
}

/// Waits until `series` reads `value` (the server updates it as sessions end), guarded
/// against a hang.
async fn metric_reaches(app: &TestApp, series: &str, value: f64) {
    let waited = tokio::time::timeout(PATIENCE, async {
        loop {
            if metric(app, series).await.unwrap_or(0.0) == value {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    let now = metric(app, series).await;
    assert!(waited.is_ok(), "{series} stayed at {now:?}, not {value}");
}

/// Asks a question that has a keyword answer and checks it is answered; returns how long.
async fn answered(buyer: &mut Client, id: &str) -> Duration {
    let started = Instant::now();
    let replies = buyer.ask("包邮吗", id, "answer").await;
    assert_eq!(replies.last().unwrap()["intent"], "free_shipping");
    started.elapsed()
}

/// The median and the largest of some latencies, for the test output.
fn spread(mut latencies: Vec<Duration>) -> (Duration, Duration) {
    latencies.sort();
    (latencies[latencies.len() / 2], *latencies.last().unwrap())
}

#[tokio::test]
async fn binary_frames_get_bad_request_on_both_sides_and_the_connections_stay_usable() {
    let app = TestApp::launch(Setup::staffed("")).await;
    let mut buyer = app.buyer("bin-buyer").await.welcomed().await;
    // A valid message in a binary frame is still refused: only text frames carry JSON.
    let message = json!({"type": "message", "text": "包邮吗", "id": "b"}).to_string();
    for payload in [message.into_bytes(), Vec::new(), vec![0u8; 4096]] {
        buyer.send_raw(Message::binary(payload)).await;
        let frame = buyer.frame().await;
        assert_eq!(
            (&frame["type"], &frame["code"]),
            (&"error".into(), &"bad_request".into()),
            "{frame}"
        );
    }
    answered(&mut buyer, "after-binary").await;

    let mut agent = app.agent("mei").await;
    agent.send_raw(Message::binary(vec![0xde, 0xad])).await;
    let frame = agent.next_of("error").await;
    assert_eq!(frame["code"], "bad_request", "{frame}");
    // The console still works: its next frame is served.
    agent
        .send_json(json!({"type": "claim", "handoff": "no-such-case"}))
        .await;
    let frame = agent.next_of("error").await;
    assert_eq!(frame["code"], "not_found", "{frame}");
    app.shutdown().await;
}

#[tokio::test]
async fn invalid_utf8_is_closed_with_1007_and_the_service_keeps_serving() {
    let app = TestApp::launch(Setup::staffed("")).await;
    let mut bystander = app.buyer("utf8-bystander").await.welcomed().await;

    let invalid: [&[u8]; 3] = [
        b"{\"type\":\"message\",\"text\":\"\xff\xfe\"}",
        // A character cut in half at the end of the frame.
        &"{\"type\":\"message\",\"text\":\"在".as_bytes()[..28],
        // Overlong encoding of '/', which a lax decoder would accept.
        b"\xc0\xaf",
    ];
    for (i, payload) in invalid.iter().enumerate() {
        let mut buyer = RawSocket::upgrade(&app, &format!("/ws/buyer?buyer=utf8-{i}")).await;
        assert_eq!(buyer.json().await["kind"], "welcome");
        buyer.send(TEXT, payload, true).await;
        assert_eq!(buyer.close_code().await, Some(1007), "payload {i}");
    }
    // Split over two fragments, each invalid only together with the other.
    let mut buyer = RawSocket::upgrade(&app, "/ws/buyer?buyer=utf8-fragments").await;
    assert_eq!(buyer.json().await["kind"], "welcome");
    let text = "{\"type\":\"message\",\"text\":\"在\"}".as_bytes();
    buyer.send(TEXT, &text[..28], false).await;
    buyer.send(CONTINUATION, b"\xff\"}", true).await;
    assert_eq!(buyer.close_code().await, Some(1007));

    let mut agent = RawSocket::upgrade(&app, "/ws/agent?token=token-mei").await;
    assert_eq!(agent.json().await["type"], "hello");
    agent.send(TEXT, b"{\"type\":\"\xff\"}", true).await;
    assert_eq!(agent.close_code().await, Some(1007), "agent console");

    // Everyone else is served as before.
    answered(&mut bystander, "still-here").await;
    let mut newcomer = app.buyer("utf8-newcomer").await.welcomed().await;
    answered(&mut newcomer, "new").await;
    metric_reaches(&app, "autoresponder_connections{side=\"buyer\"}", 2.0).await;
    metric_reaches(&app, "autoresponder_connections{side=\"agent\"}", 0.0).await;
    app.shutdown().await;
}

#[tokio::test]
async fn a_huge_frame_is_refused_from_its_header_and_nothing_of_it_is_kept() {
    let app = TestApp::start().await;
    let mut bystander = app.buyer("huge-bystander").await.welcomed().await;
    let limit = Limits::default().max_frame_bytes;

    // A frame header announcing 1 MiB followed by only 1 KiB of it: the server closes with
    // 1009 at once, without waiting for (or buffering) the rest, which never comes.
    let mut buyer = RawSocket::upgrade(&app, "/ws/buyer?buyer=huge-header").await;
    assert_eq!(buyer.json().await["kind"], "welcome");
    let frame = client_frame(TEXT, &vec![b'x'; 1 << 20], true);
    buyer
        .stream
        .write_all(&frame[..frame.len() - (1 << 20) + 1024])
        .await
        .unwrap();
    assert_eq!(buyer.close_code().await, Some(1009));

    // 1 MiB in fragments that are each within the frame limit: the message limit closes the
    // connection once the fragments add up to more than the limit.
    let mut buyer = RawSocket::upgrade(&app, "/ws/buyer?buyer=huge-fragments").await;
    assert_eq!(buyer.json().await["kind"], "welcome");
    let fragment = vec![b'x'; limit / 2];
    let mut sent = 0;
    buyer.send(TEXT, &fragment, false).await;
    while sent < 1 << 20 {
        let frame = client_frame(CONTINUATION, &fragment, false);
        if buyer.stream.write_all(&frame).await.is_err() {
            break;
        }
        sent += fragment.len();
        if sent > 4 * limit {
            break;
        }
    }
    assert_eq!(buyer.close_code().await, Some(1009));

    // Ten clients at once each send a whole 1 MiB frame; each is closed, the bystander is
    // answered meanwhile, and every one of those connections is gone afterwards.
    let huge = "x".repeat(1 << 20);
    let senders: Vec<_> = (0..10)
        .map(|i| {
            let url = app.url(&format!("/ws/buyer?buyer=huge-{i}"));
            let huge = huge.clone();
            tokio::spawn(async move {
                let mut client = Client::connect(&url).await.welcomed().await;
                let _ = client.try_say(&huge, "huge").await;
                match client.next().await {
                    crate::helpers::Incoming::Closed(Some(close)) => u16::from(close.code),
                    other => panic!("expected close 1009, got {other:?}"),
                }
            })
        })
        .collect();
    answered(&mut bystander, "during").await;
    for sender in senders {
        assert_eq!(sender.await.unwrap(), 1009);
    }
    answered(&mut bystander, "after").await;
    metric_reaches(&app, "autoresponder_connections{side=\"buyer\"}", 1.0).await;
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_messages_a_second_are_rate_limited_while_others_are_answered() {
    let app = TestApp::start().await;
    let limits = Limits::default();
    let flooder = app.buyer("flooder").await.welcomed().await;
    let (mut sink, mut stream) = flooder.into_socket().split();
    // Two seconds at 10,000 messages a second: 100 every 10 ms.
    let (ticks, per_tick) = (200u32, 100u32);
    let messages = ticks * per_tick;
    let flooding = tokio_util::sync::CancellationToken::new();

    let (flood_started, started) = tokio::sync::oneshot::channel::<()>();
    let flood = tokio::spawn({
        let flooding = flooding.clone();
        async move {
            let begun = Instant::now();
            let mut pace = tokio::time::interval(Duration::from_millis(10));
            for tick in 0..ticks {
                pace.tick().await;
                for i in 0..per_tick {
                    let id = tick * per_tick + i;
                    let frame = json!({"type": "message", "text": "包邮吗", "id": id});
                    sink.feed(Message::text(frame.to_string())).await.unwrap();
                }
                sink.flush().await.unwrap();
            }
            flooding.cancel();
            (sink, begun.elapsed())
        }
    });
    let answers = tokio::spawn(async move {
        let begun = Instant::now();
        let (mut answered, mut limited) = (0, 0);
        let mut flood_started = Some(flood_started);
        while answered + limited < messages {
            let frame = tokio::time::timeout(PATIENCE, stream.next())
                .await
                .expect("the flood is answered")
                .expect("the connection stays open")
                .unwrap();
            let Message::Text(text) = frame else { continue };
            let frame: Value = serde_json::from_str(&text).unwrap();
            match (frame["type"].as_str(), frame["code"].as_str()) {
                (Some("reply"), _) => answered += 1,
                (Some("error"), Some("rate_limited")) => limited += 1,
                _ => panic!("unexpected {frame}"),
            }
            if answered + limited == 100 {
                let _ = flood_started.take().unwrap().send(());
            }
        }
        (answered, limited, begun.elapsed())
    });

    // Meanwhile, calm buyers keep asking, one question at a time, until the flood is over.
    started.await.unwrap();
    let calm: Vec<_> = (0..4)
        .map(|i| {
            let url = app.url(&format!("/ws/buyer?shop=default&buyer=calm-{i}"));
            let flooding = flooding.clone();
            tokio::spawn(async move {
                let mut buyer = Client::connect(&url).await.welcomed().await;
                let mut latencies = Vec::new();
                while !flooding.is_cancelled() {
                    let id = format!("q{}", latencies.len());
                    latencies.push(answered(&mut buyer, &id).await);
                    // A person types; the calm buyers stay far below their own rate limit.
                    tokio::time::sleep(Duration::from_millis(250)).await;
                }
                latencies
            })
        })
        .collect();
    let mut latencies = Vec::new();
    for buyer in calm {
        latencies.extend(buyer.await.unwrap());
    }
    let (_sink, sending) = flood.await.unwrap();
    let (answered_flood, limited, elapsed) = answers.await.unwrap();
    let asked = latencies.len();
    let (median, slowest) = spread(latencies);
    println!(
        "flood: {messages} messages sent in {sending:?} ({:.0}/s), {answered_flood} answered, \
         {limited} rate_limited, all answered within {elapsed:?}; \
         {asked} calm questions meanwhile: median {median:?}, slowest {slowest:?}",
        f64::from(messages) / sending.as_secs_f64()
    );
    // The limiter held: no more got through than the burst plus the sustained rate.
    let allowed =
        f64::from(limits.message_burst) + limits.messages_per_second * elapsed.as_secs_f64() + 1.0;
    assert!(
        f64::from(answered_flood) <= allowed,
        "{answered_flood} answered in {elapsed:?}"
    );
    assert!(limited >= messages - allowed as u32 - 1, "{limited}");
    assert!(asked >= 4, "the calm buyers asked during the flood");
    // A very generous bound: a calm question is not stuck behind the flood.
    assert!(slowest < Duration::from_secs(5), "{slowest:?}");
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_never_reads_is_dropped_and_its_socket_closed() {
    let app = TestApp::start_with(Limits {
        outbound_queue: 8,
        outbound_wait: Duration::from_millis(200),
        ..Limits::default()
    })
    .await;
    let mut bystander = app.buyer("deaf-bystander").await.welcomed().await;

    // The deaf client's receive window is small, so the server's side fills up soon. It
    // sends frames that each get an error frame back, and never reads one of them.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let stream = socket.connect(app.address).await.unwrap();
    let mut stream = RawSocket::upgrade_over(stream, "/ws/buyer?buyer=deaf")
        .await
        .stream;
    let flood = tokio::spawn(async move {
        let batch: Vec<u8> = (0..1000)
            .flat_map(|_| client_frame(TEXT, b"x", true))
            .collect();
        let mut frames = 0u64;
        // Bounded: at worst 100 MB, far more than any socket buffer holds.
        while frames < 100_000_000 / 7 {
            if let Err(error) = stream.write_all(&batch).await {
                return (frames, error.kind());
            }
            frames += 1000;
        }
        panic!("the server kept reading a client that never reads");
    });
    // The bystander is answered while the server's queue to the deaf client is full.
    let mut latencies = Vec::new();
    for question in 0..5 {
        latencies.push(answered(&mut bystander, &format!("q{question}")).await);
    }
    let (frames, error) = tokio::time::timeout(PATIENCE, flood)
        .await
        .expect("the server drops the deaf client and closes its socket")
        .unwrap();
    assert!(
        matches!(
            error,
            std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::BrokenPipe
        ),
        "{error:?}"
    );
    metric_reaches(&app, "autoresponder_slow_clients_dropped_total", 1.0).await;
    metric_reaches(&app, "autoresponder_connections{side=\"buyer\"}", 1.0).await;
    let (median, slowest) = spread(latencies);
    println!(
        "the deaf client sent {frames} frames before its socket was closed; the bystander \
         was answered meanwhile in {median:?} (median), {slowest:?} at worst"
    );
    answered(&mut bystander, "after").await;
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_open_upgrades_are_closed_after_the_header_timeout_and_starve_nobody() {
    let timeout = Duration::from_millis(300);
    let app = TestApp::start_with(Limits {
        header_read_timeout: timeout,
        ..Limits::default()
    })
    .await;
    // 200 slowloris connections: half send part of the upgrade request, half send nothing.
    let request = upgrade_request("/ws/buyer?buyer=slow");
    let opened = Instant::now();
    let mut slow = Vec::new();
    for i in 0..200 {
        let mut stream = TcpStream::connect(app.address).await.unwrap();
        if i % 2 == 0 {
            stream
                .write_all(&request.as_bytes()[..40 + i % 30])
                .await
                .unwrap();
        }
        slow.push(stream);
    }
    // A keep-alive HTTP client that asks once and then idles is bounded the same way.
    let mut idle = TcpStream::connect(app.address).await.unwrap();
    idle.write_all(b"GET /healthz HTTP/1.1\r\nHost: test\r\n\r\n")
        .await
        .unwrap();
    let mut response = [0u8; 12];
    idle.read_exact(&mut response).await.unwrap();
    assert_eq!(&response, b"HTTP/1.1 200");

    // A real buyer is not starved by them.
    let mut buyer = app.buyer("real").await.welcomed().await;
    answered(&mut buyer, "while-slowloris").await;

    slow.push(idle);
    for mut stream in slow {
        let mut rest = Vec::new();
        let ended = tokio::time::timeout(PATIENCE, stream.read_to_end(&mut rest))
            .await
            .expect("the server closes a connection that does not finish its request");
        // Closed, reset, or answered with an error status: anything but an upgrade.
        if ended.is_ok() && !rest.is_empty() {
            let text = String::from_utf8_lossy(&rest);
            assert!(!text.contains(" 101 "), "{text}");
        }
    }
    let closed_after = opened.elapsed();
    assert!(closed_after >= timeout, "{closed_after:?}");
    println!("201 half-open connections were all closed {closed_after:?} after they opened");
    answered(&mut buyer, "after-slowloris").await;
    app.shutdown().await;
}

/// One connect/disconnect cycle of the storm, chosen by `round`; false when the service
/// refused the connection with 503 because its caps were reached at that moment.
async fn storm_cycle(app_address: std::net::SocketAddr, task: usize, round: usize) -> bool {
    let buyer = if round.is_multiple_of(5) {
        "storm-shared".to_string()
    } else {
        format!("storm-{task}")
    };
    let path = format!("/ws/buyer?buyer={buyer}");
    let url = format!("ws://{app_address}{path}");
    let reset = |stream: TcpStream| {
        stream.set_zero_linger().unwrap();
        drop(stream);
    };
    let refused = |error: tokio_tungstenite::tungstenite::Error| match error {
        tokio_tungstenite::tungstenite::Error::Http(response) if response.status() == 503 => {}
        other => panic!("{other}"),
    };
    let upgraded = |stream: TcpStream| {
        let path = path.clone();
        async move {
            match RawSocket::try_upgrade_over(stream, &path).await {
                Ok(raw) => Some(raw),
                Err(503) => None,
                Err(status) => panic!("refused with {status}"),
            }
        }
    };
    match round % 6 {
        // A whole conversation, closed properly.
        0 => {
            let mut socket = match tokio_tungstenite::connect_async(&url).await {
                Ok((socket, _)) => socket,
                Err(error) => {
                    refused(error);
                    return false;
                }
            };
            let frame = json!({"type": "message", "text": "包邮吗", "id": round});
            socket.send(Message::text(frame.to_string())).await.unwrap();
            while let Some(Ok(message)) = socket.next().await {
                if let Message::Text(text) = message
                    && text.contains("\"in_reply_to\"")
                {
                    break;
                }
            }
            socket.close(None).await.unwrap();
        }
        // A question, then a TCP reset before the answer is read.
        1 => {
            let stream = TcpStream::connect(app_address).await.unwrap();
            let Some(mut raw) = upgraded(stream).await else {
                return false;
            };
            let frame = json!({"type": "message", "text": "什么时候发货", "id": round});
            raw.send(TEXT, frame.to_string().as_bytes(), true).await;
            reset(raw.stream);
        }
        // A reset in the middle of the upgrade request.
        2 => {
            let mut stream = TcpStream::connect(app_address).await.unwrap();
            let request = upgrade_request(&path);
            stream
                .write_all(&request.as_bytes()[..request.len() / 2])
                .await
                .unwrap();
            reset(stream);
        }
        // A reset in the middle of a frame.
        3 => {
            let stream = TcpStream::connect(app_address).await.unwrap();
            let Some(mut raw) = upgraded(stream).await else {
                return false;
            };
            let frame = client_frame(
                TEXT,
                "{\"type\":\"message\",\"text\":\"在吗\"}".as_bytes(),
                true,
            );
            raw.stream
                .write_all(&frame[..frame.len() / 2])
                .await
                .unwrap();
            reset(raw.stream);
        }
        // Gone without a close frame (FIN) right after the upgrade.
        4 => match tokio_tungstenite::connect_async(&url).await {
            Ok((socket, _)) => drop(socket),
            Err(error) => {
                refused(error);
                return false;
            }
        },
        // A complaint that hands the conversation off, then a reset.
        _ => {
            let stream = TcpStream::connect(app_address).await.unwrap();
            let Some(mut raw) = upgraded(stream).await else {
                return false;
            };
            let frame = json!({"type": "message", "text": "质量太差了，我要投诉", "id": round});
            raw.send(TEXT, frame.to_string().as_bytes(), true).await;
            let _ = raw.frame().await;
            reset(raw.stream);
        }
    }
    true
}

/// A TCP connection to the service from `local` (any loopback address).
async fn tcp_from(app: &TestApp, local: &str) -> TcpStream {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind(format!("{local}:0").parse().unwrap()).unwrap();
    socket.connect(app.address).await.unwrap()
}

/// A buyer connection from `local` (any loopback address), or the refusal's HTTP status.
async fn connect_from(
    app: &TestApp,
    local: &str,
    buyer: &str,
) -> Result<tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<TcpStream>>, u16> {
    let stream = tokio_tungstenite::MaybeTlsStream::Plain(tcp_from(app, local).await);
    let url = app.url(&format!("/ws/buyer?buyer={buyer}"));
    match tokio_tungstenite::client_async(url, stream).await {
        Ok((socket, _)) => Ok(socket),
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            Err(response.status().as_u16())
        }
        Err(other) => panic!("{other}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reconnect_storm_gives_back_every_slot_and_leaves_no_task_behind() {
    let (total, per_address) = (64, 48);
    let app = TestApp::launch(Setup {
        limits: Limits {
            max_connections: total,
            max_connections_per_address: per_address,
            // The cycles reuse a few buyer ids from 127.0.0.1, each asking: the caps are
            // what is tested here, not the message limits, which outlive a connection.
            messages_per_second: 1e9,
            message_burst: 1_000_000,
            conversations_per_address_per_minute: 1e9,
            messages_per_address_per_second: 1e9,
            message_burst_per_address: 1_000_000,
            ..Limits::default()
        },
        ..Setup::staffed("")
    })
    .await;
    // The service's own tasks, once it has settled, before the storm.
    let mut first = app.buyer("storm-first").await.welcomed().await;
    answered(&mut first, "before").await;
    drop(first);
    metric_reaches(&app, "autoresponder_connections{side=\"buyer\"}", 0.0).await;
    let runtime = tokio::runtime::Handle::current().metrics();
    let tasks_before = runtime.num_alive_tasks();

    // 24 buyer tasks × 100 cycles, and two agents reconnecting, all at once.
    let started = Instant::now();
    let address = app.address;
    let mut storm: Vec<_> = (0..24)
        .map(|task| {
            tokio::spawn(async move {
                let mut refused = 0;
                for round in 0..100 {
                    if !storm_cycle(address, task, round).await {
                        refused += 1;
                    }
                }
                refused
            })
        })
        .collect();
    for agent in ["mei", "lan"] {
        let url = app.url(&format!("/ws/agent?token=token-{agent}"));
        storm.push(tokio::spawn(async move {
            let mut refused = 0;
            for round in 0..100 {
                let socket = match tokio_tungstenite::connect_async(&url).await {
                    Ok((socket, _)) => socket,
                    Err(tokio_tungstenite::tungstenite::Error::Http(response))
                        if response.status() == 503 =>
                    {
                        refused += 1;
                        continue;
                    }
                    Err(other) => panic!("{other}"),
                };
                if round % 2 == 0 {
                    drop(socket);
                } else {
                    let stream = socket.into_inner();
                    let tokio_tungstenite::MaybeTlsStream::Plain(stream) = stream else {
                        unreachable!()
                    };
                    stream.set_zero_linger().unwrap();
                }
            }
            refused
        }));
    }
    let mut refused = 0;
    for task in storm {
        refused += tokio::time::timeout(PATIENCE * 6, task)
            .await
            .expect("the storm ends")
            .unwrap();
    }
    println!(
        "2,600 connect/disconnect cycles took {:?}; {refused} were refused with 503 while \
         the caps were reached",
        started.elapsed()
    );

    // Every session ended: the gauges are back to nothing.
    metric_reaches(&app, "autoresponder_connections{side=\"buyer\"}", 0.0).await;
    metric_reaches(&app, "autoresponder_connections{side=\"agent\"}", 0.0).await;
    metric_reaches(&app, "autoresponder_agents_online{shop=\"default\"}", 0.0).await;
    let (status, _) = app.http_get("/healthz").await;
    assert_eq!(status, 200);

    // Every slot was given back: the caps admit exactly as many as before, no fewer.
    let mut open = Vec::new();
    for i in 0..per_address {
        open.push(
            connect_from(&app, "127.0.0.1", &format!("cap-a{i}"))
                .await
                .unwrap(),
        );
    }
    assert_eq!(
        connect_from(&app, "127.0.0.1", "cap-a-over").await.err(),
        Some(503),
        "per address"
    );
    for i in 0..total - per_address {
        open.push(
            connect_from(&app, "127.0.0.2", &format!("cap-b{i}"))
                .await
                .unwrap(),
        );
    }
    assert_eq!(
        connect_from(&app, "127.0.0.2", "cap-b-over").await.err(),
        Some(503),
        "in total"
    );
    metric_reaches(
        &app,
        "autoresponder_connections{side=\"buyer\"}",
        total as f64,
    )
    .await;
    drop(open);
    metric_reaches(&app, "autoresponder_connections{side=\"buyer\"}", 0.0).await;

    // A fresh buyer is answered, and the runtime is back to the tasks it had before.
    let mut fresh = app.buyer("storm-fresh").await.welcomed().await;
    answered(&mut fresh, "after").await;
    drop(fresh);
    metric_reaches(&app, "autoresponder_connections{side=\"buyer\"}", 0.0).await;
    let settled = tokio::time::timeout(PATIENCE, async {
        loop {
            let now = runtime.num_alive_tasks();
            if now <= tasks_before {
                return now;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    assert!(
        settled.is_ok(),
        "{} tasks alive after the storm, {tasks_before} before",
        runtime.num_alive_tasks()
    );
    app.shutdown().await;
}

/// An idle keep-alive connection from `local`, once it got its answer to one request; `None`
/// if the service refused the connection with 503 instead.
async fn keep_alive_from(app: &TestApp, local: &str) -> Option<TcpStream> {
    let mut stream = tcp_from(app, local).await;
    // A refused connection may already be reset when the request is written.
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: test\r\n\r\n")
        .await
        .ok()?;
    let mut head = [0u8; 12];
    tokio::time::timeout(PATIENCE, stream.read_exact(&mut head))
        .await
        .expect("answered in time")
        .ok()?;
    match &head {
        b"HTTP/1.1 200" => Some(stream),
        b"HTTP/1.1 503" => None,
        other => panic!("{}", String::from_utf8_lossy(other)),
    }
}

/// What the service sends a connection from `local` that sends nothing, up to its close.
async fn answer_to_silence(app: &TestApp, local: &str) -> String {
    let mut stream = tcp_from(app, local).await;
    let mut received = Vec::new();
    let _ = tokio::time::timeout(PATIENCE, stream.read_to_end(&mut received))
        .await
        .expect("the service answers or closes at once");
    String::from_utf8_lossy(&received).into_owned()
}

#[tokio::test]
async fn tcp_connections_past_the_cap_per_address_are_refused_before_any_request() {
    let per_address = 30;
    let app = TestApp::start_with(Limits {
        max_http_connections_per_address: per_address,
        ..Limits::default()
    })
    .await;
    // One address holds its whole share: silent connections, half-sent requests and idle
    // keep-alives, none of them a websocket. The keep-alives were answered, so each
    // connection before them was accepted.
    let request = upgrade_request("/ws/buyer?buyer=slow");
    let mut held = Vec::new();
    for i in 0..per_address {
        let stream = match i % 3 {
            0 => tcp_from(&app, "127.0.0.1").await,
            1 => {
                let mut stream = tcp_from(&app, "127.0.0.1").await;
                stream.write_all(&request.as_bytes()[..30]).await.unwrap();
                stream
            }
            _ => keep_alive_from(&app, "127.0.0.1")
                .await
                .expect("within the cap"),
        };
        held.push(stream);
    }
    // The next one is told so at once, without a request: before, it was accepted and held
    // until the header timeout (10 s), and a few thousand such used up the descriptors.
    let refused = answer_to_silence(&app, "127.0.0.1").await;
    assert!(refused.starts_with("HTTP/1.1 503"), "{refused:?}");
    assert!(refused.contains("Retry-After: 5\r\n"), "{refused:?}");
    assert!(refused.contains("too many connections"), "{refused:?}");
    assert!(keep_alive_from(&app, "127.0.0.1").await.is_none());

    // A buyer from another address is served meanwhile.
    let mut buyer = Client::from_socket(connect_from(&app, "127.0.0.2", "other").await.unwrap())
        .welcomed()
        .await;
    answered(&mut buyer, "while-capped").await;

    // Every place is given back once the connections close: the address holds exactly its
    // share again (the service notices the closes on its own time, hence the guarded retry).
    drop(held);
    let mut again = Vec::new();
    tokio::time::timeout(PATIENCE, async {
        while again.len() < per_address {
            match keep_alive_from(&app, "127.0.0.1").await {
                Some(stream) => again.push(stream),
                None => tokio::time::sleep(Duration::from_millis(10)).await,
            }
        }
    })
    .await
    .expect("the places are given back");
    assert!(
        answer_to_silence(&app, "127.0.0.1")
            .await
            .starts_with("HTTP/1.1 503")
    );
    answered(&mut buyer, "after").await;
    app.shutdown().await;
}

#[tokio::test]
async fn behind_a_load_balancer_the_tcp_cap_per_address_is_off() {
    let app = TestApp::start_with(Limits {
        max_http_connections_per_address: 2,
        trust_forwarded_for: true,
        ..Limits::default()
    })
    .await;
    // Every connection comes from the balancer's address; only the total counts them.
    let mut held = Vec::new();
    for _ in 0..5 {
        held.push(
            keep_alive_from(&app, "127.0.0.1")
                .await
                .expect("not capped per address"),
        );
    }
    app.shutdown().await;
}
