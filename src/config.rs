//! Settings: the store's `config.toml`, then the environment, then flags
//! (the highest wins). Secrets in the hub URL never reach Debug output,
//! logs or errors: everything prints [`Settings::hub_display`].
//!
//! `config.toml` can hold the hub's password, so it is written readable by
//! its owner only (0600), and a copy that others can read is tightened to
//! 0600 when it is loaded, with a warning.
//!
//! ```toml
//! [hub]
//! url = "postgres://waymark:secret@hub.example.com:5432/waymark"
//! space = "my-team"
//!
//! [sync]
//! interval_seconds = 30
//! listen = true   # pull as soon as the hub announces a push
//! retention_days = 30   # compaction retires replicas silent this long (0: never)
//! ```

use std::fmt;
use std::path::Path;
use std::time::Duration;

use serde::Deserialize;
use waymark_sync::HubUrl;

use crate::error::{Error, Result};

/// The file inside the data directory.
pub(crate) const CONFIG_FILE: &str = "config.toml";
/// Replicas silent this many days are retired by compaction, by default.
pub(crate) const DEFAULT_RETENTION_DAYS: u64 = 30;
/// The default time between sync rounds.
pub(crate) const DEFAULT_SYNC_INTERVAL: Duration = Duration::from_secs(30);

#[derive(Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    hub: HubSection,
    #[serde(default)]
    sync: SyncSection,
    /// Kept current by the watcher when true (see `crate::watch`).
    #[serde(default)]
    auto_export_markdown: Option<bool>,
}

#[derive(Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct HubSection {
    url: Option<String>,
    space: Option<String>,
}

#[derive(Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct SyncSection {
    interval_seconds: Option<u64>,
    listen: Option<bool>,
    retention_days: Option<u64>,
}

/// Where and how often to sync.
#[derive(Clone, Default)]
pub struct Settings {
    /// The hub's connection URL, password included: never print it.
    hub_url: Option<String>,
    pub space: Option<String>,
    pub sync_interval: Option<Duration>,
    /// Listen for the hub's announcements of pushes (default on).
    pub sync_listen: Option<bool>,
    /// Replicas silent for longer are retired by compaction (default 30 days;
    /// 0: never).
    pub retention_days: Option<u64>,
}

impl fmt::Debug for Settings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Settings")
            .field("hub", &self.hub_display())
            .field("space", &self.space)
            .field("sync_interval", &self.sync_interval)
            .field("sync_listen", &self.sync_listen)
            .field("retention_days", &self.retention_days)
            .finish()
    }
}

/// A hub URL (`postgres://` or `key=value` pairs) as it may be shown: the
/// sync crate's [`HubUrl`] prints its password as `***`; one that does not
/// parse is not shown at all.
pub(crate) fn redact_url(url: &str) -> String {
    HubUrl::parse(url).map_or_else(|_| "(an unparseable hub URL)".into(), |u| u.to_string())
}

fn env(name: &str) -> Option<String> {
    std::env::var(name)
        .ok()
        .map(|v| v.trim().to_owned())
        .filter(|v| !v.is_empty())
}

fn parse_interval(source: &str, text: &str) -> Result<Duration> {
    let t = text.trim();
    let (number, unit) = match t.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => t.split_at(i),
        None => (t, "s"),
    };
    let n: u64 = number.parse().map_err(|_| {
        Error::invalid(
            source,
            format!("{} is not a duration like 30, 30s or 5m", crate::error::quote(text)),
        )
    })?;
    let secs = match unit.trim() {
        "" | "s" => n,
        "m" => n * 60,
        "h" => n * 3600,
        _ => {
            return Err(Error::invalid(
                source,
                format!("{} is not a duration like 30, 30s or 5m", crate::error::quote(text)),
            ));
        }
    };
    if secs == 0 {
        return Err(Error::invalid(source, "must be at least one second"));
    }
    Ok(Duration::from_secs(secs))
}

