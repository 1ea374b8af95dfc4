//! The ceiling: how fast this crate's own sans-IO core (`core::Session`: its request
//! correlation, routing, send budget and bufferedAmount) and sidecar module can drive ONE
//! pion-ipc sidecar, without Node. Two connections A and B in the same sidecar, one channel
//! "bench" from A to B, then:
//!
//! (a) 1 KiB binary messages per second (N=50,000, or `CEILING_N_1K`: `npm run bench` asks
//!     for as many as its Node run sends), paced on A's bufferedAmount within 64 KiB;
//! (b) 16-byte text messages per second (same pacing, N=100,000);
//! (c) 65535-byte binary messages in MB/s (paced within 128 KiB, N=2,000);
//! (d) 64-byte echo round trip (B echoes from its message listener), 5,000 sequential,
//!     p50 / p99;
//! (e) spawn to first ping answer, and pc.create to both channel ends open.
//!
//! One task owns the session and plays the application (`ceiling/driver.rs`): it feeds the
//! session the frames the reader thread hands over, writes the session's requests to stdin
//! once per batch, and reacts to the session's events as the Node benchmark's listeners do
//! (`ceiling/phases.rs`). Everything B receives is checked (count, order by sequence number,
//! length, binary or text). Run it inside the private network namespace (pion gathers no
//! loopback candidates):
//!
//! ```text
//! cargo build --release --example ceiling
//! scripts/netns-run.sh target/release/examples/ceiling /tmp/ceiling.json
//! ```
//!
//! The first argument is where the JSON goes (default `target/ceiling.json`); the binary
//! comes from `PION_IPC_BIN` or node_modules. Tuning knobs for experiments (defaults are what
//! the figures use): `CEILING_POLL_US` (100000, the Node benchmark's `BENCH_FALLBACK_MS`: how
//! long a waiting sender waits for `bufferedamountlow` before it looks at bufferedAmount
//! again; the core itself asks the sidecar's backlog while nothing is in flight),
//! `CEILING_LOW` (1, the default: `bufferedAmountLowThreshold` at the pacing limit minus one
//! message; 0: half the pacing limit; any other number: that many bytes, at most the limit
//! minus one message), `CEILING_RTO_MAX` (`settings.sctpRtoMax` of both connections in ms; 0,
//! the default: pion's own), `CEILING_RT=current` (a current-thread tokio runtime instead of
//! the multi-thread one).

#[path = "ceiling/driver.rs"]
mod driver;
#[path = "ceiling/phases.rs"]
mod phases;

use driver::{Driver, Sink, LIMIT};
use pion_node_rs::core::Request;
use pion_node_rs::sidecar::{NoticeSink, Sidecar};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i].as_secs_f64() * 1e6
}

#[derive(Default)]
struct Results {
    start_ms: f64,
    connect_ms: f64,
    msgs_1k_per_s: f64,
    msgs_16b_per_s: f64,
    mb_per_s_64k: f64,
    echo_p50_us: f64,
    echo_p99_us: f64,
    /// Waits for `bufferedamountlow` that ran into the fallback, per phase (a), (b), (c).
    fallbacks: [u64; 3],
    /// This process's CPU per message in (a) and (b), in µs: the bench's (g) for a client
    /// with the same core and no JavaScript.
    cpu_us_per_msg: [f64; 2],
}

impl Results {
    fn json(&self) -> String {
        let fields = [
            ("msgs_1k_per_s", self.msgs_1k_per_s),
            ("msgs_16b_per_s", self.msgs_16b_per_s),
            ("mb_per_s_64k", self.mb_per_s_64k),
            ("echo_p50_us", self.echo_p50_us),
            ("echo_p99_us", self.echo_p99_us),
            ("start_ms", self.start_ms),
            ("connect_ms", self.connect_ms),
            ("msgs_1k_fallbacks", self.fallbacks[0] as f64),
            ("msgs_16b_fallbacks", self.fallbacks[1] as f64),
            ("msgs_64k_fallbacks", self.fallbacks[2] as f64),
            ("msgs_1k_cpu_us_per_msg", self.cpu_us_per_msg[0]),
            ("msgs_16b_cpu_us_per_msg", self.cpu_us_per_msg[1]),
        ];
        let body: Vec<String> = fields
            .iter()
            .map(|(k, v)| format!("  \"{k}\": {}", if v.is_finite() { *v } else { 0.0 }))
            .collect();
        format!("{{\n{}\n}}\n", body.join(",\n"))
    }
}

/// Spawns the sidecar and pings it: the driver of the run.
async fn start(bin: &Path, results: &mut Results) -> Result<Driver, String> {
    let spawned_at = Instant::now();
    let (sink, notices) = Sink::new();
    let sink: Arc<dyn NoticeSink> = sink;
    let sidecar = Sidecar::spawn(bin, sink).map_err(|e| e.to_string())?;
    let mut d = Driver::new(sidecar, notices);
    let token = d.token();
    d.session
        .request(Request::new("ping", "", "", &[]), token, Instant::now());
    if let Err(e) = d.settled("ping", token).await {
        let warning = stop(&mut d).await;
        return Err(format!("{e}{warning}"));
    }
    results.start_ms = spawned_at.elapsed().as_secs_f64() * 1e3;
    println!("spawn to first ping        {:>12.2} ms", results.start_ms);
    Ok(d)
}

