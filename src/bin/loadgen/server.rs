//! The server under load: the service or the echo baseline, spawned as a child process
//! pinned to core 0, or servers already running (`--target`). Reads their RSS from `/proc`.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, bail};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use crate::args::Args;

/// The core the server runs on, and the one the load generator runs on.
const SERVER_CORE: usize = 0;
const LOAD_CORE: usize = 1;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServerKind {
    Service,
    Echo,
}

/// Whether the server and the loadgen each have a core of their own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pinning {
    None,
    Pinned,
    /// Asked for, but this machine has fewer than two usable cores (or refused).
    Unavailable,
}

impl Pinning {
    pub fn describe(self) -> String {
        match self {
            Pinning::Pinned => format!(
                "pinning: server on core {SERVER_CORE}, loadgen on core {LOAD_CORE} \
                 (sched_setaffinity)"
            ),
            Pinning::None => "pinning: none (--no-pin)".to_string(),
            Pinning::Unavailable => {
                "pinning: not possible here (fewer than 2 usable cores); nothing pinned".into()
            }
        }
    }
}

/// Pins this process (before any other thread starts, so all inherit it) to the load core.
pub fn pin_self() -> Pinning {
    let usable = std::thread::available_parallelism().map_or(1, |n| n.get());
    if usable < 2 {
        return Pinning::Unavailable;
    }
    if set_affinity(0, LOAD_CORE) {
        Pinning::Pinned
    } else {
        Pinning::Unavailable
    }
}

/// Pins one thread (or process, for its main thread) to `core`.
fn set_affinity(tid: libc::pid_t, core: usize) -> bool {
    // SAFETY: `set` is a plain bitmask initialised by CPU_ZERO before use.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_ZERO(&mut set);
        libc::CPU_SET(core, &mut set);
        libc::sched_setaffinity(tid, std::mem::size_of::<libc::cpu_set_t>(), &set) == 0
    }
}

/// Raises this process's open-file limit to its hard limit: ten thousand connections need
/// ten thousand descriptors. Children inherit it.
pub fn raise_open_files() {
    // SAFETY: getrlimit/setrlimit only read and write the struct passed.
    unsafe {
        let mut limit: libc::rlimit = std::mem::zeroed();
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 && limit.rlim_cur < limit.rlim_max
        {
            limit.rlim_cur = limit.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
        }
    }
}

pub struct Server {
    pub kind: ServerKind,
    /// `ws://host:port` of each server; connections round-robin over them.
    pub urls: Vec<String>,
    /// Whose RSS is reported (summed).
    pids: Vec<u32>,
    child: Option<Child>,
    /// The spawned service's SQLite file, for the kill -9 check.
    database: Option<PathBuf>,
    /// A spawned server's temporary folder (database, config, log), removed on stop.
    dir: Option<PathBuf>,
}

impl Server {
    pub fn external(urls: &[String], pids: &[u32], pinning: Pinning) -> anyhow::Result<Server> {
        for url in urls {
            if !url.starts_with("ws://") {
                bail!("--target must look like ws://host:port, not `{url}`");
            }
        }
        if pinning == Pinning::Pinned {
            for pid in pids {
                pin_all_threads(*pid);
            }
        }
        Ok(Server {
            kind: ServerKind::Service,
            urls: urls
                .iter()
                .map(|u| u.trim_end_matches('/').to_string())
                .collect(),
            pids: pids.to_vec(),
            child: None,
            database: None,
            dir: None,
        })
    }

    /// Starts `autoresponder serve` on a free port with a temporary database and limits raised
    /// for the load (one client address opens thousands of connections at thousands of
    /// messages per second).
    pub async fn spawn_service(args: &Args, pinning: Pinning) -> anyhow::Result<Server> {
        let exe = match &args.service {
            Some(path) => path.clone(),
            None => sibling("autoresponder")?,
        };
        let dir = temp_dir("service")?;
        let config = dir.join("loadgen.toml");
        std::fs::write(&config, SERVICE_CONFIG).context("cannot write the service config")?;
        let database = dir.join("autoresponder.db");
        let mut command = Command::new(&exe);
        command
            .arg("serve")
            .arg("--listen")
            .arg("127.0.0.1:0")
            .arg("--config")
            .arg(&config)
            .arg("--intents")
            .arg(&args.intents)
            .arg("--index")
            .arg(&args.index);
        let own_database = !args
            .serve_args
            .iter()
            .any(|a| a == "--database" || a.starts_with("--database="));
        if own_database {
            command.arg("--database").arg(&database);
        }
        command.args(&args.serve_args);
        let mut server = Self::spawn(ServerKind::Service, command, &dir, pinning).await?;
        server.database = own_database.then_some(database);
        Ok(server)
    }

    /// Starts this binary again as the bare echo server, with the service's socket settings.
    pub async fn spawn_echo(args: &Args, pinning: Pinning) -> anyhow::Result<Server> {
        let exe = std::env::current_exe().context("cannot find the loadgen's own executable")?;
        let dir = temp_dir("echo")?;
        let mut command = Command::new(exe);
        command
            .arg("--echo-server")
            .arg("--socket-buffer-bytes")
            .arg(args.socket_buffer_bytes.to_string())
            .arg("--max-frame-bytes")
            .arg(args.max_frame_bytes.to_string());
        Self::spawn(ServerKind::Echo, command, &dir, pinning).await
    }

