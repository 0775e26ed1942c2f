//! The board's figures (issue 16): the first contentful paint of the work
//! page (`/`) in headless Chromium, and the server's render time of it.
//!
//! 1. Render: `Board::render` of `/` in this process, on a store of 1,200
//!    and one of 10,000 work items (the bench fixture, through
//!    `Tracker::import_json`): an unchanged store (what a reload or a second
//!    browser costs), and a fresh render (what the first request after a
//!    change costs; `Board::render_fresh`).
//! 2. Paint: the release binary `waymark serve --http` on each store (and
//!    on an empty one: the same-run baseline), headless Chromium driven over
//!    the DevTools protocol (`--remote-debugging-pipe`), each page loaded
//!    `ROUNDS` times in a new order each round, with a one-word page from
//!    a loopback server of this process (the browser's floor); `performance` gives the first contentful paint, the
//!    first byte of the answer and the DOM's size. Then once more with the
//!    browser's cache off (a first visit: the stylesheet and script
//!    fetched too).
//!
//! `cargo build --release --bin waymark && cargo bench --bench board`
//! (`WAYMARK_BENCH_BIN` runs another binary, `WAYMARK_CHROMIUM` another
//! browser; `WAYMARK_BENCH_BASE_BIN` also serves the two stores with an
//! older build, loaded in the same rounds). Under `cargo test --benches` the stores are 10 times smaller
//! and the rounds few: a smoke test. Without Chromium the paint part is
//! skipped, saying so.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use waymark::Tracker;
use waymark::board::{Board, Page};

#[path = "support/fixture.rs"]
mod fixture;
use fixture::*;

const AUTHOR: &str = "bench";
/// Loads per page (each measured), interleaved between the pages.
const ROUNDS: usize = 25;

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

/// A repository (`.git/`, the store in `.waymark/`) with `n` work items.
struct Repo {
    dir: tempfile::TempDir,
    items: usize,
}

impl Repo {
    fn new(n: usize) -> Repo {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::create_dir(dir.path().join(".git")).unwrap();
        let tracker = Tracker::open(&dir.path().join(".waymark")).expect("open");
        if n > 0 {
            let started = Instant::now();
            let (doc, _) = document("board", n, 45, 50, n / 4);
            tracker.import_json(AUTHOR, doc).expect("import");
            eprintln!("[fixture] {n} items imported in {:.1?}", started.elapsed());
        }
        Repo { dir, items: n }
    }

    fn data_dir(&self) -> PathBuf {
        self.dir.path().join(".waymark")
    }
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs[xs.len() / 2]
}

/// Quartiles and median, as `p25 / median / p75`.
fn spread(xs: &[f64]) -> String {
    let mut v = xs.to_vec();
    v.sort_by(f64::total_cmp);
    let at = |q: f64| v[((v.len() - 1) as f64 * q).round() as usize];
    format!("{:.0} / {:.0} / {:.0}", at(0.25), at(0.5), at(0.75))
}

/// The server's render of a page, in this process (µs per render, median).
fn render_times(repo: &Repo, which: Page, runs: usize) -> (f64, f64, usize) {
    let board = Board::new(Tracker::open(&repo.data_dir()).expect("open"));
    let page = board.render(which, false).expect("render");
    let time = |f: &dyn Fn() -> std::sync::Arc<str>| {
        let mut times = Vec::with_capacity(runs);
        for _ in 0..runs {
            let t = Instant::now();
            std::hint::black_box(f());
            times.push(t.elapsed().as_secs_f64() * 1e6);
        }
        median(times)
    };
    let cached = time(&|| board.render(which, false).unwrap());
    let fresh = time(&|| board.render_fresh(which, false).unwrap());
    (cached, fresh, page.len())
}

/// A loopback server answering every request with a page of one word: the
/// browser's floor, over the same kind of connection as the board (a
/// `data:` page would cost a renderer of its own, and the page loaded
/// after it another).
fn floor_server() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut request = [0u8; 4096];
            let _ = stream.read(&mut request);
            let page = "<!doctype html><title>t</title><p>floor</p>";
            let _ = write!(
                stream,
                "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nCache-Control: no-store\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{page}",
                page.len()
            );
        }
    });
    addr
}

/// `waymark serve --http 127.0.0.1:0` on a repository.
struct Server {
    child: Child,
    addr: String,
}

