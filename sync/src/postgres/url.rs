//! The hub URL: `tokio_postgres::Config`'s own parsing (a `postgres://`
//! URL or libpq's `key=value` pairs), the TLS parameters it does not know,
//! and the redaction (the password never printed).

use std::borrow::Cow;
use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;
use std::time::Duration;

use percent_encoding::percent_decode_str;
use tokio_postgres::Config;
use tokio_postgres::config::{Host, SslMode};

use super::HubOptions;
use crate::protocol::HubError;

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

/// The `sslmode`s understood; `verify-ca` and `verify-full` are `require`
/// (the certificate is always verified, chain and host name).
const SSLMODES: [&str; 5] = ["disable", "prefer", "require", "verify-ca", "verify-full"];

/// The default port, left out when a hub URL is printed.
const DEFAULT_PORT: u16 = 5432;

/// A parsed hub URL: `postgres://user:password@host:port/database?params`
/// (or `postgresql://`), or the same as libpq's `key=value` pairs
/// (`host=h user=u dbname=d sslmode=require`). Parsed by
/// `tokio_postgres::Config`, so every parameter it knows is accepted
/// (`connect_timeout`, `application_name`, `options`, `host`, `hostaddr`,
/// `port`, `user`, `password`, `dbname`, `channel_binding`,
/// `target_session_attrs`, keepalives, ...; a `host` starting with `/` is a
/// Unix socket directory), plus the two TLS parameters handled here:
/// `sslmode` (`disable`, `prefer`, `require`, `verify-ca`, `verify-full`)
/// and `sslrootcert` (a PEM file of CA certificates, or `system`). Any other
/// parameter is refused, so a typo is not silently ignored.
///
/// Its `Display` and `Debug` print the password as `***` (in both forms it
/// prints as a `postgres://` URL), and it is what everything else prints;
/// the password itself only leaves it into the connection's configuration.
#[derive(Clone, PartialEq, Eq)]
pub struct HubUrl {
    /// What tokio-postgres parsed (user, password, hosts, ports, database,
    /// and the other connection parameters).
    config: Config,
    /// `sslmode` as written, when given.
    sslmode: Option<String>,
    pub(super) sslrootcert: Option<String>,
}

impl HubUrl {
    /// Parse a hub URL. Errors never repeat the URL (it may hold a password).
    pub fn parse(url: &str) -> Result<HubUrl, HubError> {
        Self::parse_inner(url).map_err(|why| HubError::Other(format!("the hub URL is not valid: {why}")))
    }

    fn parse_inner(url: &str) -> Result<HubUrl, String> {
        let scheme = url.split_once("://").map(|(s, _)| s);
        if scheme.is_some_and(|s| s != "postgres" && s != "postgresql") {
            return Err("it must start with postgres:// or postgresql:// (or be key=value pairs)".into());
        }
        let (rest, sslmode, sslrootcert) = take_tls_params(url)?;
        let mut config = Config::from_str(&rest).map_err(|e| {
            // The cause names the problem ("unknown option `x`"); the
            // error's own text only says the string is invalid.
            std::error::Error::source(&e).map_or_else(|| e.to_string(), ToString::to_string)
        })?;
        match sslmode.as_deref() {
            None => {}
            Some(mode) if SSLMODES.contains(&mode) => {}
            Some("allow") => return Err("sslmode=allow is not supported; use disable, prefer or require".into()),
            Some(other) => return Err(format!("unknown sslmode {other:?}")),
        }
        for host in config.get_hosts() {
            if let Host::Tcp(name) = host
                && name.contains('@')
            {
                return Err("a host name contains @: write an @ in the user name or password as %40".into());
            }
        }
        if config.get_hosts().is_empty() && config.get_hostaddrs().is_empty() {
            config.host("localhost");
        }
        Ok(HubUrl {
            config,
            sslmode,
            sslrootcert,
        })
    }

