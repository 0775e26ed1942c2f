//! The Postgres hub: [`Hub`] over a Postgres database (the only IO in this
//! crate).
//!
//! Owns the hub schema's migrations (`sql/postgres/*.sql`), the connection
//! handling (a tiny pool of `tokio-postgres` connections, reconnected at the
//! next call after one breaks, TLS with rustls), the hub URL and its
//! redaction ([`HubUrl`]), and the push and pull transactions. It needs a
//! tokio runtime with IO and time enabled (`enable_all`).
//!
//! **Push** is one transaction: upsert-and-lock the space's `spaces` row
//! (which serialises pushes within the space and leaves other spaces alone),
//! read the batch's keys and each replica's highest stored counter, check the
//! batch in Rust exactly like [`crate::memory::MemoryHub`] does (idempotent
//! resend, gap, duplicate replica, retired schema), insert the new changes
//! with seqs `head + 1 ..` and move `head`, commit. Seq order is commit order,
//! so a reader never finds a change below a seq it has already seen.
//! Serialization failures and deadlocks are retried a few times, then
//! reported as [`HubError::Aborted`]; a broken or stalled connection is
//! [`HubError::Unreachable`] (resending is safe: push is idempotent).
//!
//! **Pull** is one statement (one snapshot): the space's head and the
//! changes with `seq > after` in seq order.
//!
//! **Credentials** live only inside [`HubUrl`], whose `Display` and `Debug`
//! print `***` for the password; every error message this module builds is
//! scrubbed of the password as well.
//!
//! **Security** (one role per team): the protocol only ever touches the rows
//! of the space it was called with (every statement filters on `space_id`,
//! and the conformance suite's `spaces_are_isolated` checks it), but a
//! replica that holds database credentials could issue any SQL those
//! credentials allow. A deployment that hosts several teams therefore gives
//! each team its own Postgres role and confines it, in one of two ways
//! (`docs/hub.md` has the SQL):
//! - a database (or schema, via the role's `search_path`) per team, which
//!   the role owns or has DML rights on, and nothing else; or
//! - one shared schema with row-level security on `space_id`: policies
//!   `USING (space_id = current_user)`-style (or a mapping table of role to
//!   spaces) on `spaces` and `changes`, `ALTER TABLE ... FORCE ROW LEVEL
//!   SECURITY`, and the team role granted only `SELECT, INSERT, UPDATE`.
//!
//! Migrations are run by an owner role, never by the teams' roles.

use std::fmt;
use std::future::Future;
use std::io;
use std::net::IpAddr;
use std::pin::Pin;
use std::str::FromStr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_postgres::error::SqlState;
use tokio_postgres::tls::{ChannelBinding, MakeTlsConnect, TlsConnect, TlsStream};
use tokio_postgres::{Client, Config, Socket, Statement};
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName};
use tokio_rustls::rustls::{ClientConfig, RootCertStore};
use uuid::Uuid;

use crate::change::Change;
use crate::protocol::{Hub, HubError, PullPage, PushAck};

#[cfg(any(test, feature = "testing"))]
pub mod testing;

/// The hub schema's migrations, in order: `(version, SQL)`. Each is applied
/// in its own transaction together with its row in `hub_migrations`.
pub const MIGRATIONS: &[(u32, &str)] = &[(1, include_str!("../../sql/postgres/0001_hub.sql"))];

/// The hub schema version this code works with (the last migration).
pub const HUB_SCHEMA_VERSION: u32 = MIGRATIONS[MIGRATIONS.len() - 1].0;

/// The oldest change schema version this code's hub accepts (the schema's
/// `changes_schema_version_accepted` constraint says the same to every client).
pub const OLDEST_ACCEPTED_SCHEMA: u32 = 1;

/// The most changes one pull page carries, whatever the caller asks.
pub const MAX_PAGE: usize = 5_000;

// ---------------------------------------------------------------------------
// The hub URL
// ---------------------------------------------------------------------------

/// Whether and how the connection to the hub is encrypted (`sslmode` in the
/// URL). Whenever TLS is used, the server's certificate is verified (chain
/// and host name) against the system's CA certificates, or against the
/// certificates of the file named by `sslrootcert`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TlsMode {
    /// Plain TCP. The default on loopback and for Unix sockets; elsewhere
    /// only when the URL says `sslmode=disable`.
    Disable,
    /// TLS when the server offers it, plain TCP when it does not (`prefer`).
    Prefer,
    /// TLS or nothing (`require`, `verify-ca`, `verify-full`): the default
    /// for hubs that are not on loopback.
    Require,
}

/// A parsed hub URL: `postgres://user:password@host:port/database?params`
/// (or `postgresql://`). Its `Display` and `Debug` print the password as
/// `***`, and it is what everything else prints; the password itself only
/// leaves it into the connection's configuration.
///
/// Query parameters understood: `sslmode` (`disable`, `prefer`, `require`,
/// `verify-ca`, `verify-full`), `sslrootcert` (a PEM file of CA
/// certificates, or `system`), `connect_timeout` (seconds),
/// `application_name`, `options`, and `host`, `port`, `user`, `password`,
/// `dbname` (as in libpq; a `host` starting with `/` is a Unix socket
/// directory). Any other parameter is refused, so a typo is not silently
/// ignored.
#[derive(Clone, PartialEq, Eq)]
pub struct HubUrl {
    user: Option<String>,
    password: Option<String>,
    hosts: Vec<(String, Option<u16>)>,
    dbname: Option<String>,
    /// `sslmode` as written, when given.
    sslmode: Option<String>,
    sslrootcert: Option<String>,
    connect_timeout: Option<u64>,
    application_name: Option<String>,
    options: Option<String>,
}