async fn run(d: &mut Driver, results: &mut Results) -> Result<(), String> {
    let connect_started = Instant::now();
    if let Err(e) = phases::connect(d).await {
        return Err(format!("connect: {e}"));
    }
    results.connect_ms = connect_started.elapsed().as_secs_f64() * 1e3;
    println!(
        "create to both open        {:>12.2} ms   ({} candidates forwarded, {} queued first)",
        results.connect_ms, d.relay.forwarded, d.relay.queued_total
    );
    for e in &d.relay.errors {
        println!("  warning: {e}");
    }
    let ms = |t: Option<Instant>| {
        t.map(|t| format!("{:.1}", (t - connect_started).as_secs_f64() * 1e3))
            .unwrap_or_else(|| "-".into())
    };
    let setup = &d.setup;
    println!(
        "  ice connected A {} / B {} ms, connected A {} / B {} ms, dc.open A {} / B {} ms",
        ms(setup.ice_connected_at[0]),
        ms(setup.ice_connected_at[1]),
        ms(setup.connected_at[0]),
        ms(setup.connected_at[1]),
        ms(setup.a_opened_at),
        ms(setup.b_opened_at)
    );

    let mut cpu = CpuMeter::new(d.sidecar.pid());
    let n_1k = env_u64("CEILING_N_1K", 50_000).clamp(1, u64::from(u32::MAX)) as u32;
    let r = phases::bulk(d, true, 1024, n_1k, 64 * 1024)
        .await
        .map_err(|e| format!("(a) 1 KiB: {e}"))?;
    results.msgs_1k_per_s = f64::from(n_1k) / r.elapsed.as_secs_f64();
    results.fallbacks[0] = r.fallbacks;
    let lap = cpu.lap();
    results.cpu_us_per_msg[0] = lap.ours_per_msg_us(n_1k);
    println!(
        "(a) 1 KiB binary           {:>12.0} msg/s  ({n_1k} in {:.3} s, {:.1} MB/s; {} low events, {} fallbacks, idle {:.3} s; {lap})",
        results.msgs_1k_per_s,
        r.elapsed.as_secs_f64(),
        results.msgs_1k_per_s * 1024.0 / 1e6,
        r.low_events,
        r.fallbacks,
        r.idle.as_secs_f64(),
    );

    const N_16: u32 = 100_000;
    let r = phases::bulk(d, false, 16, N_16, 64 * 1024)
        .await
        .map_err(|e| format!("(b) 16 B text: {e}"))?;
    results.msgs_16b_per_s = f64::from(N_16) / r.elapsed.as_secs_f64();
    results.fallbacks[1] = r.fallbacks;
    let lap = cpu.lap();
    results.cpu_us_per_msg[1] = lap.ours_per_msg_us(N_16);
    println!(
        "(b) 16 B text              {:>12.0} msg/s  ({N_16} in {:.3} s; {} low events, {} fallbacks, idle {:.3} s; {lap})",
        results.msgs_16b_per_s,
        r.elapsed.as_secs_f64(),
        r.low_events,
        r.fallbacks,
        r.idle.as_secs_f64(),
    );

    const N_64K: u32 = 2_000;
    const SIZE_64K: usize = 65_535;
    let r = phases::bulk(d, true, SIZE_64K, N_64K, 128 * 1024)
        .await
        .map_err(|e| format!("(c) 65535 B: {e}"))?;
    let bytes = f64::from(N_64K) * SIZE_64K as f64;
    results.mb_per_s_64k = bytes / r.elapsed.as_secs_f64() / 1e6;
    results.fallbacks[2] = r.fallbacks;
    println!(
        "(c) 65535 B binary         {:>12.1} MB/s   ({N_64K} in {:.3} s, {:.0} msg/s; {} low events, {} fallbacks, idle {:.3} s; {})",
        results.mb_per_s_64k,
        r.elapsed.as_secs_f64(),
        f64::from(N_64K) / r.elapsed.as_secs_f64(),
        r.low_events,
        r.fallbacks,
        r.idle.as_secs_f64(),
        cpu.lap()
    );

    const N_ECHO: u32 = 5_000;
    let mut r = phases::echo(d, N_ECHO)
        .await
        .map_err(|e| format!("(d) echo: {e}"))?;
    r.rtts.sort_unstable();
    r.rtts_read.sort_unstable();
    results.echo_p50_us = percentile(&r.rtts, 0.50);
    results.echo_p99_us = percentile(&r.rtts, 0.99);
    println!(
        "(d) 64 B echo round trip   {:>9.0} µs p50 {:>6.0} µs p99  (read from stdout by the reader thread: {:.0} / {:.0} µs; {})",
        results.echo_p50_us,
        results.echo_p99_us,
        percentile(&r.rtts_read, 0.50),
        percentile(&r.rtts_read, 0.99),
        cpu.lap()
    );
    Ok(())
}

