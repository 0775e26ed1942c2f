//! The speed figures of issue 3: the release binary `waymark --data-dir DIR
//! serve`, driven over stdio by this process speaking raw JSON-RPC lines
//! (blocking pipes, one line per answer, no MCP client library in the way),
//! on a store of 100,000 work items. Beside each figure, in the same run, the
//! floor: the same operation called in-process on `Tracker`, and the same
//! tool call to `WaymarkServer` over an in-process duplex pipe (the protocol
//! layer without the process boundary). See BENCHMARKS.md.
//!
//! Run with `cargo bench --bench mcp`. Under `cargo test --benches` (no
//! `--bench` flag) every size is 100 times smaller: a quick smoke test.
//!
//! `cargo bench --bench mcp -- --sync-pull` measures something else: tool
//! calls while the sync worker of the same `serve` pulls 100,000 changes
//! (see `support/serve_pull.rs`).

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

use rmcp::ServiceExt;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt};
use waymark::Tracker;
use waymark::mcp::{ServeOptions, WaymarkServer};
use waymark::ops::NewWorkItem;

/// The author of the in-process writes; the stdio client's name.
const AUTHOR: &str = "bench";
const CLIENT: &str = "bench-agent";

/// Sizes of the store (divided by 100 outside `--bench` runs), as in
/// benches/store.rs.
const WORK_ITEMS: usize = 100_000;
const VENDORS: usize = 1_000;
const DEPLOYMENTS: usize = 10_000;
const DEPENDENCIES: usize = 50_000;

/// Timed calls per path.
const VENDOR_QUERIES: usize = 5_000;
const VENDOR_WARMUP: usize = 300;
const CREATES: usize = 10_000;
/// Calls are interleaved between the paths in this many rounds, so that the
/// noise of a shared machine falls on all of them alike.
const ROUNDS: usize = 10;
/// Cold starts measured per path.
const STARTS: usize = 15;

#[path = "support/fixture.rs"]
mod fixture;
use fixture::*;

#[path = "support/serve_pull.rs"]
mod serve_pull;

// The fixture.

struct Fixture {
    _dir: tempfile::TempDir,
    dir: PathBuf,
    tracker: Tracker,
    /// A vendor's name as a user types it (other case, spaces around).
    vendor_query: String,
    /// Sessions the three paths add their tasks under.
    parents: [String; 3],
}

fn build() -> Fixture {
    let sizes = (
        scale(WORK_ITEMS),
        scale(VENDORS),
        scale(DEPLOYMENTS),
        scale(DEPENDENCIES),
    );
    let started = Instant::now();
    let (doc, items) = document("big", sizes.0, sizes.1, sizes.2, sizes.3);
    let generated = started.elapsed();
    let dir = tempfile::tempdir().expect("temp dir");
    let tracker = Tracker::open(dir.path()).expect("open tracker");
    let summary = tracker.import_json(AUTHOR, doc).expect("import fixture");
    eprintln!(
        "[fixture] generated in {generated:.1?}, imported in {:.1?}: {summary:?}",
        started.elapsed() - generated
    );
    let conn = rusqlite::Connection::open(dir.path().join(waymark::store::DB_FILE)).expect("open raw");
    let live: i64 = conn
        .query_row("SELECT count(*) FROM work_items WHERE deleted_at IS NULL", [], |r| {
            r.get(0)
        })
        .expect("count");
    assert_eq!(live as usize, sizes.0, "work items");
    let vendor: String = conn
        .query_row(
            "SELECT name FROM vendors ORDER BY name_key LIMIT 1 OFFSET ?1",
            [(sizes.1 / 2) as i64],
            |r| r.get(0),
        )
        .expect("a vendor");
    let sessions: Vec<&Item> = items.iter().filter(|i| i.depth == 1).collect();
    assert!(sessions.len() >= 3, "three sessions");
    let n = sessions.len();
    Fixture {
        dir: dir.path().to_path_buf(),
        _dir: dir,
        tracker,
        vendor_query: format!("  {}  ", vendor.to_uppercase()),
        parents: [
            sessions[n - 1].id.clone(),
            sessions[n - 2].id.clone(),
            sessions[n - 3].id.clone(),
        ],
    }
}

