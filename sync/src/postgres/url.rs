//! The hub URL: parsing, the connection settings it gives, and its
//! redaction (the password never printed).

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;
use std::time::Duration;

use tokio_postgres::Config;

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
    pub(super) sslrootcert: Option<String>,
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
    pub(super) fn scrub(&self, message: String) -> String {
        match self.password.as_deref() {
            Some(p) if p.len() >= 3 && message.contains(p) => message.replace(p, "***"),
            _ => message,
        }
    }

    pub(super) fn config(&self, opts: &HubOptions) -> Config {
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