impl Settings {
    /// `config.toml` in `data_dir` (absent is fine), then the environment
    /// (`WAYMARK_HUB_URL`, `WAYMARK_SPACE`, `WAYMARK_SYNC_INTERVAL`).
    pub fn load(data_dir: &Path) -> Result<Settings> {
        let file = read_file(data_dir)?;
        let mut s = Settings {
            hub_url: file.hub.url,
            space: file.hub.space,
            sync_interval: file.sync.interval_seconds.map(Duration::from_secs),
            sync_listen: file.sync.listen,
            retention_days: file.sync.retention_days,
        };
        if let Some(url) = env("WAYMARK_HUB_URL") {
            s.hub_url = Some(url);
        }
        if let Some(space) = env("WAYMARK_SPACE") {
            s.space = Some(space);
        }
        if let Some(i) = env("WAYMARK_SYNC_INTERVAL") {
            s.sync_interval = Some(parse_interval("WAYMARK_SYNC_INTERVAL", &i)?);
        }
        if let Some(v) = env("WAYMARK_SYNC_LISTEN") {
            s.sync_listen = Some(parse_switch("WAYMARK_SYNC_LISTEN", &v)?);
        }
        if let Some(v) = env("WAYMARK_SYNC_RETENTION_DAYS") {
            let days: u64 = v.parse().ok().filter(|d| *d <= 36_500).ok_or_else(|| {
                Error::invalid(
                    "WAYMARK_SYNC_RETENTION_DAYS",
                    format!("{} is not a number of days (0 to 36500)", crate::error::quote(&v)),
                )
            })?;
            s.retention_days = Some(days);
        }
        if s.retention_days.is_some_and(|d| d > 36_500) {
            return Err(Error::invalid("sync.retention_days", "must be at most 36500 days"));
        }
        Ok(s)
    }

    /// Flags on the command line win over everything else.
    pub fn with_overrides(mut self, hub_url: Option<String>, space: Option<String>) -> Settings {
        if hub_url.is_some() {
            self.hub_url = hub_url;
        }
        if space.is_some() {
            self.space = space;
        }
        self
    }

    /// The hub, as it may be shown: password redacted.
    pub fn hub_display(&self) -> Option<String> {
        self.hub_url.as_deref().map(redact_url)
    }

    pub fn interval(&self) -> Duration {
        self.sync_interval.unwrap_or(DEFAULT_SYNC_INTERVAL)
    }

    /// Whether the worker listens for the hub's announcements of pushes
    /// (off for a hub behind a pooler that cannot `LISTEN`, such as
    /// PgBouncer in transaction mode: then it polls at the interval only).
    pub fn listen(&self) -> bool {
        self.sync_listen.unwrap_or(true)
    }

    /// How long a replica may stay silent before compaction retires it (its
    /// cursor then no longer holds the hub's history); `None`: never.
    pub fn retention(&self) -> Option<Duration> {
        match self.retention_days.unwrap_or(DEFAULT_RETENTION_DAYS) {
            0 => None,
            days => Some(Duration::from_secs(days * 86_400)),
        }
    }

    /// The hub and space, when both are set.
    pub fn hub(&self) -> Option<(&str, &str)> {
        Some((self.hub_url.as_deref()?, self.space.as_deref()?))
    }

    /// Check a space name: 1-100 letters, digits, `-`, `_`, `.`.
    pub(crate) fn check_space(space: &str) -> Result<String> {
        let t = space.trim();
        if t.is_empty()
            || t.len() > 100
            || !t
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        {
            return Err(Error::invalid(
                "space",
                format!("{space:?} is not 1-100 letters, digits, -, _ or ."),
            ));
        }
        Ok(t.to_owned())
    }
}

/// `data_dir/config.toml`, parsed (absent: every default).
fn read_file(data_dir: &Path) -> Result<File> {
    let path = data_dir.join(CONFIG_FILE);
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            tighten(&path);
            toml::from_str(&text).map_err(|e| {
                // toml's message quotes the offending line, which could hold the URL.
                let what = e.message().to_owned();
                Error::invalid(
                    path.display().to_string(),
                    format!("is not valid Waymark configuration: {what}"),
                )
            })
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(File::default()),
        Err(e) => Err(Error::Io(e)),
    }
}

