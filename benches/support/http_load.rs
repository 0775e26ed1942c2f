//! `cargo bench --bench mcp -- --http-load`: `waymark serve --http` under
//! many sessions and under heavy searches (issue 12's figures), on the
//! same store of 100,000 work items as the stdio figures.
//!
//! 1. Memory: the server's resident memory with one session, then after
//!    5,000 sessions (initialize, initialized, one tool call) opened in
//!    rounds of 125 (the cap is 128 at once) and ended with DELETE, and
//!    after a last round of 125 left idle until the server reaps them
//!    (`SESSION_IDLE`, 120 s, plus a margin).
//! 2. Latency: `query_vendor_status` calls from one client, back to back,
//!    alone (the floor), then (for at most 60 s) while 50 other clients
//!    each send maximal searches (`list_work_items` with a 1,000-character
//!    `text` of 32 different words) back to back.
//!
//! Every request is one HTTP/1.0 connection (closed after the answer), as a
//! simple client does. `WAYMARK_BENCH_BIN` runs another binary.

use std::io::Read;
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use super::*;

const SESSIONS: usize = 5_000;
const ROUND: usize = 125;
const SEARCHERS: usize = 50;
const PROBES: usize = 2_000;
/// How long the probe runs at most while the searchers search.
const LOADED_FOR: Duration = Duration::from_secs(60);
/// The server's idle timeout for sessions (`waymark::mcp::http::SESSION_IDLE`)
/// and a margin for its reaper.
const REAP_WAIT: Duration = Duration::from_secs(135);

struct Http {
    addr: SocketAddr,
}

impl Http {
    /// One request: the status, the session id header, the JSON-RPC
    /// messages of the body (SSE or JSON).
    fn request(&self, method: &str, session: Option<&str>, body: Option<&Value>) -> (u16, Option<String>, Vec<Value>) {
        let body = body.map(Value::to_string).unwrap_or_default();
        let mut request = format!(
            "{method} /mcp HTTP/1.0\r\nHost: {}\r\nContent-Type: application/json\r\n\
             Accept: application/json, text/event-stream\r\nMCP-Protocol-Version: 2025-11-25\r\n\
             Content-Length: {}\r\n",
            self.addr,
            body.len()
        );
        if let Some(id) = session {
            request.push_str(&format!("Mcp-Session-Id: {id}\r\n"));
        }
        request.push_str("\r\n");
        request.push_str(&body);
        let mut stream = TcpStream::connect(self.addr).expect("connect");
        stream.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
        stream.write_all(request.as_bytes()).expect("send");
        let mut response = Vec::new();
        stream.read_to_end(&mut response).expect("the response ends");
        let response = String::from_utf8_lossy(&response);
        let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
        let status = head.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
        let header = |name: &str| {
            head.lines().find_map(|l| {
                let (k, v) = l.split_once(':')?;
                k.eq_ignore_ascii_case(name).then(|| v.trim().to_string())
            })
        };
        let messages = if header("content-type").is_some_and(|t| t.starts_with("text/event-stream")) {
            body.lines()
                .filter_map(|l| l.strip_prefix("data:"))
                .map(str::trim)
                .filter_map(|d| serde_json::from_str(d).ok())
                .collect()
        } else {
            serde_json::from_str(body).into_iter().collect()
        };
        (status, header("mcp-session-id"), messages)
    }

    fn open(&self, name: &str) -> String {
        let init = json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
            "protocolVersion": "2025-11-25", "capabilities": {},
            "clientInfo": {"name": name, "version": "1.0.0"}}});
        let (status, session, messages) = self.request("POST", None, Some(&init));
        assert_eq!(status, 200, "initialize: {messages:?}");
        let session = session.expect("a session id");
        let (status, _, _) = self.request(
            "POST",
            Some(&session),
            Some(&serde_json::from_str(INITIALIZED).unwrap()),
        );
        assert!(status == 202 || status == 200, "initialized: {status}");
        session
    }

    /// One tool call, checked; how long it took.
    fn call(&self, session: &str, id: u64, tool: &str, args: &Value) -> Duration {
        let body: Value = serde_json::from_str(&call_line(id, tool, args)).unwrap();
        let t = Instant::now();
        let (status, _, messages) = self.request("POST", Some(session), Some(&body));
        let took = t.elapsed();
        assert_eq!(status, 200, "{tool}: {messages:?}");
        let answer = messages.iter().find(|m| m["id"] == json!(id)).expect("an answer");
        assert!(
            answer.get("result").is_some() && answer["result"]["isError"] != json!(true),
            "{tool}: {answer}"
        );
        took
    }

    fn close(&self, session: &str) {
        let (status, _, _) = self.request("DELETE", Some(session), None);
        assert!(status == 200 || status == 202 || status == 204, "DELETE: {status}");
    }
}

/// The longest search a client may send: 1,000 characters of 32 different
/// one-letter words (each a prefix of many terms: the most index entries
/// to scan).
fn maximal_search() -> String {
    let words: Vec<char> = ('a'..='z').chain('0'..='5').collect();
    assert_eq!(words.len(), 32);
    let mut text = String::new();
    for c in words.iter().cycle() {
        if text.len() + 2 > 1000 {
            break;
        }
        text.push(*c);
        text.push(' ');
    }
    while text.len() < 1000 {
        text.push(' ');
    }
    text
}

fn summary(v: &mut [Duration]) -> String {
    let max = *v.iter().max().unwrap();
    format!("median {}, p99 {}, max {}", us(median(v)), us(p99(v)), us(max))
}

