//! Test support for the Postgres hub (behind the `testing` feature): a
//! Postgres server to test against, a database per test, a hub over it, and
//! a TCP proxy that injects network faults.
//!
//! ```text
//! use waymark_sync::postgres::testing::{block_on, TestHub, FaultProxy};
//! block_on(async {
//!     let hub = TestHub::create("my_test").await;        // fresh database, migrated
//!     let proxy = FaultProxy::start(hub.db.url());        // 127.0.0.1:<free port> -> Postgres
//!     let flaky = hub.db.hub_at(&proxy.url()).await;       // a PostgresHub through the proxy
//!     proxy.cut_at_reply(3);                               // cut instead of the 3rd server reply
//! });
//! ```
//!
//! The server is `WAYMARK_TEST_DATABASE_URL` (default
//! `postgres://postgres@127.0.0.1:5432/postgres`; the role must be allowed to
//! create databases). When nothing answers there, a throwaway cluster is
//! started from the installed binaries (`/usr/lib/postgresql/*/bin/initdb`)
//! in a temporary directory on a free port, and stopped when the test
//! process exits (with TLS on, using Debian's snakeoil certificate, when
//! its key is readable). When neither works, the tests fail with a message
//! that says how to get a server: they never pass silently.

use std::collections::HashMap;
use std::future::Future;
use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::ops::Deref;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::thread;
use std::time::Duration;

pub use tokio_postgres;

use super::pool::lock;
use super::{HubOptions, HubUrl, PostgresHub};
use crate::change::Change;
use crate::protocol::{Hub, HubError, PullPage, PushAck};

/// A current-thread tokio runtime with IO and time, as the hub needs.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime")
}

/// Run `future` to completion on a fresh [`runtime`] (the `block_on` of
/// `hub_conformance_tests!` for the Postgres hub).
pub fn block_on<F: Future>(future: F) -> F::Output {
    runtime().block_on(future)
}

/// Debian's self-signed certificate for `localhost` (package ssl-cert).
pub const SNAKEOIL_CERT: &str = "/etc/ssl/certs/ssl-cert-snakeoil.pem";

const DEFAULT_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

const HOW_TO_GET_ONE: &str = "the Postgres hub tests need a Postgres server where the role may CREATE DATABASE. \
     Set WAYMARK_TEST_DATABASE_URL (default postgres://postgres@127.0.0.1:5432/postgres), or start the local \
     server (Debian: pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start), or install \
     PostgreSQL's server binaries (apt-get install postgresql) so the tests can start a throwaway cluster";

/// The server the tests use: found (or started) once per test process.
/// Panics, saying how to get one, when there is none.
pub fn server_url() -> HubUrl {
    static SERVER: OnceLock<Result<HubUrl, String>> = OnceLock::new();
    SERVER
        .get_or_init(find_or_start_server)
        .clone()
        .unwrap_or_else(|why| panic!("{why}"))
}

fn find_or_start_server() -> Result<HubUrl, String> {
    let configured = std::env::var("WAYMARK_TEST_DATABASE_URL").ok();
    let url = HubUrl::parse(configured.as_deref().unwrap_or(DEFAULT_URL))
        .map_err(|e| format!("WAYMARK_TEST_DATABASE_URL: {e}"))?;
    let first = match probe(&url) {
        Ok(()) => return Ok(url),
        Err(e) => e,
    };
    match start_throwaway_cluster() {
        Ok(url) => {
            probe(&url)
                .map_err(|e| format!("a throwaway cluster started but does not answer ({e}); {HOW_TO_GET_ONE}"))?;
            eprintln!(
                "waymark tests: {} did not answer ({first}); using a throwaway cluster at {url}",
                url_of(configured)
            );
            Ok(url)
        }
        Err(second) => Err(format!(
            "no Postgres for the tests: {} did not answer ({first}), and no throwaway cluster could be started \
             ({second}); {HOW_TO_GET_ONE}",
            url_of(configured)
        )),
    }
}

fn url_of(configured: Option<String>) -> String {
    configured
        .and_then(|u| HubUrl::parse(&u).ok())
        .map_or(DEFAULT_URL.to_owned(), |u| u.to_string())
}