/// The environment variable that overrides `auto_export_markdown`.
pub(crate) const AUTO_EXPORT_ENV: &str = "WAYMARK_AUTO_EXPORT_MARKDOWN";

/// Whether the watcher keeps `.project_status.md` current:
/// `WAYMARK_AUTO_EXPORT_MARKDOWN` (`1`/`true`/`yes`/`on` or
/// `0`/`false`/`no`/`off`) when set, else `auto_export_markdown` in
/// `config.toml` (default off).
pub fn auto_export_markdown(data_dir: &Path) -> Result<bool> {
    auto_export_from(env(AUTO_EXPORT_ENV).as_deref(), &read_file(data_dir)?)
}

fn auto_export_from(env: Option<&str>, file: &File) -> Result<bool> {
    match env {
        None => Ok(file.auto_export_markdown.unwrap_or(false)),
        Some(text) => parse_switch(AUTO_EXPORT_ENV, text),
    }
}

/// An on/off environment variable.
fn parse_switch(source: &str, text: &str) -> Result<bool> {
    match text.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Ok(true),
        "0" | "false" | "no" | "off" => Ok(false),
        other => Err(Error::invalid(
            source,
            format!("{other:?} is not one of 1, true, yes, on, 0, false, no, off"),
        )),
    }
}

/// Set the hub and space in `data_dir/config.toml`, keeping what else it says.
pub fn write_hub(data_dir: &Path, url: Option<&str>, space: Option<&str>) -> Result<()> {
    let path = data_dir.join(CONFIG_FILE);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(Error::Io(e)),
    };
    let mut doc: toml::Table = toml::from_str(&text).map_err(|e| {
        Error::invalid(
            path.display().to_string(),
            format!("is not valid TOML: {}", e.message()),
        )
    })?;
    let hub = doc
        .entry("hub")
        .or_insert_with(|| toml::Value::Table(toml::Table::new()));
    let Some(hub) = hub.as_table_mut() else {
        return Err(Error::invalid(
            path.display().to_string(),
            "has a `hub` that is not a table",
        ));
    };
    if let Some(url) = url {
        HubUrl::parse(url).map_err(|e| {
            Error::invalid(
                "hub",
                match e {
                    waymark_sync::HubError::Other(why) => why,
                    other => other.to_string(),
                },
            )
        })?;
        hub.insert("url".into(), url.into());
    }
    if let Some(space) = space {
        hub.insert("space".into(), Settings::check_space(space)?.into());
    }
    let body = toml::to_string(&doc).map_err(|e| Error::Corrupt(e.to_string()))?;
    write_private(&path, &format!("{HEADER}{body}"))
}

const HEADER: &str = "# Waymark configuration. Flags and WAYMARK_* environment variables take precedence.\n";

/// Create `data_dir/config.toml` (only its header comment) unless it
/// exists, readable by its owner only.
pub fn create_file(data_dir: &Path) -> Result<()> {
    let path = data_dir.join(CONFIG_FILE);
    if path.exists() {
        return Ok(());
    }
    write_private(&path, HEADER)
}

/// Replace `path` with `text`, readable and writable by its owner only:
/// written to a new 0600 file beside it, then renamed over it, so no
/// moment exists where the secret sits in a file others can read.
fn write_private(path: &Path, text: &str) -> Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = path.with_extension(format!("toml.{}.tmp", std::process::id()));
    let written = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .and_then(|mut f| f.write_all(text.as_bytes()).and_then(|()| f.sync_all()))
        .and_then(|()| std::fs::rename(&tmp, path));
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    Ok(written?)
}