fn percent_decode(s: &str) -> Result<String, String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or("a bad percent-escape")?;
            out.push(hex);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| "percent-escapes that are not UTF-8".to_owned())
}

fn parse_port(s: &str) -> Result<u16, String> {
    s.parse().map_err(|_| format!("port {s:?} is not a number"))
}

impl HubUrl {
    /// Parse a hub URL. Errors never repeat the URL (it may hold a password).
    pub fn parse(url: &str) -> Result<HubUrl, HubError> {
        Self::parse_inner(url).map_err(|why| HubError::Other(format!("the hub URL is not valid: {why}")))
    }

    fn parse_inner(url: &str) -> Result<HubUrl, String> {
        let rest = url
            .strip_prefix("postgres://")
            .or_else(|| url.strip_prefix("postgresql://"))
            .ok_or("it must start with postgres:// or postgresql://")?;
        let (rest, query) = match rest.split_once('?') {
            Some((r, q)) => (r, Some(q)),
            None => (rest, None),
        };
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], Some(&rest[i + 1..])),
            None => (rest, None),
        };
        let (userinfo, hostlist) = match authority.rfind('@') {
            Some(i) => (Some(&authority[..i]), &authority[i + 1..]),
            None => (None, authority),
        };
        let mut url = HubUrl {
            user: None,
            password: None,
            hosts: Vec::new(),
            dbname: None,
            sslmode: None,
            sslrootcert: None,
            connect_timeout: None,
            application_name: None,
            options: None,
        };
        if let Some(userinfo) = userinfo {
            let (user, password) = match userinfo.split_once(':') {
                Some((u, p)) => (u, Some(p)),
                None => (userinfo, None),
            };
            if !user.is_empty() {
                url.user = Some(percent_decode(user).map_err(|e| format!("the user name has {e}"))?);
            }
            if let Some(p) = password {
                url.password = Some(percent_decode(p).map_err(|_| "the password has a bad percent-escape")?);
            }
        }
        for host in hostlist.split(',').filter(|h| !h.is_empty()) {
            let (name, port) = if let Some(v6) = host.strip_prefix('[') {
                let (name, after) = v6.split_once(']').ok_or("an IPv6 host lacks its closing ]")?;
                let port = match after.strip_prefix(':') {
                    Some(p) => Some(parse_port(p)?),
                    None if after.is_empty() => None,
                    None => return Err("junk after an IPv6 host".into()),
                };
                (name.to_owned(), port)
            } else {
                match host.rsplit_once(':') {
                    Some((name, p)) => (percent_decode(name)?, Some(parse_port(p)?)),
                    None => (percent_decode(host)?, None),
                }
            };
            url.hosts.push((name, port));
        }
        if let Some(path) = path.filter(|p| !p.is_empty()) {
            url.dbname = Some(percent_decode(path).map_err(|e| format!("the database name has {e}"))?);
        }
        let mut port_param = None;
        for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            let key = percent_decode(key)?;
            if key == "password" {
                url.password = Some(percent_decode(value).map_err(|_| "the password has a bad percent-escape")?);
                continue;
            }
            let value = percent_decode(value).map_err(|e| format!("parameter {key} has {e}"))?;
            match key.as_str() {
                "sslmode" => match value.as_str() {
                    "disable" | "prefer" | "require" | "verify-ca" | "verify-full" => url.sslmode = Some(value),
                    "allow" => return Err("sslmode=allow is not supported; use disable, prefer or require".into()),
                    other => return Err(format!("unknown sslmode {other:?}")),
                },
                "sslrootcert" => url.sslrootcert = Some(value),
                "connect_timeout" => {
                    url.connect_timeout = Some(
                        value
                            .parse()
                            .map_err(|_| format!("connect_timeout {value:?} is not a number of seconds"))?,
                    )
                }
                "application_name" => url.application_name = Some(value),
                "options" => url.options = Some(value),
                "host" => url.hosts = value.split(',').map(|h| (h.to_owned(), None)).collect(),
                "port" => port_param = Some(parse_port(&value)?),
                "user" => url.user = Some(value),
                "dbname" => url.dbname = Some(value),
                other => return Err(format!("unknown parameter {other:?}")),
            }
        }
        if let Some(port) = port_param {
            for host in &mut url.hosts {
                host.1 = host.1.or(Some(port));
            }
            if url.hosts.is_empty() {
                url.hosts.push(("localhost".into(), Some(port)));
            }
        }
        if url.hosts.is_empty() {
            url.hosts.push(("localhost".into(), None));
        }
        Ok(url)
    }

    /// Whether every host is on this machine (a loopback address,
    /// `localhost`, or a Unix socket directory).
    pub fn is_loopback(&self) -> bool {
        self.hosts.iter().all(|(host, _)| {
            host == "localhost" || host.starts_with('/') || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
        })
    }

    /// How the connection is encrypted: `sslmode` when the URL gives it,
    /// otherwise [`TlsMode::Disable`] on loopback and [`TlsMode::Require`]
    /// elsewhere.
    pub fn tls_mode(&self) -> TlsMode {
        match self.sslmode.as_deref() {
            Some("disable") => TlsMode::Disable,
            Some("prefer") => TlsMode::Prefer,
            Some(_) => TlsMode::Require,
            None if self.is_loopback() => TlsMode::Disable,
            None => TlsMode::Require,
        }
    }

    /// The database name, when the URL names one.
    pub fn database(&self) -> Option<&str> {
        self.dbname.as_deref()
    }

    /// The hosts and ports, as given (a missing port means 5432).
    pub fn hosts(&self) -> &[(String, Option<u16>)] {
        &self.hosts
    }

    /// The same hub URL naming another database (tests create one each).
    pub fn with_database(&self, database: &str) -> HubUrl {
        HubUrl {
            dbname: Some(database.to_owned()),
            ..self.clone()
        }
    }

    /// The same hub URL reaching the server at `host:port` instead (a proxy
    /// in tests).
    pub fn with_address(&self, host: &str, port: u16) -> HubUrl {
        HubUrl {
            hosts: vec![(host.to_owned(), Some(port))],
            ..self.clone()
        }
    }

    /// The same hub URL with `sslmode` and `sslrootcert` set as given (tests
    /// of TLS against a local server).
    pub fn with_tls(&self, sslmode: &str, sslrootcert: Option<&str>) -> Result<HubUrl, HubError> {
        if !matches!(sslmode, "disable" | "prefer" | "require" | "verify-ca" | "verify-full") {
            return Err(HubError::Other(format!("unknown sslmode {sslmode:?}")));
        }
        Ok(HubUrl {
            sslmode: Some(sslmode.to_owned()),
            sslrootcert: sslrootcert.map(str::to_owned),
            ..self.clone()
        })
    }

    /// Replace every occurrence of the password in `message` (defence in
    /// depth: a server or library message should never carry it anyway).
    fn scrub(&self, message: String) -> String {
        match self.password.as_deref() {
            Some(p) if p.len() >= 3 && message.contains(p) => message.replace(p, "***"),
            _ => message,
        }
    }

    fn config(&self, opts: &HubOptions) -> Config {
        let mut c = Config::new();
        if let Some(user) = &self.user {
            c.user(user);
        }
        if let Some(password) = &self.password {
            c.password(password);
        }
        for (host, port) in &self.hosts {
            c.host(host);
            c.port(port.unwrap_or(5432));
        }
        if let Some(db) = &self.dbname {
            c.dbname(db);
        }
        c.application_name(self.application_name.as_deref().unwrap_or("waymark"));
        if let Some(options) = &self.options {
            c.options(options);
        }
        c.connect_timeout(self.connect_timeout.map_or(opts.connect_timeout, Duration::from_secs));
        c.keepalives(true);
        c.keepalives_idle(Duration::from_secs(30));
        c.ssl_mode(match self.tls_mode() {
            TlsMode::Disable => tokio_postgres::config::SslMode::Disable,
            TlsMode::Prefer => tokio_postgres::config::SslMode::Prefer,
            TlsMode::Require => tokio_postgres::config::SslMode::Require,
        });
        c
    }
}