/// Connect and run `SELECT 1`, on a thread of its own (callers may be inside a runtime).
fn probe(url: &HubUrl) -> Result<(), String> {
    let url = url.clone();
    thread::spawn(move || {
        block_on(async {
            let client = admin_client(&url).await?;
            client.simple_query("SELECT 1").await.map_err(|e| e.to_string())?;
            Ok(())
        })
    })
    .join()
    .unwrap_or_else(|_| Err("the probe panicked".into()))
}

async fn admin_client(url: &HubUrl) -> Result<tokio_postgres::Client, String> {
    let opts = HubOptions {
        connect_timeout: Duration::from_secs(3),
        ..HubOptions::default()
    };
    let (client, connection) = url
        .config(&opts)
        .connect(super::tls::tls(url).map_err(|e| e.to_string())?)
        .await
        .map_err(|e| url.scrub(e.to_string()))?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(client)
}

fn run(command: &mut Command) -> Result<(), String> {
    let output = command.output().map_err(|e| format!("{command:?}: {e}"))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{command:?} failed: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        ))
    }
}

fn free_port() -> Result<u16, String> {
    let listener = TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    Ok(listener.local_addr().map_err(|e| e.to_string())?.port())
}

/// `initdb` + `pg_ctl start` in a temporary directory, as the `postgres`
/// system user when running as root; a watchdog stops it and removes the
/// directory when this process exits.
fn start_throwaway_cluster() -> Result<HubUrl, String> {
    let bin = std::fs::read_dir("/usr/lib/postgresql")
        .map_err(|_| "no /usr/lib/postgresql".to_owned())?
        .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
        .filter(|bin| bin.join("initdb").exists())
        .max_by_key(|bin| {
            bin.parent()
                .and_then(|v| v.file_name())
                .and_then(|v| v.to_str())
                .and_then(|v| v.parse::<u32>().ok())
                .unwrap_or(0)
        })
        .ok_or("no initdb under /usr/lib/postgresql/*/bin")?;
    let dir = std::env::temp_dir().join(format!(
        "waymark-pg-{}-{}",
        std::process::id(),
        uuid::Uuid::now_v7().simple()
    ));
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let as_root = Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false);
    if as_root {
        run(Command::new("chown").arg("postgres:").arg(&dir))?;
    }
    let command = |program: &Path| {
        if as_root {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(program);
            c
        } else {
            Command::new(program)
        }
    };
    let data = dir.join("data");
    run(command(&bin.join("initdb"))
        .args(["-A", "trust", "-U", "postgres", "--no-sync", "-D"])
        .arg(&data))?;
    let port = free_port()?;
    let mut options = format!(
        "-p {port} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c max_connections=200",
        dir.display()
    );
    // TLS with Debian's snakeoil certificate when the server may read its
    // key, as on a Debian server with ssl = on (the TLS tests need it).
    let (cert, key) = (SNAKEOIL_CERT, "/etc/ssl/private/ssl-cert-snakeoil.key");
    if Path::new(cert).exists() && run(command(Path::new("test")).args(["-r", key])).is_ok() {
        options.push_str(&format!(" -c ssl=on -c ssl_cert_file={cert} -c ssl_key_file={key}"));
    }
    run(command(&bin.join("pg_ctl"))
        .args(["-w", "-t", "30", "-o", &options, "-l"])
        .arg(dir.join("log"))
        .arg("-D")
        .arg(&data)
        .arg("start"))?;
    watch_and_clean(&bin.join("pg_ctl"), &data, &dir, as_root);
    HubUrl::parse(&format!("postgres://postgres@127.0.0.1:{port}/postgres")).map_err(|e| e.to_string())
}

fn watch_and_clean(pg_ctl: &Path, data: &Path, dir: &Path, as_root: bool) {
    let stop = format!(
        "{}{} -D {} stop -m immediate",
        if as_root { "runuser -u postgres -- " } else { "" },
        pg_ctl.display(),
        data.display()
    );
    let script = format!(
        "while kill -0 {pid} 2>/dev/null; do sleep 1; done; {stop} >/dev/null 2>&1; rm -rf {dir}",
        pid = std::process::id(),
        dir = dir.display()
    );
    let _ = Command::new("sh")
        .args(["-c", &script])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn();
}

/// A database of its own for one test: created on [`server_url`] with a
/// random name, and dropped (with its connections) when this is dropped.
pub struct TestDatabase {
    url: HubUrl,
    admin: HubUrl,
    name: String,
}