impl Server {
    fn start(bin: &Path, repo: &Repo) -> Server {
        let mut child = Command::new(bin)
            .args([
                "--data-dir",
                repo.data_dir().to_str().unwrap(),
                "serve",
                "--http",
                "127.0.0.1:0",
            ])
            .env_remove("WAYMARK_HTTP_TOKEN")
            .current_dir(repo.dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start waymark serve --http");
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let addr = loop {
            let line = lines.next().expect("serve names its address").unwrap();
            if let Some(url) = line.strip_prefix("waymark: serving MCP on http://") {
                break url.strip_suffix("/mcp").unwrap().to_owned();
            }
        };
        std::thread::spawn(move || for _ in lines {});
        Server { child, addr }
    }

    /// The body of `GET path`.
    fn get(&self, path: &str) -> Vec<u8> {
        let mut s = TcpStream::connect(&self.addr).unwrap();
        write!(s, "GET {path} HTTP/1.0\r\nHost: {}\r\n\r\n", self.addr).unwrap();
        let mut answer = Vec::new();
        s.read_to_end(&mut answer).unwrap();
        let body = answer.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
        assert!(answer.starts_with(b"HTTP/1.1 200") || answer.starts_with(b"HTTP/1.0 200"));
        answer[body..].to_vec()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Headless Chromium over `--remote-debugging-pipe` (commands on its fd 3,
/// answers on fd 4, each message ended by a NUL).
struct Browser {
    child: Child,
    stdin: ChildStdin,
    messages: mpsc::Receiver<Value>,
    next_id: u64,
    session: Option<String>,
    _profile: tempfile::TempDir,
}

impl Browser {
    fn find() -> Option<String> {
        if let Ok(path) = std::env::var("WAYMARK_CHROMIUM") {
            return Some(path);
        }
        ["chromium", "chromium-browser", "google-chrome"]
            .into_iter()
            .find_map(|name| {
                std::env::var_os("PATH").and_then(|paths| {
                    std::env::split_paths(&paths)
                        .map(|d| d.join(name))
                        .find(|p| p.is_file())
                        .map(|p| p.display().to_string())
                })
            })
    }

    fn start(binary: &str) -> Browser {
        let profile = tempfile::tempdir().unwrap();
        let mut child = Command::new("sh")
            .arg("-c")
            .arg(r#"exec "$0" --headless=new --no-sandbox --disable-gpu --disable-dev-shm-usage --no-first-run --remote-debugging-pipe --user-data-dir="$1" about:blank 3<&0 4>&1 0</dev/null 1>/dev/null 2>/dev/null"#)
            .arg(binary)
            .arg(profile.path())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("start chromium");
        let stdin = child.stdin.take().unwrap();
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let (tx, messages) = mpsc::channel();
        std::thread::spawn(move || {
            loop {
                let mut m = Vec::new();
                if stdout.read_until(0, &mut m).unwrap_or(0) == 0 {
                    return;
                }
                m.pop();
                if tx.send(serde_json::from_slice(&m).unwrap()).is_err() {
                    return;
                }
            }
        });
        let mut b = Browser {
            child,
            stdin,
            messages,
            next_id: 0,
            session: None,
            _profile: profile,
        };
        let target = b.send("Target.createTarget", json!({"url": "about:blank"}));
        let attached = b.send(
            "Target.attachToTarget",
            json!({"targetId": target["targetId"], "flatten": true}),
        );
        b.session = Some(attached["sessionId"].as_str().unwrap().to_owned());
        b.send("Page.enable", json!({}));
        b.send("Network.enable", json!({}));
        // A page in the background is never painted.
        b.send("Page.bringToFront", json!({}));
        b.send(
            "Emulation.setDeviceMetricsOverride",
            json!({"width": 1280, "height": 860, "deviceScaleFactor": 1, "mobile": false}),
        );
        b
    }

    fn next(&mut self) -> Value {
        self.messages
            .recv_timeout(Duration::from_secs(120))
            .expect("chromium answers")
    }

    fn send(&mut self, method: &str, params: Value) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        let mut message = json!({"id": id, "method": method, "params": params});
        if let Some(s) = &self.session {
            message["sessionId"] = json!(s);
        }
        let mut bytes = serde_json::to_vec(&message).unwrap();
        bytes.push(0);
        self.stdin.write_all(&bytes).unwrap();
        loop {
            let m = self.next();
            if m["id"] == json!(id) {
                assert!(m.get("error").is_none(), "{method}: {m}");
                return m["result"].clone();
            }
        }
    }

    fn eval(&mut self, expression: &str) -> Value {
        self.send(
            "Runtime.evaluate",
            json!({"expression": expression, "returnByValue": true}),
        )["result"]["value"]
            .clone()
    }

    /// Load `url`; its first contentful paint, first byte (ms from the
    /// navigation's start) and element count.
    fn load(&mut self, url: &str) -> (f64, f64, f64) {
        self.send("Page.navigate", json!({"url": url}));
        loop {
            if self.next()["method"] == "Page.loadEventFired" {
                break;
            }
        }
        let started = Instant::now();
        loop {
            let v = self.eval(
                "(() => { const p = performance.getEntriesByName('first-contentful-paint')[0];
                  const n = performance.getEntriesByType('navigation')[0];
                  return p ? [p.startTime, n ? n.responseStart : 0, document.getElementsByTagName('*').length] : null })()",
            );
            if let Some(a) = v.as_array() {
                let f = |k: usize| a[k].as_f64().unwrap_or(0.0);
                return (f(0), f(1), f(2));
            }
            assert!(started.elapsed() < Duration::from_secs(10), "no paint entry for {url}");
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn main() {
    let bench = bench_mode();
    let (small, big) = if bench { (1_200, 10_000) } else { (120, 1_000) };
    let rounds = if bench { ROUNDS } else { 2 };
    let empty = Repo::new(0);
    let repo = Repo::new(small);
    let big_repo = Repo::new(big);

    for which in [Page::Work, Page::Tree] {
        println!(
            "## The server's render of `{}` (in process, median of the runs)\n",
            which.path()
        );
        println!("| store | unchanged store | fresh render | page |");
        println!("|---|---:|---:|---:|");
        for (r, runs) in [
            (&empty, 200),
            (&repo, if bench { 200 } else { 5 }),
            (&big_repo, if bench { 40 } else { 3 }),
        ] {
            let (cached, fresh, bytes) = render_times(r, which, runs);
            println!("| {} items | {cached:.0} µs | {fresh:.0} µs | {bytes} B |", r.items);
        }
        println!();
    }

    let bin = waymark_bin();
    assert!(
        bin.exists(),
        "build the release binary first: cargo build --release --bin waymark ({})",
        bin.display()
    );
    let Some(chromium) = Browser::find() else {
        println!("\nSKIPPED the first paint: no chromium (apt-get install -y chromium, or set WAYMARK_CHROMIUM)");
        return;
    };
    let mut servers: Vec<(String, Server)> = [&empty, &repo, &big_repo]
        .into_iter()
        .map(|r| (format!("board, {} items", r.items), Server::start(&bin, r)))
        .collect();
    // Another build on the same stores, measured in the same run.
    if let Some(base) = std::env::var_os("WAYMARK_BENCH_BASE_BIN") {
        let base = PathBuf::from(base);
        for r in [&repo, &big_repo] {
            servers.push((
                format!("board, {} items, base binary", r.items),
                Server::start(&base, r),
            ));
        }
    }
    println!("\n## Page weight of `/` with its stylesheet and script\n");
    for (name, s) in &servers {
        let weight: usize = ["/", "/assets/board.css", "/assets/board.js"]
            .iter()
            .map(|p| s.get(p).len())
            .sum();
        println!("- {name}: {weight} B");
    }
    let mut pages: Vec<(String, String)> =
        vec![("one-word page (floor)".into(), format!("http://{}/", floor_server()))];
    pages.extend(
        servers
            .iter()
            .map(|(name, s)| (name.clone(), format!("http://{}/", s.addr))),
    );
    let mut browser = Browser::start(&chromium);
    for cache in [true, false] {
        browser.send("Network.setCacheDisabled", json!({"cacheDisabled": !cache}));
        // One load each to warm the browser and the servers.
        for (_, url) in &pages {
            browser.load(url);
        }
        let mut paints = vec![Vec::new(); pages.len()];
        let mut firsts = vec![Vec::new(); pages.len()];
        let mut nodes = vec![0.0; pages.len()];
        let mut rng = Rng(7);
        for _ in 0..rounds {
            // A new order each round, so no page always follows the same one.
            let mut order: Vec<usize> = (0..pages.len()).collect();
            for k in (1..order.len()).rev() {
                order.swap(k, rng.below(k + 1));
            }
            for p in order {
                let (fcp, ttfb, n) = browser.load(&pages[p].1);
                paints[p].push(fcp);
                firsts[p].push(ttfb);
                nodes[p] = n;
            }
        }
        println!(
            "\n## First contentful paint, headless Chromium, {rounds} loads each, interleaved ({})\n",
            if cache {
                "browser cache on: a reload"
            } else {
                "browser cache off: a first visit"
            }
        );
        println!(
            "| page | elements | first byte (ms) | first paint (ms) min / p25 / median / p75 | over the floor, same round (median) | vs. the empty store |"
        );
        println!("|---|---:|---:|---:|---:|---:|");
        let base = median(paints[1].clone());
        for (k, (name, _)) in pages.iter().enumerate() {
            let min = paints[k].iter().copied().fold(f64::INFINITY, f64::min);
            let over: Vec<f64> = paints[k].iter().zip(&paints[0]).map(|(p, f)| p - f).collect();
            println!(
                "| {name} | {} | {:.1} | {min:.0} / {} | {:+.0} | {:.2}x |",
                nodes[k],
                median(firsts[k].clone()),
                spread(&paints[k]),
                median(over),
                median(paints[k].clone()) / base
            );
        }
    }
}