impl FromStr for HubUrl {
    type Err = HubError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        HubUrl::parse(s)
    }
}

impl fmt::Display for HubUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("postgres://")?;
        if let Some(user) = &self.user {
            f.write_str(user)?;
        }
        if self.password.is_some() {
            f.write_str(":***")?;
        }
        if self.user.is_some() || self.password.is_some() {
            f.write_str("@")?;
        }
        let mut params: Vec<(&str, &str)> = Vec::new();
        let mut socket_dirs = Vec::new();
        let mut first = true;
        for (host, port) in &self.hosts {
            if host.starts_with('/') {
                socket_dirs.push(host.as_str());
                continue;
            }
            if !first {
                f.write_str(",")?;
            }
            first = false;
            if host.contains(':') {
                write!(f, "[{host}]")?;
            } else {
                f.write_str(host)?;
            }
            if let Some(port) = port {
                write!(f, ":{port}")?;
            }
        }
        if let Some(db) = &self.dbname {
            write!(f, "/{db}")?;
        }
        let dirs = socket_dirs.join(",");
        if !dirs.is_empty() {
            params.push(("host", &dirs));
        }
        let timeout = self.connect_timeout.map(|t| t.to_string());
        for (key, value) in [
            ("sslmode", &self.sslmode),
            ("sslrootcert", &self.sslrootcert),
            ("connect_timeout", &timeout),
            ("application_name", &self.application_name),
            ("options", &self.options),
        ] {
            if let Some(v) = value {
                params.push((key, v));
            }
        }
        for (i, (key, value)) in params.iter().enumerate() {
            write!(f, "{}{key}={value}", if i == 0 { '?' } else { '&' })?;
        }
        Ok(())
    }
}

impl fmt::Debug for HubUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "HubUrl({self})")
    }
}

// ---------------------------------------------------------------------------
// TLS over rustls
// ---------------------------------------------------------------------------