/// Make `path` readable by its owner only if others can read or write it.
fn tighten(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let Ok(meta) = std::fs::metadata(path) else {
        return;
    };
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 == 0 {
        return;
    }
    match std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)) {
        Ok(()) => tracing::warn!(
            "{} could be read by other users (mode {mode:o}); it can hold the hub password, so it is now 0600",
            path.display()
        ),
        Err(e) => tracing::warn!(
            "{} can be read by other users (mode {mode:o}) and could not be made private: {e}; run chmod 600 on it",
            path.display()
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_redacted() {
        assert_eq!(
            redact_url("postgres://u:s3cret@h:6543/db"),
            "postgres://u:***@h:6543/db"
        );
        assert_eq!(redact_url("postgres://u@h/db"), "postgres://u@h/db");
        assert_eq!(redact_url("postgres://h/db?user=u&password=x"), "postgres://u:***@h/db");
        assert_eq!(
            redact_url("host=h user=u password='s3 cret' dbname=db"),
            "postgres://u:***@h/db"
        );
        // An unencoded @ in the password is refused, not half shown.
        assert!(!redact_url("postgres://u:p@ss@h/db").contains("ss"));
        assert!(!redact_url("garbage s3cret").contains("s3cret"));
    }

    /// The watcher's switch is read by the same parser as everything else:
    /// a key in the wrong table or a comment is not taken for it.
    #[test]
    fn auto_export_is_read_as_toml() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join(CONFIG_FILE);
        let read = |text: &str| {
            std::fs::write(&path, text).unwrap();
            auto_export_from(None, &read_file(d.path())?)
        };
        assert!(!read("").unwrap());
        assert!(read("auto_export_markdown = true # keep it current\n").unwrap());
        assert!(!read("auto_export_markdown = false\n").unwrap());
        assert!(!read("# auto_export_markdown = true\n").unwrap());
        assert!(read("[hub]\nauto_export_markdown = true\n").is_err());
        assert!(read("auto_export_markdown = \"yes\"\n").is_err());
        let file = File {
            auto_export_markdown: Some(true),
            ..File::default()
        };
        assert!(!auto_export_from(Some("off"), &file).unwrap());
        assert!(auto_export_from(Some("ON"), &File::default()).unwrap());
        assert!(auto_export_from(Some("maybe"), &file).is_err());
    }

    #[test]
    fn intervals_take_units() {
        assert_eq!(parse_interval("x", "30").unwrap(), Duration::from_secs(30));
        assert_eq!(parse_interval("x", "5m").unwrap(), Duration::from_secs(300));
        assert!(parse_interval("x", "0").is_err() && parse_interval("x", "soon").is_err());
    }

    fn mode(path: &Path) -> u32 {
        use std::os::unix::fs::PermissionsExt;
        std::fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn the_file_is_private_and_a_readable_one_is_tightened() {
        use std::os::unix::fs::PermissionsExt;
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join(CONFIG_FILE);
        create_file(d.path()).unwrap();
        assert_eq!(mode(&path), 0o600);
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        write_hub(d.path(), Some("postgres://u:pw@h/db"), Some("team")).unwrap();
        assert_eq!(mode(&path), 0o600, "a rewrite is private whatever the old mode");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        Settings::load(d.path()).unwrap();
        assert_eq!(mode(&path), 0o600, "loading tightens a readable file");
        assert_eq!(
            std::fs::read_dir(d.path()).unwrap().count(),
            1,
            "no temporary file left"
        );
    }

    #[test]
    fn the_file_and_its_rewrite() {
        let d = tempfile::tempdir().unwrap();
        write_hub(d.path(), Some("postgres://u:pw@h/db"), Some("team-a")).unwrap();
        let s = Settings::load(d.path()).unwrap();
        assert_eq!(s.hub(), Some(("postgres://u:pw@h/db", "team-a")));
        assert!(!format!("{s:?}").contains(":pw@"));
        write_hub(d.path(), None, Some("team-b")).unwrap();
        assert_eq!(
            Settings::load(d.path()).unwrap().hub(),
            Some(("postgres://u:pw@h/db", "team-b"))
        );
        assert!(write_hub(d.path(), None, Some("bad space")).is_err());
        assert!(write_hub(d.path(), Some("mysql://x"), None).is_err());
        std::fs::write(
            d.path().join(CONFIG_FILE),
            "[hub]\nurl = \"postgres://u:pw@h/db\"\nbogus = 1\n",
        )
        .unwrap();
        let err = Settings::load(d.path()).unwrap_err().to_string();
        assert!(!err.contains(":pw@"), "{err}");
    }
}