    async fn spawn(
        kind: ServerKind,
        mut command: Command,
        dir: &Path,
        pinning: Pinning,
    ) -> anyhow::Result<Server> {
        let log = std::fs::File::create(dir.join("server.log"))?;
        command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log)
            .kill_on_drop(true);
        let pin = pinning == Pinning::Pinned;
        // SAFETY: the closure runs in the child between fork and exec and only makes two
        // async-signal-safe system calls.
        unsafe {
            command.pre_exec(move || {
                if pin {
                    set_affinity(0, SERVER_CORE);
                }
                Ok(())
            });
        }
        let mut child = command
            .spawn()
            .with_context(|| format!("cannot start {command:?}"))?;
        let stdout = child.stdout.take().expect("piped");
        let mut lines = BufReader::new(stdout).lines();
        let first = tokio::time::timeout(Duration::from_secs(120), lines.next_line())
            .await
            .context("the server did not say where it listens within 120 s")??;
        let Some(address) = first
            .as_deref()
            .and_then(|l| l.strip_prefix("listening on "))
        else {
            let log = std::fs::read_to_string(dir.join("server.log")).unwrap_or_default();
            bail!("the server did not start: first line {first:?}; its log:\n{log}");
        };
        let url = format!("ws://{}", address.trim());
        // Whatever else it prints is read and dropped, so it never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        let pid = child.id().context("the server exited at once")?;
        Ok(Server {
            kind,
            urls: vec![url],
            pids: vec![pid],
            child: Some(child),
            database: None,
            dir: Some(dir.to_path_buf()),
        })
    }

    pub fn database(&self) -> Option<PathBuf> {
        self.database.clone()
    }

    /// The server's resident memory in KiB (summed over its processes), if it can be read.
    pub fn rss_kib(&self) -> Option<u64> {
        if self.pids.is_empty() {
            return None;
        }
        let mut total = 0;
        for pid in &self.pids {
            total += rss_kib(*pid)?;
        }
        Some(total)
    }

    /// SIGKILL: the service gets no chance to flush anything. Returns once it is dead.
    pub fn kill9_now(&self) {
        for pid in &self.pids {
            // SAFETY: signalling a process this loadgen started or was told to drive.
            unsafe {
                libc::kill(*pid as libc::pid_t, libc::SIGKILL);
            }
            for _ in 0..500 {
                let state =
                    std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
                let dead = state
                    .rsplit_once(") ")
                    .is_none_or(|(_, rest)| rest.starts_with('Z') || rest.starts_with('X'));
                if dead {
                    break;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
        }
    }

    /// CPU time the server has used so far (user and system, all threads), in seconds.
    pub fn cpu_seconds(&self) -> Option<f64> {
        let mut total = 0.0;
        for pid in &self.pids {
            total += cpu_seconds(*pid)?;
        }
        (!self.pids.is_empty()).then_some(total)
    }

    /// SIGTERM, a graceful stop (up to 10 s), then the temporary folder goes.
    pub async fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            if let Some(pid) = child.id() {
                // SAFETY: signalling our own child.
                unsafe {
                    libc::kill(pid as libc::pid_t, libc::SIGTERM);
                }
            }
            if tokio::time::timeout(Duration::from_secs(10), child.wait())
                .await
                .is_err()
            {
                let _ = child.kill().await;
            }
        }
        if let Some(dir) = self.dir.take() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(dir) = self.dir.take() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// The limits of a service under load: one address, thousands of connections, thousands of
/// messages per second, one agent console claiming every case.
const SERVICE_CONFIG: &str = "\
[limits]
messages_per_second = 1000000.0
message_burst = 1000000
messages_per_address_per_second = 1000000.0
message_burst_per_address = 1000000
conversations_per_address_per_minute = 1000000.0
agent_frames_per_second = 1000000.0
agent_frame_burst = 1000000
max_connections = 100000
max_connections_per_address = 100000
max_http_connections = 200000
max_http_connections_per_address = 200000
handoffs_per_address_per_minute = 1000000.0
handoffs_per_shop_per_minute = 1000000.0
";

fn sibling(name: &str) -> anyhow::Result<PathBuf> {
    let me = std::env::current_exe().context("cannot find the loadgen's own executable")?;
    let path = me.with_file_name(name);
    if !path.is_file() {
        bail!(
            "no {} beside the loadgen (build it: cargo build --release), or pass --service",
            path.display()
        );
    }
    Ok(path)
}

fn temp_dir(what: &str) -> anyhow::Result<PathBuf> {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let dir =
        std::env::temp_dir().join(format!("loadgen-{what}-{}-{nanos:08x}", std::process::id()));
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    Ok(dir)
}

fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name: state is the 3rd field, utime and stime the 14th and 15th.
    let rest = stat.rsplit_once(") ")?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    // SAFETY: sysconf only reads a constant.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    Some((utime + stime) / ticks)
}

/// Pins every thread of a running server to the server core.
fn pin_all_threads(pid: u32) {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return;
    };
    for task in tasks.flatten() {
        if let Some(tid) = task.file_name().to_str().and_then(|t| t.parse().ok()) {
            set_affinity(tid, SERVER_CORE);
        }
    }
}