fn tls_config(url: &HubUrl) -> Result<Option<Arc<ClientConfig>>, HubError> {
    if url.tls_mode() == TlsMode::Disable {
        return Ok(None);
    }
    let mut roots = RootCertStore::empty();
    match url.sslrootcert.as_deref() {
        Some(path) if path != "system" => {
            let certs = CertificateDer::pem_file_iter(path)
                .map_err(|e| HubError::Other(format!("cannot read sslrootcert {path:?}: {e}")))?;
            for cert in certs {
                let cert = cert.map_err(|e| HubError::Other(format!("cannot read sslrootcert {path:?}: {e}")))?;
                roots
                    .add(cert)
                    .map_err(|e| HubError::Other(format!("a certificate in sslrootcert {path:?} is not valid: {e}")))?;
            }
        }
        _ => {
            let found = rustls_native_certs::load_native_certs();
            let (added, _ignored) = roots.add_parsable_certificates(found.certs);
            if added == 0 {
                return Err(HubError::Other(
                    "TLS is required for this hub, but no CA certificates were found on this system; install \
                     them (ca-certificates) or name a PEM file with sslrootcert= in the hub URL"
                        .into(),
                ));
            }
        }
    }
    let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| HubError::Other(format!("TLS setup failed: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Some(Arc::new(config)))
}

/// `tokio-postgres`'s TLS hook over rustls (`None`: TLS is disabled, and
/// `tokio-postgres` never asks).
#[derive(Clone)]
struct MakeRustls(Option<Arc<ClientConfig>>);

struct RustlsConnect {
    config: Option<Arc<ClientConfig>>,
    domain: Result<ServerName<'static>, String>,
}

/// A TLS connection to the hub.
pub struct RustlsStream(tokio_rustls::client::TlsStream<Socket>);

impl MakeTlsConnect<Socket> for MakeRustls {
    type Stream = RustlsStream;
    type TlsConnect = RustlsConnect;
    type Error = io::Error;

    fn make_tls_connect(&mut self, domain: &str) -> Result<RustlsConnect, io::Error> {
        let domain =
            ServerName::try_from(domain.to_owned()).map_err(|_| format!("{domain:?} is not a valid TLS server name"));
        Ok(RustlsConnect {
            config: self.0.clone(),
            domain,
        })
    }
}

impl TlsConnect<Socket> for RustlsConnect {
    type Stream = RustlsStream;
    type Error = io::Error;
    type Future = Pin<Box<dyn Future<Output = Result<RustlsStream, io::Error>> + Send>>;

    fn connect(self, stream: Socket) -> Self::Future {
        Box::pin(async move {
            let config = self
                .config
                .ok_or_else(|| io::Error::other("TLS is disabled for this hub"))?;
            let domain = self.domain.map_err(io::Error::other)?;
            let stream = tokio_rustls::TlsConnector::from(config).connect(domain, stream).await?;
            Ok(RustlsStream(stream))
        })
    }
}

impl AsyncRead for RustlsStream {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl AsyncWrite for RustlsStream {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

impl TlsStream for RustlsStream {
    fn channel_binding(&self) -> ChannelBinding {
        ChannelBinding::none()
    }
}

// ---------------------------------------------------------------------------
// The hub
// ---------------------------------------------------------------------------

/// Tuning of a [`PostgresHub`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HubOptions {
    /// How long one push or pull (including connecting) may take before the
    /// connection is dropped and the call fails as unreachable.
    pub call_timeout: Duration,
    /// How long connecting may take (the URL's `connect_timeout` wins).
    pub connect_timeout: Duration,
    /// Idle connections kept for the next calls.
    pub max_idle: usize,
    /// How often a push whose transaction hit a serialization failure or a
    /// deadlock is tried again before it fails as aborted.
    pub retries: u32,
}

impl Default for HubOptions {
    fn default() -> Self {
        HubOptions {
            call_timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(10),
            max_idle: 4,
            retries: 4,
        }
    }
}

/// The Postgres hub. Cheap to share (`&self` everywhere); calls made at the
/// same time use separate connections.
pub struct PostgresHub {
    url: HubUrl,
    config: Config,
    tls: MakeRustls,
    opts: HubOptions,
    idle: Mutex<Vec<Conn>>,
}

impl fmt::Debug for PostgresHub {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresHub")
            .field("url", &self.url)
            .field("opts", &self.opts)
            .finish_non_exhaustive()
    }
}

/// One connection, with its background task (aborted when dropped, so a
/// stalled connection never lingers) and its prepared statements.
struct Conn {
    client: Client,
    task: tokio::task::AbortHandle,
    stmts: Option<Stmts>,
    /// Taken from the idle list rather than just connected.
    reused: bool,
}

impl Drop for Conn {
    fn drop(&mut self) {
        self.task.abort();
    }
}

struct Stmts {
    lock_space: Statement,
    existing: Statement,
    last_counters: Statement,
    insert: Statement,
    pull: Statement,
}

const LOCK_SPACE: &str = "INSERT INTO spaces (space_id, head) VALUES ($1, 0) \
     ON CONFLICT (space_id) DO UPDATE SET head = spaces.head RETURNING head";
const EXISTING: &str = "SELECT c.replica_id, c.counter, c.body FROM changes c \
     JOIN unnest($2::uuid[], $3::bigint[]) AS k (replica_id, counter) \
     ON c.replica_id = k.replica_id AND c.counter = k.counter WHERE c.space_id = $1";
const LAST_COUNTERS: &str = "SELECT r.replica_id, (SELECT max(c.counter) FROM changes c \
     WHERE c.space_id = $1 AND c.replica_id = r.replica_id) FROM unnest($2::uuid[]) AS r (replica_id)";
const INSERT: &str = "WITH inserted AS (INSERT INTO changes (space_id, seq, replica_id, counter, schema_version, body) \
     SELECT $1, t.seq, t.replica_id, t.counter, t.schema_version, t.body \
     FROM unnest($2::bigint[], $3::uuid[], $4::bigint[], $5::int[], $6::bytea[]) \
     AS t (seq, replica_id, counter, schema_version, body)) \
     UPDATE spaces SET head = $7 WHERE space_id = $1";
const PULL: &str = "SELECT 0 AS part, head AS seq, NULL::bytea AS body FROM spaces WHERE space_id = $1 \
     UNION ALL (SELECT 1, seq, body FROM changes WHERE space_id = $1 AND seq > $2 ORDER BY seq LIMIT $3) \
     ORDER BY part, seq";

/// One hub call, for [`PostgresHub::with_retries`].
#[derive(Clone, Copy)]
enum Op<'a> {
    Push { space: &'a str, changes: &'a [Change] },
    Pull { space: &'a str, after: i64, limit: i64 },
}

enum Done {
    Push(PushAck),
    Pull(PullPage),
}

/// Why one attempt failed: a final answer, or a transaction to try again.
enum Failure {
    Final(HubError),
    Retry(HubError),
}

impl From<HubError> for Failure {
    fn from(e: HubError) -> Self {
        Failure::Final(e)
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn to_i64(n: u64, what: &str) -> Result<i64, HubError> {
    i64::try_from(n).map_err(|_| HubError::Other(format!("{what} {n} is too large for the hub")))
}

impl PostgresHub {
    /// Parse `url`, connect, and check the hub schema: it must be exactly
    /// [`HUB_SCHEMA_VERSION`] (a newer one is refused; an older one asks for
    /// [`PostgresHub::migrate`]). Errors never contain the password.
    pub async fn connect(url: &str) -> Result<PostgresHub, HubError> {
        Self::connect_with(HubUrl::parse(url)?, HubOptions::default()).await
    }

    /// [`PostgresHub::connect`] with a parsed URL and options.
    pub async fn connect_with(url: HubUrl, opts: HubOptions) -> Result<PostgresHub, HubError> {
        let hub = Self::new(url, opts)?;
        let conn = hub.call(hub.checkout(true)).await?;
        hub.checkin(conn);
        Ok(hub)
    }

    /// A hub that connects at its first call (no IO here beyond reading CA
    /// certificates when TLS is on): for a worker that must start while the
    /// hub is unreachable.
    pub fn new(url: HubUrl, opts: HubOptions) -> Result<PostgresHub, HubError> {
        let tls = MakeRustls(tls_config(&url)?);
        Ok(PostgresHub {
            config: url.config(&opts),
            url,
            tls,
            opts,
            idle: Mutex::new(Vec::new()),
        })
    }

    /// The hub's URL (prints redacted).
    pub fn url(&self) -> &HubUrl {
        &self.url
    }

    /// Bring the hub schema up to [`HUB_SCHEMA_VERSION`]: apply each missing
    /// migration in its own transaction with its `hub_migrations` row. Safe
    /// to run from several processes at once, and cheap when the schema is
    /// current. Refuses a schema newer than this code. Returns the version.
    pub async fn migrate(&self) -> Result<u32, HubError> {
        let mut conn = self.call(self.checkout(false)).await?;
        let version = self.call(self.migrate_on(&mut conn)).await?;
        self.checkin(conn);
        if version > HUB_SCHEMA_VERSION {
            return Err(HubError::Other(format!(
                "the hub's schema is version {version}, newer than this waymark understands ({HUB_SCHEMA_VERSION}): upgrade waymark"
            )));
        }
        Ok(version)
    }

    async fn migrate_on(&self, conn: &mut Conn) -> Result<u32, HubError> {
        let mut attempts = 0;
        loop {
            match self.migrate_once(conn).await {
                Ok(v) => return Ok(v),
                // A concurrent migrator won the race: look again.
                Err(e)
                    if attempts < 3
                        && matches!(
                            e.code(),
                            Some(c) if *c == SqlState::UNIQUE_VIOLATION
                                || *c == SqlState::DUPLICATE_TABLE
                                || *c == SqlState::DUPLICATE_OBJECT
                                || *c == SqlState::T_R_SERIALIZATION_FAILURE
                        ) =>
                {
                    attempts += 1;
                }
                Err(e) => return Err(self.map_error(e)),
            }
        }
    }

    async fn migrate_once(&self, conn: &mut Conn) -> Result<u32, tokio_postgres::Error> {
        conn.client
            .batch_execute(
                "CREATE TABLE IF NOT EXISTS hub_migrations (version integer PRIMARY KEY, \
                 applied_at timestamptz NOT NULL DEFAULT now())",
            )
            .await?;
        loop {
            let tx = conn.client.transaction().await?;
            let current: i32 = tx
                .query_one("SELECT coalesce(max(version), 0) FROM hub_migrations", &[])
                .await?
                .get(0);
            let current = current as u32;
            if current > HUB_SCHEMA_VERSION {
                return Ok(current);
            }
            let Some(&(version, sql)) = MIGRATIONS.iter().find(|(v, _)| *v > current) else {
                return Ok(current);
            };
            tx.batch_execute(sql).await?;
            tx.execute("INSERT INTO hub_migrations (version) VALUES ($1)", &[&(version as i32)])
                .await?;
            tx.commit().await?;
            conn.stmts = None;
        }
    }

    /// The hub schema version of the database (0: none installed).
    pub async fn schema_version(&self) -> Result<u32, HubError> {
        let conn = self.call(self.checkout(false)).await?;
        let version = self
            .call(async { read_schema_version(&conn.client).await.map_err(|e| self.map_error(e)) })
            .await?;
        self.checkin(conn);
        Ok(version)
    }

    /// Run `fut` under the call timeout; a timeout is [`HubError::Unreachable`].
    async fn call<T>(&self, fut: impl Future<Output = Result<T, HubError>>) -> Result<T, HubError> {
        match tokio::time::timeout(self.opts.call_timeout, fut).await {
            Ok(result) => result,
            Err(_) => Err(HubError::Unreachable(format!(
                "no answer from {} within {:?}",
                self.url, self.opts.call_timeout
            ))),
        }
    }

    /// An idle connection, or a new one. A new one is checked for the
    /// schema version when `check_schema`.
    async fn checkout(&self, check_schema: bool) -> Result<Conn, HubError> {
        loop {
            let Some(mut conn) = lock(&self.idle).pop() else { break };
            if !conn.client.is_closed() {
                conn.reused = true;
                return Ok(conn);
            }
        }
        let (client, connection) = self
            .config
            .connect(self.tls.clone())
            .await
            .map_err(|e| match tls_refusal(&e) {
                // Not a network hiccup: retrying will not make the certificate trusted.
                Some(why) => HubError::Other(self.url.scrub(format!(
                    "cannot connect to {}: the hub's TLS certificate was refused ({why}); the certificate must be \
                     signed by a CA in sslrootcert (or in the system's CA certificates when sslrootcert is not \
                     given) and name the host of the hub URL",
                    self.url
                ))),
                None => HubError::Unreachable(self.url.scrub(format!("cannot connect to {}: {e}", self.url))),
            })?;
        let task = tokio::spawn(async move {
            let _ = connection.await;
        })
        .abort_handle();
        let mut conn = Conn {
            client,
            task,
            stmts: None,
            reused: false,
        };
        // A session that vanishes inside a push must not keep its space locked.
        conn.client
            .batch_execute("SET idle_in_transaction_session_timeout = '60s'")
            .await
            .map_err(|e| self.map_error(e))?;
        if check_schema {
            self.check_schema(&mut conn).await?;
        }
        Ok(conn)
    }

    async fn check_schema(&self, conn: &mut Conn) -> Result<(), HubError> {
        let version = read_schema_version(&conn.client).await.map_err(|e| self.map_error(e))?;
        match version {
            v if v == HUB_SCHEMA_VERSION => Ok(()),
            0 => Err(HubError::Other(format!(
                "the hub database {} has no waymark schema yet: migrate it (PostgresHub::migrate) with a role that may create tables",
                self.url
            ))),
            v if v < HUB_SCHEMA_VERSION => Err(HubError::Other(format!(
                "the hub's schema is version {v}, older than this waymark's ({HUB_SCHEMA_VERSION}): migrate it (PostgresHub::migrate)"
            ))),
            v => Err(HubError::Other(format!(
                "the hub's schema is version {v}, newer than this waymark understands ({HUB_SCHEMA_VERSION}): upgrade waymark"
            ))),
        }
    }

    fn checkin(&self, conn: Conn) {
        if conn.client.is_closed() {
            return;
        }
        let mut idle = lock(&self.idle);
        if idle.len() < self.opts.max_idle {
            idle.push(conn);
        }
    }

    async fn statements<'c>(&self, conn: &'c mut Conn) -> Result<&'c Stmts, tokio_postgres::Error> {
        if conn.stmts.is_none() {
            let c = &conn.client;
            conn.stmts = Some(Stmts {
                lock_space: c.prepare(LOCK_SPACE).await?,
                existing: c.prepare(EXISTING).await?,
                last_counters: c.prepare(LAST_COUNTERS).await?,
                insert: c.prepare(INSERT).await?,
                pull: c.prepare(PULL).await?,
            });
        }
        Ok(conn.stmts.as_ref().expect("just prepared"))
    }

    /// Map a database error to the protocol's error, password scrubbed.
    fn map_error(&self, e: tokio_postgres::Error) -> HubError {
        let message = self.url.scrub(match e.as_db_error() {
            Some(db) => format!("{}: {} ({})", self.url, db.message(), db.code().code()),
            None => format!("{}: {e}", self.url),
        });
        let Some(code) = e.code() else {
            // No SQLSTATE: the connection broke, or an IO error.
            return HubError::Unreachable(message);
        };
        let class = &code.code()[..2];
        if *code == SqlState::T_R_SERIALIZATION_FAILURE
            || *code == SqlState::T_R_DEADLOCK_DETECTED
            || *code == SqlState::LOCK_NOT_AVAILABLE
            || *code == SqlState::QUERY_CANCELED
        {
            HubError::Aborted(message)
        } else if class == "08" || class == "57" || class == "53" || e.is_closed() {
            // Connection exceptions, operator intervention (shutdown,
            // restart), insufficient resources (too many connections).
            HubError::Unreachable(message)
        } else {
            HubError::Other(message)
        }
    }

    /// Run `op` on a connection, retrying aborted transactions, and once a
    /// reused connection that turned out broken (push is idempotent, so even
    /// a push that may have committed is safe to send again).
    async fn with_retries(&self, op: Op<'_>) -> Result<Done, HubError> {
        let mut tries = 0;
        let mut reconnected = false;
        loop {
            tries += 1;
            let outcome = self
                .call(async {
                    let mut conn = self.checkout(true).await?;
                    let result = match op {
                        Op::Push { space, changes } => self.push_once(&mut conn, space, changes).await.map(Done::Push),
                        Op::Pull { space, after, limit } => {
                            self.pull_once(&mut conn, space, after, limit).await.map(Done::Pull)
                        }
                    };
                    Ok((conn, result))
                })
                .await;
            let (failure, reused) = match outcome {
                Err(e) => (Failure::Final(e), false),
                Ok((conn, Ok(value))) => {
                    self.checkin(conn);
                    return Ok(value);
                }
                Ok((conn, Err(f))) => {
                    let reused = conn.reused;
                    // Keep a connection that answered; drop one that broke.
                    if !matches!(&f, Failure::Final(HubError::Unreachable(_))) {
                        self.checkin(conn);
                    }
                    (f, reused)
                }
            };
            match failure {
                Failure::Retry(_) if tries <= self.opts.retries => {
                    tokio::time::sleep(Duration::from_millis(5 << tries.min(6))).await;
                }
                Failure::Final(HubError::Unreachable(_)) if reused && !reconnected => reconnected = true,
                Failure::Retry(e) | Failure::Final(e) => return Err(e),
            }
        }
    }

    async fn push_once(&self, conn: &mut Conn, space: &str, changes: &[Change]) -> Result<PushAck, Failure> {
        let db = |e| self.db_failure(e);
        let stmts = self.statements(conn).await.map_err(db)?;
        let (lock_space, existing, last_counters, insert) = (
            stmts.lock_space.clone(),
            stmts.existing.clone(),
            stmts.last_counters.clone(),
            stmts.insert.clone(),
        );
        let mut replicas: Vec<Uuid> = changes.iter().map(|c| c.dot.replica.0).collect();
        replicas.sort_unstable();
        replicas.dedup();
        let key_replicas: Vec<Uuid> = changes.iter().map(|c| c.dot.replica.0).collect();
        let key_counters = changes
            .iter()
            .map(|c| to_i64(c.dot.counter, "counter"))
            .collect::<Result<Vec<_>, _>>()?;

        let tx = conn.client.transaction().await.map_err(db)?;
        let head: i64 = tx.query_one(&lock_space, &[&space]).await.map_err(db)?.get(0);
        let stored_rows = tx
            .query(&existing, &[&space, &key_replicas, &key_counters])
            .await
            .map_err(db)?;
        let last_rows = tx.query(&last_counters, &[&space, &replicas]).await.map_err(db)?;

        let mut stored: std::collections::HashMap<(Uuid, i64), Vec<u8>> = stored_rows
            .into_iter()
            .map(|row| ((row.get(0), row.get(1)), row.get(2)))
            .collect();
        let mut last: std::collections::HashMap<Uuid, u64> = last_rows
            .into_iter()
            .map(|row| (row.get::<_, Uuid>(0), row.get::<_, Option<i64>>(1).unwrap_or(0) as u64))
            .collect();

        // Stage the batch exactly as the model hub does.
        let mut new = NewRows::default();
        let mut staged: std::collections::HashMap<(Uuid, i64), &Change> = std::collections::HashMap::new();
        let mut seq = head;
        for change in changes {
            if change.schema_version < OLDEST_ACCEPTED_SCHEMA {
                return Err(HubError::SchemaRejected {
                    schema_version: change.schema_version,
                    oldest_accepted: OLDEST_ACCEPTED_SCHEMA,
                }
                .into());
            }
            if let Some(why) = change.malformed() {
                return Err(HubError::Other(format!("malformed change {}: {why}", change.dot.counter)).into());
            }
            let dot = change.dot;
            let key = (dot.replica.0, to_i64(dot.counter, "counter")?);
            // A resend is compared byte for byte with what the hub holds.
            let body = change.body();
            let same = if let Some(stored) = stored.get(&key) {
                Some(*stored == body)
            } else {
                staged.get(&key).map(|theirs| theirs.body() == body)
            };
            match same {
                Some(true) => continue,
                Some(false) => {
                    return Err(HubError::DuplicateReplica {
                        replica: dot.replica,
                        counter: dot.counter,
                    }
                    .into());
                }
                None => {}
            }
            let expected = last.get(&dot.replica.0).copied().unwrap_or(0) + 1;
            if dot.counter != expected {
                return Err(if dot.counter == 0 {
                    HubError::Other(format!("change of replica {} has counter 0", dot.replica))
                } else {
                    HubError::Gap {
                        replica: dot.replica,
                        expected,
                    }
                }
                .into());
            }
            last.insert(dot.replica.0, dot.counter);
            staged.insert(key, change);
            seq += 1;
            new.push(seq, key, change.schema_version, body);
        }
        stored.clear();
        let inserted = new.seqs.len();
        if inserted > 0 {
            tx.execute(
                &insert,
                &[
                    &space,
                    &new.seqs,
                    &new.replicas,
                    &new.counters,
                    &new.schema_versions,
                    &new.bodies,
                    &seq,
                ],
            )
            .await
            .map_err(db)?;
            tx.commit().await.map_err(db)?;
        } else {
            tx.rollback().await.map_err(db)?;
        }
        Ok(PushAck {
            inserted,
            already_stored: changes.len() - inserted,
            head_seq: seq as u64,
        })
    }

    fn db_failure(&self, e: tokio_postgres::Error) -> Failure {
        if e.code() == Some(&SqlState::CHECK_VIOLATION)
            && e.as_db_error().and_then(|d| d.constraint()) == Some("changes_schema_version_accepted")
        {
            // A migration retired schema versions this code still accepts.
            return Failure::Final(HubError::SchemaRejected {
                schema_version: OLDEST_ACCEPTED_SCHEMA,
                oldest_accepted: OLDEST_ACCEPTED_SCHEMA + 1,
            });
        }
        match self.map_error(e) {
            e @ HubError::Aborted(_) => Failure::Retry(e),
            e => Failure::Final(e),
        }
    }

    async fn pull_once(&self, conn: &mut Conn, space: &str, after: i64, limit: i64) -> Result<PullPage, Failure> {
        let db = |e| self.db_failure(e);
        let pull = self.statements(conn).await.map_err(db)?.pull.clone();
        let rows = conn.client.query(&pull, &[&space, &after, &limit]).await.map_err(db)?;
        let mut page = PullPage::default();
        for row in rows {
            let part: i32 = row.get(0);
            let seq: i64 = row.get(1);
            if part == 0 {
                page.head_seq = seq as u64;
                continue;
            }
            let body: Vec<u8> = row.get(2);
            let change: Change = serde_json::from_slice(&body).map_err(|e| {
                HubError::Other(format!(
                    "the hub's change at seq {seq} of space {space:?} is unreadable: {e}"
                ))
            })?;
            page.changes.push((seq as u64, change));
        }
        Ok(page)
    }
}

#[derive(Default)]
struct NewRows {
    seqs: Vec<i64>,
    replicas: Vec<Uuid>,
    counters: Vec<i64>,
    schema_versions: Vec<i32>,
    bodies: Vec<Vec<u8>>,
}

impl NewRows {
    fn push(&mut self, seq: i64, key: (Uuid, i64), schema_version: u32, body: Vec<u8>) {
        self.seqs.push(seq);
        self.replicas.push(key.0);
        self.counters.push(key.1);
        self.schema_versions.push(schema_version as i32);
        self.bodies.push(body);
    }
}

/// Why the TLS handshake refused the server's certificate, when that is
/// why connecting failed.
fn tls_refusal(e: &tokio_postgres::Error) -> Option<String> {
    let mut source: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(e);
    while let Some(err) = source {
        if let Some(tls) = err.downcast_ref::<tokio_rustls::rustls::Error>() {
            return matches!(tls, tokio_rustls::rustls::Error::InvalidCertificate(_)).then(|| tls.to_string());
        }
        if let Some(tls) = err
            .downcast_ref::<io::Error>()
            .and_then(|io| io.get_ref())
            .and_then(|inner| inner.downcast_ref::<tokio_rustls::rustls::Error>())
        {
            return matches!(tls, tokio_rustls::rustls::Error::InvalidCertificate(_)).then(|| tls.to_string());
        }
        source = err.source();
    }
    None
}

async fn read_schema_version(client: &Client) -> Result<u32, tokio_postgres::Error> {
    match client
        .query_one("SELECT coalesce(max(version), 0) FROM hub_migrations", &[])
        .await
    {
        Ok(row) => Ok(row.get::<_, i32>(0) as u32),
        Err(e) if e.code() == Some(&SqlState::UNDEFINED_TABLE) => Ok(0),
        Err(e) => Err(e),
    }
}

impl Hub for PostgresHub {
    async fn push(&self, space: &str, changes: &[Change]) -> Result<PushAck, HubError> {
        if changes.is_empty() {
            let page = self.pull(space, u64::MAX >> 1, 1).await?;
            return Ok(PushAck {
                inserted: 0,
                already_stored: 0,
                head_seq: page.head_seq,
            });
        }
        match self.with_retries(Op::Push { space, changes }).await? {
            Done::Push(ack) => Ok(ack),
            Done::Pull(_) => unreachable!("a push answers with an ack"),
        }
    }

    async fn pull(&self, space: &str, after_seq: u64, limit: usize) -> Result<PullPage, HubError> {
        let after = to_i64(after_seq, "cursor")?;
        let limit = limit.clamp(1, MAX_PAGE) as i64;
        match self.with_retries(Op::Pull { space, after, limit }).await? {
            Done::Pull(page) => Ok(page),
            Done::Push(_) => unreachable!("a pull answers with a page"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_password_is_redacted_in_display_and_debug() {
        let url = HubUrl::parse("postgres://alice:p%40ss-w0rd@db.example.com:6543/team?sslmode=require").unwrap();
        assert_eq!(
            url.to_string(),
            "postgres://alice:***@db.example.com:6543/team?sslmode=require"
        );
        assert_eq!(
            format!("{url:?}"),
            "HubUrl(postgres://alice:***@db.example.com:6543/team?sslmode=require)"
        );
        let hub = PostgresHub::new(url.clone(), HubOptions::default());
        if let Ok(hub) = hub {
            assert!(!format!("{hub:?}").contains("p@ss"));
        }
        let in_query = HubUrl::parse("postgresql://bob@[::1]/db?password=hunter22&application_name=x").unwrap();
        assert_eq!(in_query.to_string(), "postgres://bob:***@[::1]/db?application_name=x");
        assert_eq!(in_query.scrub("auth failed for hunter22".into()), "auth failed for ***");
    }

    #[test]
    fn parse_errors_never_repeat_the_url() {
        for bad in [
            "mysql://u:secretpw@h/db",
            "postgres://u:secretpw@h:notaport/db",
            "postgres://u:secretpw@h/db?sslmode=bogus",
            "postgres://u:secretpw@h/db?typo=1",
            "postgres://u:secret%zzpw@h/db",
        ] {
            let e = HubUrl::parse(bad).unwrap_err();
            assert!(!e.to_string().contains("secret"), "{e}");
            assert!(!e.is_retryable());
        }
    }

    #[test]
    fn tls_is_required_off_loopback_unless_the_url_says_otherwise() {
        let mode = |u: &str| HubUrl::parse(u).unwrap().tls_mode();
        assert_eq!(mode("postgres://u@127.0.0.1/db"), TlsMode::Disable);
        assert_eq!(mode("postgres://u@localhost:5433/db"), TlsMode::Disable);
        assert_eq!(mode("postgres://u@[::1]/db"), TlsMode::Disable);
        assert_eq!(mode("postgres:///db?host=/var/run/postgresql"), TlsMode::Disable);
        assert_eq!(mode("postgres://u@db.example.com/db"), TlsMode::Require);
        assert_eq!(mode("postgres://u@10.0.0.5/db"), TlsMode::Require);
        assert_eq!(mode("postgres://u@localhost,db.example.com/db"), TlsMode::Require);
        assert_eq!(mode("postgres://u@db.example.com/db?sslmode=disable"), TlsMode::Disable);
        assert_eq!(mode("postgres://u@db.example.com/db?sslmode=prefer"), TlsMode::Prefer);
        assert_eq!(mode("postgres://u@127.0.0.1/db?sslmode=verify-full"), TlsMode::Require);
        assert!(HubUrl::parse("postgres://u@h/db?sslmode=allow").is_err());
    }

    #[test]
    fn urls_parse_into_their_parts() {
        let url = HubUrl::parse("postgres://u@h1:1,h2/my%20db?port=7&connect_timeout=3").unwrap();
        assert_eq!(url.hosts(), [("h1".to_owned(), Some(1)), ("h2".to_owned(), Some(7))]);
        assert_eq!(url.database(), Some("my db"));
        assert_eq!(url.with_database("other").database(), Some("other"));
        let moved = url.with_address("127.0.0.1", 9);
        assert_eq!(moved.hosts(), [("127.0.0.1".to_owned(), Some(9))]);
        assert!(moved.is_loopback());
        let bare = HubUrl::parse("postgres://").unwrap();
        assert_eq!(bare.hosts(), [("localhost".to_owned(), None)]);
        assert_eq!(
            "postgres://x@y/z".parse::<HubUrl>().unwrap().to_string(),
            "postgres://x@y/z"
        );
    }
}