    /// Whether every host is on this machine (a loopback address,
    /// `localhost`, or a Unix socket directory).
    pub fn is_loopback(&self) -> bool {
        let tcp_loopback = |host: &str| host == "localhost" || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback());
        // With `hostaddr`, that address is what is reached.
        if !self.config.get_hostaddrs().is_empty() {
            return self.config.get_hostaddrs().iter().all(IpAddr::is_loopback);
        }
        self.config.get_hosts().iter().all(|host| match host {
            Host::Tcp(name) => tcp_loopback(name),
            Host::Unix(_) => true,
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
        self.config.get_dbname()
    }

    /// The hosts (a Unix socket directory as its path) and the port each
    /// is reached on, as tokio-postgres connects to them.
    pub fn hosts(&self) -> Vec<(String, u16)> {
        let ports = self.config.get_ports();
        let port = |i: usize| ports.get(i).or(ports.first()).copied().unwrap_or(DEFAULT_PORT);
        self.config
            .get_hosts()
            .iter()
            .enumerate()
            .map(|(i, host)| {
                let name = match host {
                    Host::Tcp(name) => name.clone(),
                    Host::Unix(path) => path.display().to_string(),
                };
                (name, port(i))
            })
            .collect()
    }

    /// Which hub this is, whoever connects and however: the hosts, ports
    /// and database, as a password-free `postgres://` URL. Two URLs that
    /// differ only in the user, password or other parameters name the
    /// same hub.
    pub fn identity(&self) -> String {
        let mut out = String::from("postgres://");
        let mut query = Vec::new();
        self.write_place(&mut out, &mut query);
        append_query(&mut out, &query);
        out
    }

    /// `host:port,...` and `/database` into `out`; Unix socket directories
    /// and host addresses into `query`.
    fn write_place(&self, out: &mut String, query: &mut Vec<(&'static str, String)>) {
        let mut sockets = Vec::new();
        let mut first = true;
        for (host, (name, port)) in self.config.get_hosts().iter().zip(self.hosts()) {
            if let Host::Unix(_) = host {
                sockets.push(name);
                continue;
            }
            if !std::mem::take(&mut first) {
                out.push(',');
            }
            if name.contains(':') {
                out.push_str(&format!("[{name}]"));
            } else {
                out.push_str(&name);
            }
            if port != DEFAULT_PORT {
                out.push_str(&format!(":{port}"));
            }
        }
        if let Some(db) = self.database() {
            out.push('/');
            out.push_str(db);
        }
        if !sockets.is_empty() {
            query.push(("host", sockets.join(",")));
        }
        let addrs = self.config.get_hostaddrs();
        if !addrs.is_empty() {
            let addrs: Vec<String> = addrs.iter().map(ToString::to_string).collect();
            query.push(("hostaddr", addrs.join(",")));
        }
    }

    /// The same hub URL naming another database (tests create one each).
    pub fn with_database(&self, database: &str) -> HubUrl {
        let mut url = self.clone();
        url.config.dbname(database);
        url
    }

    /// The same hub URL reaching the server at `host:port` instead (a proxy
    /// in tests).
    pub fn with_address(&self, host: &str, port: u16) -> HubUrl {
        // tokio-postgres's Config can add hosts but not remove them: copy
        // everything else into a new one.
        let c = &self.config;
        let mut n = Config::new();
        if let Some(user) = c.get_user() {
            n.user(user);
        }
        if let Some(password) = c.get_password() {
            n.password(password);
        }
        if let Some(db) = c.get_dbname() {
            n.dbname(db);
        }
        if let Some(options) = c.get_options() {
            n.options(options);
        }
        if let Some(name) = c.get_application_name() {
            n.application_name(name);
        }
        if let Some(timeout) = c.get_connect_timeout() {
            n.connect_timeout(*timeout);
        }
        if let Some(timeout) = c.get_tcp_user_timeout() {
            n.tcp_user_timeout(*timeout);
        }
        n.keepalives(c.get_keepalives())
            .keepalives_idle(c.get_keepalives_idle())
            .target_session_attrs(c.get_target_session_attrs())
            .channel_binding(c.get_channel_binding())
            .load_balance_hosts(c.get_load_balance_hosts())
            .ssl_negotiation(c.get_ssl_negotiation())
            .host(host)
            .port(port);
        HubUrl {
            config: n,
            ..self.clone()
        }
    }

    /// The same hub URL with `sslmode` and `sslrootcert` set as given (tests
    /// of TLS against a local server).
    pub fn with_tls(&self, sslmode: &str, sslrootcert: Option<&str>) -> Result<HubUrl, HubError> {
        if !SSLMODES.contains(&sslmode) {
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
    pub(super) fn scrub(&self, message: String) -> String {
        let password = self.config.get_password().map(String::from_utf8_lossy);
        match password.as_deref() {
            Some(p) if p.len() >= 3 && message.contains(p) => message.replace(p, "***"),
            _ => message,
        }
    }

    /// The connection's configuration: the URL's, with Waymark's defaults
    /// where it says nothing (the application name, `opts`' connect
    /// timeout, keepalives after 30 s idle) and the TLS mode of [`HubUrl::tls_mode`].
    pub(super) fn config(&self, opts: &HubOptions) -> Config {
        let mut c = self.config.clone();
        if c.get_application_name().is_none() {
            c.application_name("waymark");
        }
        if c.get_connect_timeout().is_none() {
            c.connect_timeout(opts.connect_timeout);
        }
        // A peer that vanished is noticed within about a minute, even on
        // an idle listening connection.
        if c.get_keepalives_idle() == Config::new().get_keepalives_idle() {
            c.keepalives_idle(Duration::from_secs(30));
        }
        if c.get_keepalives_interval().is_none() {
            c.keepalives_interval(Duration::from_secs(10));
        }
        if c.get_keepalives_retries().is_none() {
            c.keepalives_retries(3);
        }
        c.ssl_mode(match self.tls_mode() {
            TlsMode::Disable => SslMode::Disable,
            TlsMode::Prefer => SslMode::Prefer,
            TlsMode::Require => SslMode::Require,
        });
        c
    }
}

fn append_query(out: &mut String, query: &[(&str, String)]) {
    for (i, (key, value)) in query.iter().enumerate() {
        out.push(if i == 0 { '?' } else { '&' });
        out.push_str(key);
        out.push('=');
        out.push_str(value);
    }
}

fn decode(s: &str) -> Result<String, String> {
    percent_decode_str(s)
        .decode_utf8()
        .map(Cow::into_owned)
        .map_err(|_| "percent-escapes that are not UTF-8".to_owned())
}

/// Take `sslmode` and `sslrootcert` out of a hub URL (tokio-postgres knows
/// neither `sslrootcert` nor the `verify-*` modes): the rest, for
/// tokio-postgres, and the two values.
fn take_tls_params(url: &str) -> Result<(String, Option<String>, Option<String>), String> {
    let (mut sslmode, mut sslrootcert) = (None, None);
    let mut take = |key: &str, value: String| match key {
        "sslmode" => {
            sslmode = Some(value);
            true
        }
        "sslrootcert" => {
            sslrootcert = Some(value);
            true
        }
        _ => false,
    };
    let rest = if let Some(after) = url.strip_prefix("postgres://").or(url.strip_prefix("postgresql://")) {
        // As tokio-postgres reads a URL: the credentials up to the first
        // `@`, then the parameters from the first `?` after them.
        let creds = after.find('@').map_or(0, |i| i + 1);
        match after[creds..].find('?') {
            None => url.to_owned(),
            Some(q) => {
                let start = url.len() - after.len() + creds + q;
                let mut kept = Vec::new();
                for pair in url[start + 1..].split('&') {
                    let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
                    if !take(&decode(key)?, decode(value)?) {
                        kept.push(pair);
                    }
                }
                let mut rest = url[..start].to_owned();
                if !kept.is_empty() {
                    rest.push('?');
                    rest.push_str(&kept.join("&"));
                }
                rest
            }
        }
    } else {
        let mut rest = String::with_capacity(url.len());
        let mut from = 0;
        for (span, key, value) in key_value_pairs(url) {
            if take(key, value) {
                rest.push_str(&url[from..span.start]);
                from = span.end;
            }
        }
        rest.push_str(&url[from..]);
        rest
    };
    Ok((rest, sslmode, sslrootcert))
}

/// The `key = value` pairs of a libpq connection string, read as
/// tokio-postgres reads them (values bare or in single quotes, `\` escaping
/// the next character), each with the byte range it spans. Stops at the
/// first thing that is not a pair: tokio-postgres then says what is wrong.
fn key_value_pairs(s: &str) -> Vec<(std::ops::Range<usize>, &str, String)> {
    let mut pairs = Vec::new();
    let mut it = s.char_indices().peekable();
    let skip_ws = |it: &mut std::iter::Peekable<std::str::CharIndices<'_>>| {
        while it.next_if(|(_, c)| c.is_whitespace()).is_some() {}
    };
    loop {
        skip_ws(&mut it);
        let Some(&(start, _)) = it.peek() else { break };
        while it.next_if(|&(_, c)| !c.is_whitespace() && c != '=').is_some() {}
        let key_end = it.peek().map_or(s.len(), |&(i, _)| i);
        let key = &s[start..key_end];
        skip_ws(&mut it);
        if key.is_empty() || it.next_if(|&(_, c)| c == '=').is_none() {
            break;
        }
        skip_ws(&mut it);
        let quoted = it.next_if(|&(_, c)| c == '\'').is_some();
        let mut value = String::new();
        let mut closed = !quoted;
        while let Some(&(_, c)) = it.peek() {
            if quoted && c == '\'' {
                it.next();
                closed = true;
                break;
            }
            if !quoted && c.is_whitespace() {
                break;
            }
            it.next();
            if c == '\\' {
                if let Some((_, escaped)) = it.next() {
                    value.push(escaped);
                }
            } else {
                value.push(c);
            }
        }
        if !closed || (!quoted && value.is_empty()) {
            break;
        }
        let end = it.peek().map_or(s.len(), |&(i, _)| i);
        pairs.push((start..end, key, value));
    }
    pairs
}

impl FromStr for HubUrl {
    type Err = HubError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        HubUrl::parse(s)
    }
}

impl fmt::Display for HubUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut out = String::from("postgres://");
        let user = self.config.get_user();
        let password = self.config.get_password().is_some();
        if let Some(user) = user {
            out.push_str(user);
        }
        if password {
            out.push_str(":***");
        }
        if user.is_some() || password {
            out.push('@');
        }
        let mut query = Vec::new();
        self.write_place(&mut out, &mut query);
        let c = &self.config;
        let timeout = c.get_connect_timeout().map(|t| t.as_secs().to_string());
        for (key, value) in [
            ("sslmode", self.sslmode.clone()),
            ("sslrootcert", self.sslrootcert.clone()),
            ("connect_timeout", timeout),
            ("application_name", c.get_application_name().map(str::to_owned)),
            ("options", c.get_options().map(str::to_owned)),
        ] {
            if let Some(value) = value {
                query.push((key, value));
            }
        }
        append_query(&mut out, &query);
        f.write_str(&out)
    }
}