impl TestDatabase {
    /// Create an empty database named after `label` and a random suffix.
    pub async fn create(label: &str) -> TestDatabase {
        let admin = server_url();
        let label: String = label
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() {
                    c.to_ascii_lowercase()
                } else {
                    '_'
                }
            })
            .take(24)
            .collect();
        let name = format!("waymark_{label}_{}", &uuid::Uuid::now_v7().simple().to_string()[20..]);
        let client = admin_client(&admin)
            .await
            .unwrap_or_else(|e| panic!("{e}; {HOW_TO_GET_ONE}"));
        client
            .batch_execute(&format!("CREATE DATABASE \"{name}\""))
            .await
            .unwrap_or_else(|e| panic!("CREATE DATABASE {name}: {e}; {HOW_TO_GET_ONE}"));
        TestDatabase {
            url: admin.with_database(&name),
            admin,
            name,
        }
    }

    /// The database's URL.
    pub fn url(&self) -> &HubUrl {
        &self.url
    }

    /// The database's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// A hub over this database, migrated.
    pub async fn hub(&self) -> PostgresHub {
        self.hub_with(&self.url, HubOptions::default()).await
    }

    /// A hub reaching this database through `url` (a [`FaultProxy::url`])
    /// with a short call timeout (2 s), after migrating it directly.
    pub async fn hub_at(&self, url: &HubUrl) -> PostgresHub {
        let opts = HubOptions {
            call_timeout: Duration::from_secs(2),
            connect_timeout: Duration::from_secs(2),
            ..HubOptions::default()
        };
        self.hub_with(url, opts).await
    }

    /// A hub through `url` with `opts`; the schema is migrated over
    /// [`TestDatabase::url`] first.
    pub async fn hub_with(&self, url: &HubUrl, opts: HubOptions) -> PostgresHub {
        let direct = PostgresHub::new(self.url.clone(), HubOptions::default()).expect("hub");
        direct.migrate().await.expect("migrate the test database");
        PostgresHub::new(url.clone(), opts).expect("hub")
    }

    /// A plain client on this database (for tests that hold transactions or
    /// look at the tables).
    pub async fn raw_client(&self) -> tokio_postgres::Client {
        admin_client(&self.url).await.expect("connect to the test database")
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let (admin, name) = (self.admin.clone(), self.name.clone());
        // A thread of its own: this may run inside a runtime.
        let _ = thread::spawn(move || {
            block_on(async {
                if let Ok(client) = admin_client(&admin).await {
                    let _ = client
                        .batch_execute(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
                        .await;
                }
            })
        })
        .join();
    }
}

/// A migrated [`PostgresHub`] over a [`TestDatabase`] of its own; a [`Hub`]
/// itself, for `hub_conformance_tests!`.
pub struct TestHub {
    pub hub: PostgresHub,
    pub db: TestDatabase,
}

impl TestHub {
    pub async fn create(label: &str) -> TestHub {
        let db = TestDatabase::create(label).await;
        TestHub {
            hub: db.hub().await,
            db,
        }
    }
}

impl Deref for TestHub {
    type Target = PostgresHub;
    fn deref(&self) -> &PostgresHub {
        &self.hub
    }
}

impl Hub for TestHub {
    async fn push(&self, space: &str, changes: &[Change]) -> Result<PushAck, HubError> {
        self.hub.push(space, changes).await
    }

    async fn pull(&self, space: &str, after_seq: u64, limit: usize) -> Result<PullPage, HubError> {
        self.hub.pull(space, after_seq, limit).await
    }

    async fn snapshots(
        &self,
        space: &str,
        after: Option<&crate::RecordKey>,
        limit: usize,
    ) -> Result<crate::SnapshotPage, HubError> {
        self.hub.snapshots(space, after, limit).await
    }

    async fn report(&self, space: &str, frontier: &crate::Frontier) -> Result<(), HubError> {
        self.hub.report(space, frontier).await
    }
}

impl crate::HubAdmin for TestHub {
    async fn replicas(&self, space: &str) -> Result<Vec<crate::ReplicaInfo>, HubError> {
        self.hub.replicas(space).await
    }

    async fn forget(&self, space: &str, replica: crate::ReplicaId) -> Result<bool, HubError> {
        self.hub.forget(space, replica).await
    }