pub fn run(bin: &Path) {
    let f = build();
    let mut child = Command::new(bin)
        .arg("--data-dir")
        .arg(&f.dir)
        .args(["serve", "--http", "127.0.0.1:0"])
        .current_dir(&f.dir)
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn waymark serve --http");
    let mut stderr = BufReader::new(child.stderr.take().expect("stderr"));
    let addr: SocketAddr = loop {
        let mut line = String::new();
        assert!(stderr.read_line(&mut line).expect("stderr") > 0, "serve --http exited");
        if let Some(url) = line.trim().strip_prefix("waymark: serving MCP on http://") {
            break url.strip_suffix("/mcp").expect("/mcp").parse().expect("an address");
        }
    };
    std::thread::spawn(move || for _ in stderr.lines() {});
    let pid = child.id();
    let http = Arc::new(Http { addr });
    eprintln!("[bench mcp --http-load] binary {}, serving on {addr}", bin.display());

    // Memory.
    let one = http.open("idle-agent");
    http.call(&one, 1, "query_vendor_status", &vendor_args(&f));
    http.close(&one);
    let idle = mem(pid);
    let started = Instant::now();
    let mut opened = 0;
    let mut last_round = Vec::new();
    while opened < SESSIONS {
        let round: Vec<String> = (0..ROUND.min(SESSIONS - opened))
            .map(|i| http.open(&format!("agent-{}", opened + i)))
            .collect();
        for s in &round {
            http.call(s, 1, "query_vendor_status", &vendor_args(&f));
        }
        opened += round.len();
        if opened < SESSIONS {
            for s in &round {
                http.close(s);
            }
        } else {
            last_round = round;
        }
    }
    let opened_in = started.elapsed();
    let peak = mem(pid);
    eprintln!(
        "[bench mcp --http-load] {SESSIONS} sessions in {opened_in:.1?}; waiting {REAP_WAIT:?} for the last {} to be reaped",
        last_round.len()
    );
    std::thread::sleep(REAP_WAIT);
    let reaped = mem(pid);
    let gone = http.request(
        "POST",
        Some(&last_round[0]),
        Some(&json!({"jsonrpc": "2.0", "id": 9, "method": "ping"})),
    );
    println!();
    println!("| `serve --http` resident memory | RSS | anon | peak (HWM) |");
    println!("|---|---:|---:|---:|");
    for (what, m) in [
        ("idle, after one session".to_owned(), idle),
        (
            format!("{SESSIONS} sessions opened (last {} still open)", last_round.len()),
            peak,
        ),
        (format!("after the idle reaper ({}s)", REAP_WAIT.as_secs()), reaped),
    ] {
        println!("| {what} | {} | {} | {} |", mb(m.rss), mb(m.anon), mb(m.hwm));
    }
    println!(
        "\nafter the reaper, RSS is {:.2}x idle; a reaped session answers HTTP {}",
        reaped.rss as f64 / idle.rss as f64,
        gone.0
    );

    // Latency under maximal searches.
    let probe = http.open("probe-agent");
    let vendor = vendor_args(&f);
    for i in 0..100 {
        http.call(&probe, i, "query_vendor_status", &vendor);
    }
    let mut alone: Vec<Duration> = (0..PROBES as u64)
        .map(|i| http.call(&probe, i, "query_vendor_status", &vendor))
        .collect();
    let search = json!({"text": maximal_search(), "limit": 50});
    let mut one_search: Vec<Duration> = (0..5)
        .map(|i| http.call(&probe, i, "list_work_items", &search))
        .collect();
    let stop = Arc::new(AtomicBool::new(false));
    let searchers: Vec<_> = (0..SEARCHERS)
        .map(|k| {
            let (http, stop, search) = (http.clone(), stop.clone(), search.clone());
            std::thread::spawn(move || {
                let session = http.open(&format!("searcher-{k}"));
                let mut took = Vec::new();
                let mut id = 0;
                while !stop.load(Ordering::Relaxed) {
                    id += 1;
                    took.push(http.call(&session, id, "list_work_items", &search));
                }
                http.close(&session);
                took
            })
        })
        .collect();
    std::thread::sleep(Duration::from_secs(1));
    let loaded_from = Instant::now();
    let mut loaded: Vec<Duration> = Vec::new();
    while loaded.len() < PROBES && loaded_from.elapsed() < LOADED_FOR {
        loaded.push(http.call(&probe, loaded.len() as u64, "query_vendor_status", &vendor));
    }
    let loaded_for = loaded_from.elapsed();
    stop.store(true, Ordering::Relaxed);
    let mut searches: Vec<Duration> = searchers
        .into_iter()
        .flat_map(|h| h.join().expect("searcher"))
        .collect();
    http.close(&probe);
    println!();
    println!("| over HTTP | calls | latency |");
    println!("|---|---:|---|");
    println!("| a maximal search, alone | 5 | {} |", summary(&mut one_search));
    println!(
        "| `query_vendor_status`, alone | {} | {} |",
        alone.len(),
        summary(&mut alone)
    );
    println!(
        "| `query_vendor_status` while {SEARCHERS} clients search (maximal text) | {} | {} |",
        loaded.len(),
        summary(&mut loaded)
    );
    println!(
        "| the {SEARCHERS} clients' searches (in {loaded_for:.1?}) | {} | {} |",
        searches.len(),
        summary(&mut searches)
    );
    let _ = child.kill();
    let _ = child.wait();
}