/// Closes both connections (when the run went well) and stops the sidecar; a warning when
/// it did not exit.
async fn stop(d: &mut Driver) -> String {
    let stopped_at = Instant::now();
    d.stopping = true;
    if !d.failed() {
        let mut tokens = Vec::new();
        for id in d.pcs.into_iter().flatten() {
            let token = d.token();
            d.session.close_connection(id, token, Instant::now());
            tokens.push(token);
        }
        for token in tokens {
            let _ = d.settled("close()", token).await;
        }
    }
    // stop() itself gives up after its timeout + 3 s; this is only a backstop.
    let stop = tokio::time::timeout(Duration::from_secs(10), d.sidecar.stop(LIMIT / 3));
    let exited = stop.await.is_ok() && d.sidecar.has_exited();
    d.session.sidecar_stopped(Instant::now());
    if !exited {
        return format!("\nwarning: sidecar {} did not exit", d.sidecar.pid());
    }
    println!(
        "closed and stopped in       {:>11.2} ms",
        stopped_at.elapsed().as_secs_f64() * 1e3
    );
    String::new()
}

/// CPU seconds (user + system) used so far by process `pid` (0: this process), from /proc.
fn cpu_seconds(pid: u32) -> f64 {
    let path = if pid == 0 {
        "/proc/self/stat".to_owned()
    } else {
        format!("/proc/{pid}/stat")
    };
    let Ok(stat) = std::fs::read_to_string(path) else {
        return 0.0;
    };
    // Fields after the command name, which is in parentheses and may hold spaces.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name.
    (ticks(11) + ticks(12)) / 100.0
}

/// CPU use of this process and of the sidecar since the last call, as a table cell.
struct CpuMeter {
    pid: u32,
    at: Instant,
    ours: f64,
    theirs: f64,
}

impl CpuMeter {
    fn new(pid: u32) -> Self {
        CpuMeter {
            pid,
            at: Instant::now(),
            ours: cpu_seconds(0),
            theirs: cpu_seconds(pid),
        }
    }

    fn lap(&mut self) -> Lap {
        let next = CpuMeter::new(self.pid);
        let lap = Lap {
            wall: (next.at - self.at).as_secs_f64().max(1e-9),
            ours: next.ours - self.ours,
            theirs: next.theirs - self.theirs,
        };
        *self = next;
        lap
    }
}

/// The CPU seconds of this process and of the sidecar in one phase.
struct Lap {
    wall: f64,
    ours: f64,
    theirs: f64,
}

impl Lap {
    /// This process's CPU per message of a phase that moved `n`, in µs.
    fn ours_per_msg_us(&self, n: u32) -> f64 {
        self.ours / f64::from(n.max(1)) * 1e6
    }
}

impl std::fmt::Display for Lap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "cpu: client {:.0}%, sidecar {:.0}%",
            self.ours / self.wall * 100.0,
            self.theirs / self.wall * 100.0
        )
    }
}

fn binary_path() -> PathBuf {
    match std::env::var_os("PION_IPC_BIN").filter(|v| !v.is_empty()) {
        Some(path) => PathBuf::from(path),
        None => Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("node_modules/@coclaw/pion-ipc-linux-x64/bin/pion-ipc"),
    }
}

fn main() {
    let mut builder = if std::env::var("CEILING_RT").as_deref() == Ok("current") {
        tokio::runtime::Builder::new_current_thread()
    } else {
        tokio::runtime::Builder::new_multi_thread()
    };
    let rt = builder.enable_all().build().expect("tokio runtime");
    rt.block_on(amain());
}

async fn amain() {
    let out = std::env::args()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("target/ceiling.json"));
    let bin = binary_path();
    if !bin.is_file() {
        eprintln!("pion-ipc binary not found at {}", bin.display());
        std::process::exit(2);
    }
    if std::env::var_os("PION_NETNS_ACTIVE").is_none() {
        eprintln!("warning: not inside scripts/netns-run.sh; ICE may find no candidates");
    }
    let mut results = Results::default();
    let mut d = match start(&bin, &mut results).await {
        Ok(d) => d,
        Err(e) => {
            eprintln!("FAILED: {e}");
            std::process::exit(1);
        }
    };
    let outcome = run(&mut d, &mut results).await;
    let warning = stop(&mut d).await;
    if !warning.is_empty() {
        eprintln!("{}", warning.trim_start());
    }

    if let Err(e) = outcome {
        eprintln!("FAILED: {e}");
        eprintln!("last {} sidecar log lines:", d.logs.len().min(40));
        for line in d.logs.iter().rev().take(40).rev() {
            eprintln!("  {line}");
        }
        std::process::exit(1);
    }

    let json = results.json();
    if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
        let _ = std::fs::create_dir_all(dir);
    }
    if let Err(e) = std::fs::write(&out, &json) {
        eprintln!("cannot write {}: {e}", out.display());
        std::process::exit(1);
    }
    println!("wrote {}", out.display());
}