    async fn compact(&self, space: &str, opts: crate::CompactOptions) -> Result<crate::CompactReport, HubError> {
        self.hub.compact(space, opts).await
    }
}

// ---------------------------------------------------------------------------
// The fault proxy
// ---------------------------------------------------------------------------

/// A TCP proxy on 127.0.0.1 between the hub client and Postgres that cuts,
/// stalls or resets connections on command. Plain threads: it works under
/// any runtime or none.
pub struct FaultProxy {
    addr: SocketAddr,
    upstream_url: HubUrl,
    shared: Arc<Shared>,
}

#[derive(Default)]
struct Shared {
    state: Mutex<ProxyState>,
    wake: Condvar,
    stopped: AtomicBool,
    next_id: AtomicU64,
    /// Server-to-client chunks forwarded so far.
    replies: AtomicU64,
    /// Armed cuts that fired.
    cuts: AtomicU64,
}

#[derive(Default)]
struct ProxyState {
    stalled: bool,
    refusing: bool,
    /// Cut every connection instead of forwarding this reply number.
    cut_at_reply: Option<u64>,
    /// Stall (as [`FaultProxy::stall`]) instead of forwarding this reply number.
    stall_at_reply: Option<u64>,
    /// When the armed cut fires, refuse new connections too (until healed).
    refuse_after_cut: bool,
    conns: HashMap<u64, Link>,
}

struct Link {
    client: TcpStream,
    server: TcpStream,
    dead: Arc<AtomicBool>,
}

impl Link {
    fn cut(&self) {
        self.dead.store(true, Ordering::SeqCst);
        let _ = self.client.shutdown(Shutdown::Both);
        let _ = self.server.shutdown(Shutdown::Both);
    }

    fn reset(&self) {
        self.dead.store(true, Ordering::SeqCst);
        for stream in [&self.client, &self.server] {
            let _ = socket2::SockRef::from(stream).set_linger(Some(Duration::ZERO));
            // Wake the pumps without sending a FIN; the last close sends RST.
            let _ = stream.shutdown(Shutdown::Read);
        }
    }
}

impl FaultProxy {
    /// Listen on a free port of 127.0.0.1 and forward to the first host of
    /// `upstream` (which must be reachable over TCP).
    pub fn start(upstream: &HubUrl) -> FaultProxy {
        let (host, port) = upstream.hosts().first().cloned().expect("the URL names a host");
        let target: SocketAddr = (host.as_str(), port)
            .to_socket_addrs()
            .expect("resolve the upstream")
            .next()
            .expect("an upstream address");
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the proxy");
        let addr = listener.local_addr().expect("proxy address");
        let shared = Arc::new(Shared::default());
        let accepting = shared.clone();
        thread::spawn(move || {
            for client in listener.incoming() {
                if accepting.stopped.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(client) = client else { continue };
                if lock(&accepting.state).refusing {
                    let _ = client.shutdown(Shutdown::Both);
                    continue;
                }
                let Ok(server) = TcpStream::connect(target) else {
                    let _ = client.shutdown(Shutdown::Both);
                    continue;
                };
                let _ = client.set_nodelay(true);
                let _ = server.set_nodelay(true);
                let id = accepting.next_id.fetch_add(1, Ordering::SeqCst);
                let dead = Arc::new(AtomicBool::new(false));
                let (Ok(c2), Ok(s2), Ok(c3), Ok(s3)) = (
                    client.try_clone(),
                    server.try_clone(),
                    client.try_clone(),
                    server.try_clone(),
                ) else {
                    continue;
                };
                lock(&accepting.state).conns.insert(
                    id,
                    Link {
                        client,
                        server,
                        dead: dead.clone(),
                    },
                );
                let (up, down) = (accepting.clone(), accepting.clone());
                let dead2 = dead.clone();
                thread::spawn(move || pump(&up, id, c2, s2, &dead, false));
                thread::spawn(move || pump(&down, id, s3, c3, &dead2, true));
            }
        });
        FaultProxy {
            addr,
            upstream_url: upstream.clone(),
            shared,
        }
    }

    /// Where the proxy listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The upstream URL, pointed at the proxy.
    pub fn url(&self) -> HubUrl {
        self.upstream_url.with_address("127.0.0.1", self.addr.port())
    }