impl fmt::Debug for HubUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "HubUrl({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::postgres::{HubOptions, PostgresHub};

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
        assert_eq!(
            url.config(&HubOptions::default()).get_password(),
            Some(&b"p@ss-w0rd"[..])
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
    fn key_value_strings_parse_and_print_redacted() {
        let url = HubUrl::parse(
            "host=db.example.com port=6543 user=alice password='it''s s3cret' dbname=team \
             sslmode=verify-full sslrootcert=/etc/ca.pem connect_timeout=3",
        );
        // libpq quotes with '...' and escapes with \: '' is not an escape.
        assert!(url.is_err());
        let url = HubUrl::parse(
            r"host=db.example.com port=6543 user=alice password='it\'s s3cret' dbname=team sslmode=verify-full sslrootcert=/etc/ca.pem connect_timeout=3",
        )
        .unwrap();
        let shown = format!("{url} {url:?}");
        assert!(!shown.contains("s3cret"), "{shown}");
        assert_eq!(
            url.to_string(),
            "postgres://alice:***@db.example.com:6543/team?sslmode=verify-full&sslrootcert=/etc/ca.pem&connect_timeout=3"
        );
        assert_eq!(url.tls_mode(), TlsMode::Require);
        assert_eq!(url.sslrootcert.as_deref(), Some("/etc/ca.pem"));
        assert_eq!(
            url.config(&HubOptions::default()).get_password(),
            Some(&b"it's s3cret"[..])
        );
        assert_eq!(url.scrub("no it's s3cret here".into()), "no *** here");
        // The same hub as its URL form.
        let same = HubUrl::parse("postgresql://carol:other@db.example.com:6543/team").unwrap();
        assert_eq!(url.identity(), same.identity());
        assert_eq!(same.identity(), "postgres://db.example.com:6543/team");
        let bare = HubUrl::parse("dbname=x").unwrap();
        assert_eq!(bare.hosts(), [("localhost".to_owned(), 5432)]);
        assert_eq!(bare.tls_mode(), TlsMode::Disable);
    }

    #[test]
    fn parse_errors_name_the_problem_and_never_repeat_the_url() {
        for (bad, why) in [
            ("mysql://u:secretpw@h/db", "postgres://"),
            ("postgres://u:secretpw@h:notaport/db", "port"),
            ("postgres://u:secretpw@h/db?sslmode=bogus", "sslmode"),
            ("postgres://u:secretpw@h/db?sslmode=allow", "allow is not supported"),
            ("postgres://u:secretpw@h/db?typo=1", "unknown option `typo`"),
            ("postgres://u:secret@pw@h/db", "%40"),
            ("host=h password=secretpw typo=1", "unknown option `typo`"),
            ("host=h password='secretpw", "unterminated"),
            ("host=h password=secretpw sslmode=bogus", "sslmode"),
        ] {
            let e = HubUrl::parse(bad).unwrap_err();
            let shown = e.to_string();
            assert!(!shown.contains("secret"), "{shown}");
            assert!(shown.contains(why), "{bad}: {shown}");
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
        assert_eq!(mode("host=/var/run/postgresql dbname=db"), TlsMode::Disable);
        assert_eq!(mode("postgres://u@db.example.com/db"), TlsMode::Require);
        assert_eq!(mode("host=db.example.com"), TlsMode::Require);
        assert_eq!(mode("postgres://u@10.0.0.5/db"), TlsMode::Require);
        assert_eq!(mode("postgres://u@localhost,db.example.com/db"), TlsMode::Require);
        assert_eq!(mode("host=localhost hostaddr=10.0.0.5"), TlsMode::Require);
        assert_eq!(mode("postgres://u@db.example.com/db?sslmode=disable"), TlsMode::Disable);
        assert_eq!(mode("host=db.example.com sslmode=disable"), TlsMode::Disable);
        assert_eq!(mode("postgres://u@db.example.com/db?sslmode=prefer"), TlsMode::Prefer);
        assert_eq!(mode("postgres://u@127.0.0.1/db?sslmode=verify-full"), TlsMode::Require);
    }

    #[test]
    fn urls_parse_into_their_parts() {
        let url = HubUrl::parse("postgres://u@h1:1,h2/my%20db?connect_timeout=3").unwrap();
        assert_eq!(url.hosts(), [("h1".to_owned(), 1), ("h2".to_owned(), 5432)]);
        assert_eq!(url.database(), Some("my db"));
        assert_eq!(url.to_string(), "postgres://u@h1:1,h2/my db?connect_timeout=3");
        assert_eq!(
            url.config(&HubOptions::default()).get_connect_timeout(),
            Some(&Duration::from_secs(3))
        );
        assert_eq!(url.with_database("other").database(), Some("other"));
        let moved = url.with_address("127.0.0.1", 9);
        assert_eq!(moved.hosts(), [("127.0.0.1".to_owned(), 9)]);
        assert_eq!(moved.database(), Some("my db"));
        assert!(moved.is_loopback());
        let bare = HubUrl::parse("postgres://").unwrap();
        assert_eq!(bare.hosts(), [("localhost".to_owned(), 5432)]);
        let sockets = HubUrl::parse("postgres:///db?host=/var/run/postgresql&sslrootcert=system").unwrap();
        assert_eq!(sockets.hosts(), [("/var/run/postgresql".to_owned(), 5432)]);
        assert_eq!(
            sockets.to_string(),
            "postgres:///db?host=/var/run/postgresql&sslrootcert=system"
        );
        assert_eq!(
            "postgres://x@y/z".parse::<HubUrl>().unwrap().to_string(),
            "postgres://x@y/z"
        );
        // An old redacted identity names the same hub.
        assert_eq!(
            HubUrl::parse("postgres://u:***@h:5432/db?sslmode=require")
                .unwrap()
                .identity(),
            HubUrl::parse("postgresql://u:pw@h/db").unwrap().identity()
        );
    }
}