// ---------------------------------------------------------------------------
// JSON-RPC lines.

fn initialize_line(id: u64) -> String {
    json!({"jsonrpc": "2.0", "id": id, "method": "initialize", "params": {
        "protocolVersion": "2025-11-25", "capabilities": {},
        "clientInfo": {"name": CLIENT, "version": "1.0.0"}}})
    .to_string()
}

const INITIALIZED: &str = r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#;

fn tools_list_line(id: u64) -> String {
    format!(r#"{{"jsonrpc":"2.0","id":{id},"method":"tools/list"}}"#)
}

fn call_line(id: u64, tool: &str, arguments: &Value) -> String {
    format!(
        r#"{{"jsonrpc":"2.0","id":{id},"method":"tools/call","params":{{"name":"{tool}","arguments":{arguments}}}}}"#
    )
}

fn vendor_args(f: &Fixture) -> Value {
    json!({ "name": f.vendor_query })
}

fn create_args(parent: &str, n: usize) -> Value {
    json!({"item_type": "task", "title": format!("benchmark task {n}"), "parent_id": parent})
}

/// Check an answer line: the right id, a result, and for a tool call no
/// `isError`. Done outside the timed span.
fn check(line: &str, id: u64, what: &str) -> Value {
    let v: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{what}: not JSON ({e}): {line}"));
    assert_eq!(v["id"], id, "{what}: answer to another request: {line}");
    let result = v.get("result").unwrap_or_else(|| panic!("{what}: no result: {line}"));
    assert_ne!(result["isError"], true, "{what} failed: {line}");
    v
}

fn is_answer(line: &str) -> bool {
    // Notifications and server requests (no "result"/"error") are skipped.
    line.contains(r#""result""#) || line.contains(r#""error""#)
}

// ---------------------------------------------------------------------------
// A raw client over the child's stdin/stdout (blocking pipes).

struct StdioClient {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
    line: String,
    next_id: u64,
}

fn waymark_bin() -> PathBuf {
    if let Some(bin) = std::env::var_os("WAYMARK_BENCH_BIN") {
        return PathBuf::from(bin);
    }
    let built = PathBuf::from(env!("CARGO_BIN_EXE_waymark"));
    if built.exists() {
        return built;
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target"));
    target.join("release").join("waymark")
}

impl StdioClient {
    /// Start `waymark --data-dir DIR serve`, in DIR (no git repository
    /// around it, so no git watcher), with the default log level.
    fn spawn(bin: &Path, dir: &Path) -> StdioClient {
        StdioClient::spawn_with(bin, dir, &[])
    }

    /// [`StdioClient::spawn`] with these environment variables set.
    fn spawn_with(bin: &Path, dir: &Path, env: &[(&str, &str)]) -> StdioClient {
        let mut child = Command::new(bin)
            .arg("--data-dir")
            .arg(dir)
            .args(["serve", "--toolset", "all"])
            .current_dir(dir)
            .env_remove("RUST_LOG")
            .envs(env.iter().copied())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn waymark serve");
        let stdin = child.stdin.take().expect("stdin");
        let stdout = BufReader::with_capacity(1 << 16, child.stdout.take().expect("stdout"));
        StdioClient {
            child,
            stdin,
            stdout,
            line: String::with_capacity(1 << 12),
            next_id: 1,
        }
    }

    fn id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }

    fn send(&mut self, line: &str) {
        let mut bytes = Vec::with_capacity(line.len() + 1);
        bytes.extend_from_slice(line.as_bytes());
        bytes.push(b'\n');
        self.stdin.write_all(&bytes).expect("write to the server");
    }

    /// Write one request line and read lines up to its answer (left in
    /// `self.line`).
    fn round_trip(&mut self, line: &str) {
        self.send(line);
        loop {
            self.line.clear();
            let n = self.stdout.read_line(&mut self.line).expect("read from the server");
            assert!(n > 0, "the server closed stdout");
            if is_answer(&self.line) {
                return;
            }
        }
    }

    fn handshake(&mut self) {
        let id = self.id();
        self.round_trip(&initialize_line(id));
        let v = check(&self.line, id, "initialize");
        assert_eq!(v["result"]["serverInfo"]["name"], "waymark");
        self.send(INITIALIZED);
    }

    fn tools_list(&mut self) -> usize {
        let id = self.id();
        self.round_trip(&tools_list_line(id));
        let v = check(&self.line, id, "tools/list");
        v["result"]["tools"].as_array().map_or(0, Vec::len)
    }

    /// One timed tool call; the answer is checked after the clock stops.
    fn call(&mut self, tool: &str, args: &Value) -> Duration {
        let id = self.id();
        let line = call_line(id, tool, args);
        let t = Instant::now();
        self.round_trip(&line);
        let took = t.elapsed();
        check(&self.line, id, tool);
        took
    }

    /// One tool call, untimed, and its checked answer.
    fn call_value(&mut self, tool: &str, args: &Value) -> Value {
        let id = self.id();
        self.round_trip(&call_line(id, tool, args));
        check(&self.line, id, tool)
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Close stdin; the server must exit cleanly.
    fn close(self) {
        let StdioClient { mut child, stdin, .. } = self;
        drop(stdin);
        let status = child.wait().expect("wait for the server");
        assert!(status.success(), "waymark serve exited with {status}");
    }
}

// ---------------------------------------------------------------------------
// The same raw client over an in-process duplex pipe to `WaymarkServer`.

struct PipeClient {
    reader: tokio::io::BufReader<tokio::io::ReadHalf<tokio::io::DuplexStream>>,
    writer: tokio::io::WriteHalf<tokio::io::DuplexStream>,
    line: String,
    next_id: u64,
}

impl PipeClient {
    /// A server on `tracker` (spawned on the current runtime) and a client
    /// that has done the handshake.
    async fn start(tracker: Tracker) -> PipeClient {
        let (server_io, client_io) = tokio::io::duplex(1 << 20);
        let server = WaymarkServer::new(
            tracker,
            ServeOptions {
                toolset: waymark::mcp::Toolset::All,
                read_only: false,
            },
        );
        tokio::spawn(async move {
            if let Ok(running) = server.serve(server_io).await {
                let _ = running.waiting().await;
            }
        });
        let (read, writer) = tokio::io::split(client_io);
        let mut c = PipeClient {
            reader: tokio::io::BufReader::with_capacity(1 << 16, read),
            writer,
            line: String::with_capacity(1 << 12),
            next_id: 1,
        };
        c.next_id += 1;
        let id = c.next_id;
        c.round_trip(&initialize_line(id)).await;
        check(&c.line, id, "initialize");
        c.send(INITIALIZED).await;
        c
    }

    async fn send(&mut self, line: &str) {
        let mut bytes = Vec::with_capacity(line.len() + 1);
        bytes.extend_from_slice(line.as_bytes());
        bytes.push(b'\n');
        self.writer.write_all(&bytes).await.expect("write to the server");
    }

    async fn round_trip(&mut self, line: &str) {
        self.send(line).await;
        loop {
            self.line.clear();
            let n = self
                .reader
                .read_line(&mut self.line)
                .await
                .expect("read from the server");
            assert!(n > 0, "the server closed the pipe");
            if is_answer(&self.line) {
                return;
            }
        }
    }

    async fn tools_list(&mut self) -> usize {
        self.next_id += 1;
        let id = self.next_id;
        self.round_trip(&tools_list_line(id)).await;
        let v = check(&self.line, id, "tools/list");
        v["result"]["tools"].as_array().map_or(0, Vec::len)
    }

    async fn call(&mut self, tool: &str, args: &Value) -> Duration {
        self.next_id += 1;
        let id = self.next_id;
        let line = call_line(id, tool, args);
        let t = Instant::now();
        self.round_trip(&line).await;
        let took = t.elapsed();
        check(&self.line, id, tool);
        took
    }
}

// ---------------------------------------------------------------------------
// Figures.

fn median(v: &mut [Duration]) -> Duration {
    v.sort_unstable();
    v[v.len() / 2]
}

fn p99(v: &mut [Duration]) -> Duration {
    v.sort_unstable();
    v[(v.len() * 99 / 100).min(v.len() - 1)]
}

/// `VmRSS`, `VmHWM`, `RssAnon`, `RssFile` of a process, in kB.
#[derive(Clone, Copy, Debug, Default)]
struct Mem {
    rss: u64,
    hwm: u64,
    anon: u64,
    file: u64,
}

fn mem(pid: u32) -> Mem {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("read /proc/PID/status");
    let mut m = Mem::default();
    for line in status.lines() {
        let Some((key, value)) = line.split_once(':') else {
            continue;
        };
        let kb = || value.trim().trim_end_matches(" kB").trim().parse::<u64>().unwrap_or(0);
        match key {
            "VmRSS" => m.rss = kb(),
            "VmHWM" => m.hwm = kb(),
            "RssAnon" => m.anon = kb(),
            "RssFile" => m.file = kb(),
            _ => {}
        }
    }
    m
}

/// A thread's time on a CPU (ns) and the number of times it was switched
/// in, from `/proc/PID/task/PID/schedstat` (the process's main thread).
fn sched(pid: u32) -> (u64, u64) {
    let s = std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/schedstat")).unwrap_or_default();
    let v: Vec<u64> = s.split_whitespace().filter_map(|x| x.parse().ok()).collect();
    (v.first().copied().unwrap_or(0), v.get(2).copied().unwrap_or(0))
}

/// The machine's idle and total CPU time so far (`/proc/stat`, in ticks).
fn cpu_idle() -> (u64, u64) {
    let s = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let v: Vec<u64> = s
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    let idle = v.get(3).copied().unwrap_or(0) + v.get(4).copied().unwrap_or(0);
    (idle, v.iter().take(8).sum())
}

fn mb(kb: u64) -> String {
    format!("{:.1} MB", kb as f64 * 1024.0 / 1e6)
}

fn us(d: Duration) -> String {
    let us = d.as_secs_f64() * 1e6;
    if us >= 10_000.0 {
        format!("{:.1} ms", us / 1000.0)
    } else if us >= 100.0 {
        format!("{us:.0} µs")
    } else {
        format!("{us:.1} µs")
    }
}

struct Row {
    figure: String,
    waymark: String,
    duplex: String,
    floor: String,
    ratio: String,
    target: String,
    met: bool,
}

fn ratio(a: f64, b: f64) -> String {
    if b > 0.0 {
        format!("{:.1}×", a / b)
    } else {
        "—".into()
    }
}

fn print_table(rows: &[Row]) {
    println!();
    println!(
        "| figure | waymark serve (release, stdio) | WaymarkServer in-process (duplex) | floor: Tracker in-process | ratio to floor | target | met |"
    );
    println!("|---|---:|---:|---:|---:|---:|:---:|");
    for r in rows {
        println!(
            "| {} | {} | {} | {} | {} | {} | {} |",
            r.figure,
            r.waymark,
            r.duplex,
            r.floor,
            r.ratio,
            r.target,
            if r.met { "yes" } else { "**no**" }
        );
    }
}

fn main() {
    let bin = waymark_bin();
    assert!(
        bin.exists(),
        "build the release binary first: cargo build --release ({})",
        bin.display()
    );
    if std::env::args().any(|a| a == "--sync-pull") {
        serve_pull::run(&bin);
        return;
    }
    eprintln!("[bench mcp] binary {}", bin.display());
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let mut rows = Vec::new();

    // Idle memory on an empty store, beside `cat` (a process that only
    // waits on its stdin) as the floor.
    let empty = tempfile::tempdir().expect("temp dir");
    let mut idle = StdioClient::spawn(&bin, empty.path());
    idle.handshake();
    let tools = idle.tools_list();
    std::thread::sleep(Duration::from_millis(300));
    let idle_mem = mem(idle.pid());
    idle.close();
    let mut cat = Command::new("cat")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("spawn cat");
    std::thread::sleep(Duration::from_millis(100));
    let cat_mem = mem(cat.id());
    drop(cat.stdin.take());
    cat.wait().expect("wait for cat");
    eprintln!("[memory] idle, empty store, {tools} tools: {idle_mem:?}; cat: {cat_mem:?}");

    let f = build();

    // From process start to the answer of the first tools/list, on the big
    // store. Floor: open the tracker, start WaymarkServer on a duplex pipe,
    // initialize and list the tools, all in-process. Also `waymark --version`.
    let (mut starts, mut inproc_starts, mut version_starts) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..STARTS {
        let t = Instant::now();
        let mut c = StdioClient::spawn(&bin, &f.dir);
        c.handshake();
        let n = c.tools_list();
        starts.push(t.elapsed());
        assert_eq!(n, tools);
        c.close();

        let t = Instant::now();
        let n = runtime.block_on(async {
            let tracker = Tracker::open(&f.dir).expect("open");
            let mut c = PipeClient::start(tracker).await;
            c.tools_list().await
        });
        inproc_starts.push(t.elapsed());
        assert_eq!(n, tools);

        let t = Instant::now();
        let out = Command::new(&bin).arg("--version").output().expect("--version");
        version_starts.push(t.elapsed());
        assert!(out.status.success());
    }
    let (start, inproc_start, version_start) = (
        median(&mut starts),
        median(&mut inproc_starts),
        median(&mut version_starts),
    );
    eprintln!(
        "[start] serve to first tools/list: median {start:?} (min {:?}, max {:?}); in-process {inproc_start:?}; --version {version_start:?}",
        starts[0],
        starts[starts.len() - 1]
    );

    // One long session each: the release binary over stdio, WaymarkServer
    // over a duplex pipe, and the tracker itself.
    let mut server = StdioClient::spawn(&bin, &f.dir);
    server.handshake();
    let _ = server.tools_list();
    let fresh_mem = mem(server.pid());
    let mut pipe = runtime.block_on(PipeClient::start(f.tracker.clone()));
    let tracker = &f.tracker;
    let vargs = vendor_args(&f);
    let name = f.vendor_query.as_str();

    // query_vendor_status round trips, warmed up, interleaved in rounds.
    let queries = scale(VENDOR_QUERIES);
    let warmup = scale(VENDOR_WARMUP);
    for _ in 0..warmup {
        server.call("query_vendor_status", &vargs);
        runtime.block_on(pipe.call("query_vendor_status", &vargs));
        tracker.query_vendor_status(name).expect("vendor");
    }
    // The process boundary alone: the same request line echoed by `cat`.
    let mut echo = Command::new("cat")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn cat");
    let mut echo_in = echo.stdin.take().expect("cat stdin");
    let mut echo_out = BufReader::new(echo.stdout.take().expect("cat stdout"));
    let mut echo_line = call_line(1, "query_vendor_status", &vargs);
    echo_line.push('\n');
    let mut echoed = String::new();
    let (mut q_stdio, mut q_pipe, mut q_floor, mut q_echo) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    // What the server's main thread and the machine did during the stdio
    // calls: the round trip depends on whether the vCPUs were idle (see
    // BENCHMARKS.md, "why the stdio round trip varies").
    let (mut stdio_sched, mut stdio_idle) = ((0u64, 0u64), (0u64, 0u64));
    for _ in 0..ROUNDS {
        for _ in 0..queries / ROUNDS {
            echoed.clear();
            let t = Instant::now();
            echo_in.write_all(echo_line.as_bytes()).expect("write to cat");
            echo_out.read_line(&mut echoed).expect("read from cat");
            q_echo.push(t.elapsed());
            assert_eq!(echoed, echo_line);
        }
        let (on_cpu, switches) = sched(server.pid());
        let idle = cpu_idle();
        for _ in 0..queries / ROUNDS {
            q_stdio.push(server.call("query_vendor_status", &vargs));
        }
        let (on_cpu2, switches2) = sched(server.pid());
        let idle2 = cpu_idle();
        stdio_sched.0 += on_cpu2 - on_cpu;
        stdio_sched.1 += switches2 - switches;
        stdio_idle.0 += idle2.0 - idle.0;
        stdio_idle.1 += idle2.1 - idle.1;
        runtime.block_on(async {
            for _ in 0..queries / ROUNDS {
                q_pipe.push(pipe.call("query_vendor_status", &vargs).await);
            }
        });
        for _ in 0..queries / ROUNDS {
            let t = Instant::now();
            let v = tracker.query_vendor_status(name).expect("vendor");
            q_floor.push(t.elapsed());
            std::hint::black_box(v);
        }
    }
    let after_queries_mem = mem(server.pid());
    drop(echo_in);
    echo.wait().expect("wait for cat");
    let (em, ep) = (median(&mut q_echo), p99(&mut q_echo));
    eprintln!("[queries] the request line echoed through cat: median {em:?}, p99 {ep:?}");
    eprintln!(
        "[queries] stdio: the server's main thread ran {:.1} µs and was switched in {:.2} times per call; the vCPUs were {}% idle meanwhile",
        stdio_sched.0 as f64 / 1e3 / q_stdio.len() as f64,
        stdio_sched.1 as f64 / q_stdio.len() as f64,
        100 * stdio_idle.0 / stdio_idle.1.max(1)
    );
    // Calls that do not follow one another: 2 ms apart, the server asleep
    // and its vCPU idle before each (what a model's calls look like).
    let mut q_apart: Vec<Duration> = (0..scale(VENDOR_WARMUP))
        .map(|_| {
            std::thread::sleep(Duration::from_millis(2));
            server.call("query_vendor_status", &vargs)
        })
        .collect();
    eprintln!(
        "[queries] stdio, {} calls 2 ms apart: median {:?}, p99 {:?}",
        q_apart.len(),
        median(&mut q_apart),
        p99(&mut q_apart)
    );

    // 10,000 sequential create_work_item calls per path, interleaved.
    let creates = scale(CREATES);
    let (mut c_stdio, mut c_pipe, mut c_floor) = (Vec::new(), Vec::new(), Vec::new());
    let (mut n_stdio, mut n_pipe, mut n_floor) = (0, 0, 0);
    for round in 0..ROUNDS {
        let per = creates / ROUNDS;
        for _ in 0..per {
            n_stdio += 1;
            c_stdio.push(server.call("create_work_item", &create_args(&f.parents[0], n_stdio)));
        }
        runtime.block_on(async {
            for _ in 0..per {
                n_pipe += 1;
                c_pipe.push(pipe.call("create_work_item", &create_args(&f.parents[1], n_pipe)).await);
            }
        });
        for _ in 0..per {
            n_floor += 1;
            let input = NewWorkItem {
                item_type: "task".into(),
                title: format!("benchmark task {n_floor}"),
                parent_id: Some(f.parents[2].clone()),
                ..NewWorkItem::default()
            };
            let t = Instant::now();
            let item = tracker.create_work_item(AUTHOR, input).expect("create");
            c_floor.push(t.elapsed());
            std::hint::black_box(item);
        }
        eprintln!("[creates] round {} of {ROUNDS}", round + 1);
    }
    let per_second = |v: &[Duration]| v.len() as f64 / v.iter().sum::<Duration>().as_secs_f64();
    let (ps_stdio, ps_pipe, ps_floor) = (per_second(&c_stdio), per_second(&c_pipe), per_second(&c_floor));
    let after_creates_mem = mem(server.pid());
    server.close();
    eprintln!(
        "[memory] big store: after handshake {fresh_mem:?}; after {queries} queries {after_queries_mem:?}; after {creates} creates {after_creates_mem:?}"
    );
    eprintln!(
        "[creates] median per call: stdio {:?}, duplex {:?}, tracker {:?}",
        median(&mut c_stdio),
        median(&mut c_pipe),
        median(&mut c_floor)
    );

    let (qm, qp) = (median(&mut q_stdio), p99(&mut q_stdio));
    let (pm, pp) = (median(&mut q_pipe), p99(&mut q_pipe));
    let (fm, fp) = (median(&mut q_floor), p99(&mut q_floor));
    let s = |d: Duration| d.as_secs_f64();
    rows.push(Row {
        figure: format!(
            "`query_vendor_status` round trip, median ({queries} calls; the line echoed through `cat`: {})",
            us(em)
        ),
        waymark: us(qm),
        duplex: us(pm),
        floor: us(fm),
        ratio: ratio(s(qm), s(fm)),
        target: "< 100 µs".into(),
        met: qm < Duration::from_micros(100),
    });
    rows.push(Row {
        figure: format!("`query_vendor_status` round trip, p99 (echo through `cat`: {})", us(ep)),
        waymark: us(qp),
        duplex: us(pp),
        floor: us(fp),
        ratio: ratio(s(qp), s(fp)),
        target: "< 1 ms".into(),
        met: qp < Duration::from_millis(1),
    });
    rows.push(Row {
        figure: format!("{creates} sequential `create_work_item` calls"),
        waymark: format!("{ps_stdio:.0}/s"),
        duplex: format!("{ps_pipe:.0}/s"),
        floor: format!("{ps_floor:.0}/s"),
        ratio: ratio(ps_floor, ps_stdio),
        target: "> 5,000/s".into(),
        met: ps_stdio > 5_000.0,
    });
    rows.push(Row {
        figure: format!(
            "process start to the first `tools/list` answer, big store (median of {STARTS}; `waymark --version`: {})",
            us(version_start)
        ),
        waymark: us(start),
        duplex: us(inproc_start),
        floor: "—".into(),
        ratio: ratio(s(start), s(inproc_start)) + " (to duplex)",
        target: "< 50 ms".into(),
        met: start < Duration::from_millis(50),
    });
    rows.push(Row {
        figure: format!(
            "VmRSS idle, empty store (anon {}, file {}; floor: `cat`)",
            mb(idle_mem.anon),
            mb(idle_mem.file)
        ),
        waymark: mb(idle_mem.rss),
        duplex: "—".into(),
        floor: mb(cat_mem.rss),
        ratio: ratio(idle_mem.rss as f64, cat_mem.rss as f64),
        target: "< 20 MB".into(),
        met: (idle_mem.rss as f64) * 1024.0 < 20e6,
    });
    rows.push(Row {
        figure: format!(
            "VmRSS after the {creates} creates, big store (anon {}, file {}, VmHWM {}; floor: the same server after its handshake)",
            mb(after_creates_mem.anon),
            mb(after_creates_mem.file),
            mb(after_creates_mem.hwm)
        ),
        waymark: mb(after_creates_mem.rss),
        duplex: "—".into(),
        floor: mb(fresh_mem.rss),
        ratio: ratio(after_creates_mem.rss as f64, fresh_mem.rss as f64),
        target: "< 60 MB".into(),
        met: (after_creates_mem.rss as f64) * 1024.0 < 60e6,
    });
    print_table(&rows);
}
