//! The loadgen's command line: every flag, its default and its help text. The modules read
//! their settings from it; it imports none of them.

use std::path::PathBuf;

use clap::Parser;

#[derive(Parser, Debug, Clone)]
#[command(
    about = "Load generator for the autoresponder: closed-loop buyers on loopback, an echo \
             baseline, idle-connection memory, soak and kill -9 checks"
)]
pub struct Args {
    /// Concurrent buyer connections, each its own buyer id, at most one message outstanding.
    #[arg(long, default_value_t = 64)]
    pub connections: usize,
    /// How long the measured part of a run lasts, in seconds (after the warm-up).
    #[arg(long, default_value_t = 10.0)]
    pub duration: f64,
    /// Seconds of load before measuring starts (connections open, caches warm).
    #[arg(long, default_value_t = 1.0)]
    pub warmup: f64,
    /// Stop after this many messages in all (the duration still bounds the run).
    #[arg(long)]
    pub messages: Option<u64>,
    /// Aggregate messages per second across all connections (still never more than one
    /// outstanding per connection). Without it each connection sends as fast as it is answered.
    #[arg(long)]
    pub rate: Option<f64>,
    /// Also run the same load against a bare tokio-tungstenite echo server and print the
    /// ratio of the service's replies per second to the echo's.
    #[arg(long)]
    pub echo: bool,
    /// After the run at full speed, run again at half the measured replies per second and
    /// report its latencies.
    #[arg(long)]
    pub half: bool,
    /// Open this many idle buyer connections, hold them, and report the server's RSS before
    /// and after (RSS per idle connection) instead of running a load.
    #[arg(long)]
    pub idle: Option<usize>,
    /// How long to hold the idle connections before measuring, in seconds.
    #[arg(long, default_value_t = 5.0)]
    pub idle_settle: f64,
    /// Run at a fixed rate for this many minutes, printing RSS and latency percentiles every
    /// minute. The rate is `--rate`, or half the maximum measured in a first 10-second run.
    #[arg(long)]
    pub soak_minutes: Option<f64>,
    /// Seconds between the soak's progress lines.
    #[arg(long, default_value_t = 60.0)]
    pub soak_interval: f64,
    /// SIGKILL the spawned service this many seconds into the run, then check that every
    /// handoff a buyer was told of is in its SQLite database.
    #[arg(long)]
    pub kill_after: Option<f64>,
    /// Drive an already-running server at this URL (`ws://host:port`) instead of spawning
    /// one; repeat it to round-robin connections over several.
    #[arg(long = "target")]
    pub targets: Vec<String>,
    /// With `--target`: the process whose RSS is reported (repeatable; summed).
    #[arg(long = "server-pid")]
    pub server_pids: Vec<u32>,
    /// An extra argument for the spawned `autoresponder serve` (repeatable), e.g.
    /// `--serve-arg=--database --serve-arg=postgres://…`.
    #[arg(long = "serve-arg", allow_hyphen_values = true)]
    pub serve_args: Vec<String>,
    /// The service binary [default: `autoresponder` beside this executable].
    #[arg(long)]
    pub service: Option<PathBuf>,
    /// The shops' intent files for the spawned service.
    #[arg(long, default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/intents"))]
    pub intents: PathBuf,
    /// The FAQ knowledge base for the spawned service.
    #[arg(long, default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/index"))]
    pub index: PathBuf,
    /// The shop the buyers talk to.
    #[arg(long, default_value = "default")]
    pub shop: String,
    /// The agent console's token: the loadgen claims and resolves every handoff with it, so
    /// conversations return to the bot and the mix stays the mix. The default is a demo
    /// agent of the shipped `default` shop.
    #[arg(long, default_value = "demo-xiaoyue")]
    pub agent_token: String,
    /// Messages each buyer sends before it leaves; a new buyer (a new id, a new
    /// conversation) then connects in its place. 0: a buyer stays for the whole run.
    #[arg(long, default_value_t = 0)]
    pub conversation: u64,
    /// No agent: handed-off buyers go on writing and are answered by `queue` frames.
    #[arg(long)]
    pub no_agent: bool,
    /// Message weights, e.g. `greeting=15,shipping=20,bargain=8,faq=15,presale=20,
    /// after_sale=3,chit_chat=19` (categories left out keep their default weight).
    #[arg(long)]
    pub weights: Option<String>,
    /// Websocket read and write buffer of the echo server and of the loadgen's own
    /// connections; the service's is its `socket_buffer_bytes`.
    #[arg(long, default_value_t = 4096)]
    pub socket_buffer_bytes: usize,
    /// Largest websocket frame of the echo server; the service's is its `max_frame_bytes`.
    #[arg(long, default_value_t = 16384)]
    pub max_frame_bytes: usize,
    /// How long a buyer waits for the answer to one message before counting it unanswered.
    #[arg(long, default_value_t = 10.0)]
    pub answer_timeout: f64,
    /// Do not pin the server to core 0 and the loadgen to core 1.
    #[arg(long)]
    pub no_pin: bool,
    /// Print the final report as one JSON object on stdout (progress goes to stderr).
    #[arg(long)]
    pub json: bool,
    /// Seed of the message mix.
    #[arg(long, default_value_t = 11_11)]
    pub seed: u64,
    /// Run as the echo server (used by the loadgen itself).
    #[arg(long, hide = true)]
    pub echo_server: bool,
}