    /// Close every open connection (FIN to both sides).
    pub fn cut(&self) {
        let mut state = lock(&self.shared.state);
        for (_, link) in state.conns.drain() {
            link.cut();
        }
        self.shared.wake.notify_all();
    }

    /// Reset every open connection (RST to both sides).
    pub fn reset(&self) {
        let mut state = lock(&self.shared.state);
        for (_, link) in state.conns.drain() {
            link.reset();
        }
        self.shared.wake.notify_all();
    }

    /// Stop forwarding bytes in both directions; connections stay open.
    pub fn stall(&self) {
        lock(&self.shared.state).stalled = true;
    }

    /// Accept new connections but close them at once (the hub looks down);
    /// open connections are cut.
    pub fn refuse(&self) {
        lock(&self.shared.state).refusing = true;
        self.cut();
    }

    /// Instead of forwarding the `n`-th server-to-client chunk from now
    /// (1: the next one), cut every connection: a request the server may
    /// have carried out whose reply is lost.
    pub fn cut_at_reply(&self, n: u64) {
        let at = self.shared.replies.load(Ordering::SeqCst) + n.max(1);
        let mut state = lock(&self.shared.state);
        state.cut_at_reply = Some(at);
        state.refuse_after_cut = false;
    }

    /// [`FaultProxy::cut_at_reply`], and from then on refuse new connections
    /// until healed: the hub stays down after the cut, so a client cannot
    /// recover by reconnecting within the same call.
    pub fn cut_and_refuse_at_reply(&self, n: u64) {
        let at = self.shared.replies.load(Ordering::SeqCst) + n.max(1);
        let mut state = lock(&self.shared.state);
        state.cut_at_reply = Some(at);
        state.refuse_after_cut = true;
    }

    /// How many armed cuts fired.
    pub fn cuts(&self) -> u64 {
        self.shared.cuts.load(Ordering::SeqCst)
    }

    /// Instead of forwarding the `n`-th server-to-client chunk from now,
    /// stall every connection until [`FaultProxy::heal`].
    pub fn stall_at_reply(&self, n: u64) {
        let at = self.shared.replies.load(Ordering::SeqCst) + n.max(1);
        lock(&self.shared.state).stall_at_reply = Some(at);
    }

    /// Forward again, accept again, and disarm any pending cut or stall.
    pub fn heal(&self) {
        let mut state = lock(&self.shared.state);
        state.stalled = false;
        state.refusing = false;
        state.cut_at_reply = None;
        state.stall_at_reply = None;
        state.refuse_after_cut = false;
        self.shared.wake.notify_all();
    }

    /// Server-to-client chunks forwarded so far.
    pub fn replies(&self) -> u64 {
        self.shared.replies.load(Ordering::SeqCst)
    }

    /// Connections open through the proxy.
    pub fn connections(&self) -> usize {
        lock(&self.shared.state).conns.len()
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.shared.stopped.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(self.addr); // wake the accept loop
        self.heal();
        self.cut();
    }
}

fn pump(shared: &Shared, id: u64, mut from: TcpStream, mut to: TcpStream, dead: &AtomicBool, is_reply: bool) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let mut state = lock(&shared.state);
        let mut counted = false;
        loop {
            while state.stalled && !dead.load(Ordering::SeqCst) {
                state = shared
                    .wake
                    .wait_timeout(state, Duration::from_millis(20))
                    .unwrap_or_else(|p| p.into_inner())
                    .0;
            }
            if dead.load(Ordering::SeqCst) {
                return;
            }
            if !is_reply || counted {
                break;
            }
            let number = shared.replies.load(Ordering::SeqCst) + 1;
            if state.cut_at_reply == Some(number) {
                state.cut_at_reply = None;
                state.refusing |= state.refuse_after_cut;
                shared.cuts.fetch_add(1, Ordering::SeqCst);
                for (_, link) in state.conns.drain() {
                    link.cut();
                }
                return;
            }
            shared.replies.store(number, Ordering::SeqCst);
            counted = true;
            if state.stall_at_reply == Some(number) {
                state.stall_at_reply = None;
                state.stalled = true;
            }
        }
        drop(state);
        if to.write_all(&buf[..n]).is_err() {
            break;
        }
    }
    if !dead.swap(true, Ordering::SeqCst)
        && let Some(link) = lock(&shared.state).conns.remove(&id)
    {
        link.cut();
    }
}
