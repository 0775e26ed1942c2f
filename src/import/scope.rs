//! Which files the MCP tools may read and write: a [`FileScope`].
//!
//! A client of the MCP server names paths (`import_markdown`,
//! `export_markdown`, `import_git_history`), and a client is not the person
//! who started the server. So the tools touch only:
//! * files inside the scope's roots (the repository the server serves, or
//!   the data directory's parent outside git, plus any `serve --file-root`),
//!   with every symlink resolved before the check, so a link that leaves the
//!   roots is refused;
//! * never inside the store's data directory, `.waymark/` or `.git/` (the
//!   database, the hub password in `config.toml`, git's hooks and remotes);
//! * markdown files (`.md`) only, regular files only (no FIFO, no device:
//!   `/dev/zero` would never end), and reads of at most [`MAX_READ`] bytes.
//!
//! The command line does not use a scope: a person names their own files.
//! Every refusal is an [`Error::Invalid`] on `path` whose sentence names the
//! rule, and changes nothing.

use std::io::Read;
use std::path::{Component, Path, PathBuf};

use crate::error::{Error, Result};

/// The largest file a tool reads: 4 MiB (a legacy status file of about
/// 40,000 lines).
pub(crate) const MAX_READ: u64 = 4 << 20;

/// Directories no tool may read or write in, wherever they sit.
const PRIVATE_DIRS: &[&str] = &[".waymark", ".git"];

/// Where the MCP tools may read and write files. See the module docs.
#[derive(Clone, Debug, Default)]
pub(crate) struct FileScope {
    /// Canonical (symlinks resolved) directories; the first is where
    /// relative paths start.
    roots: Vec<PathBuf>,
    /// The store's data directory, canonical, when there is one.
    data_dir: Option<PathBuf>,
}

impl FileScope {
    /// A scope over `roots` (those that exist), never reaching into
    /// `data_dir`. With no root, every path is refused.
    pub fn new(roots: impl IntoIterator<Item = PathBuf>, data_dir: Option<&Path>) -> FileScope {
        let mut canonical: Vec<PathBuf> = Vec::new();
        for root in roots {
            match root.canonicalize() {
                Ok(c) if !canonical.contains(&c) => canonical.push(c),
                Ok(_) => {}
                Err(e) => tracing::warn!("file root {} is left out: {e}", root.display()),
            }
        }
        FileScope {
            roots: canonical,
            data_dir: data_dir.and_then(|d| d.canonicalize().ok()),
        }
    }

    /// Read a markdown file named by a client: its canonical path and text.
    pub(crate) fn read_markdown(&self, requested: &str) -> Result<(PathBuf, String)> {
        let path = self.requested(requested)?;
        self.markdown_name(requested, &path)?;
        let real = path
            .canonicalize()
            .map_err(|e| refuse(requested, format!("cannot be read: {e}")))?;
        self.inside(requested, &real)?;
        let text = read_regular_file(requested, &real)?;
        Ok((real, text))
    }

    /// Where to write a markdown file a client named: its directory must
    /// exist inside the scope, and the file, if it exists, must be a
    /// regular file (not a symlink).
    pub(crate) fn markdown_target(&self, requested: &str) -> Result<PathBuf> {
        let path = self.requested(requested)?;
        let name = self.markdown_name(requested, &path)?;
        let dir = match path.parent().filter(|p| !p.as_os_str().is_empty()) {
            Some(dir) => dir.to_path_buf(),
            None => self.roots[0].clone(),
        };
        let dir = dir
            .canonicalize()
            .map_err(|e| refuse(requested, format!("cannot be written: its directory: {e}")))?;
        let target = dir.join(name);
        self.inside(requested, &target)?;
        match std::fs::symlink_metadata(&target) {
            Ok(m) if m.file_type().is_symlink() => Err(refuse(
                requested,
                "is a symbolic link; tools write only regular files, so name the file it points to",
            )),
            Ok(m) if !m.is_file() => Err(refuse(requested, "is not a regular file")),
            _ => Ok(target),
        }
    }

    /// A directory named by a client (a git repository to import), canonical.
    pub fn directory(&self, requested: &str) -> Result<PathBuf> {
        let path = self.requested(requested)?;
        let real = path
            .canonicalize()
            .map_err(|e| refuse(requested, format!("cannot be read: {e}")))?;
        self.inside(requested, &real)?;
        if !real.is_dir() {
            return Err(refuse(requested, "is not a directory"));
        }
        Ok(real)
    }

    /// The path as given, made absolute from the first root.
    fn requested(&self, requested: &str) -> Result<PathBuf> {
        let Some(first) = self.roots.first() else {
            return Err(refuse(
                requested,
                "cannot be used: this server has no directory for files (it serves no repository); \
                 start it with serve --file-root DIR",
            ));
        };
        if requested.trim().is_empty() {
            return Err(Error::invalid("path", "is empty; name a file in the repository"));
        }
        if requested.contains('\0') {
            return Err(refuse(requested, "contains a NUL character"));
        }
        let path = Path::new(requested);
        Ok(if path.is_absolute() {
            path.to_path_buf()
        } else {
            first.join(path)
        })
    }

    /// The file name, which must end in `.md`.
    fn markdown_name<'p>(&self, requested: &str, path: &'p Path) -> Result<&'p std::ffi::OsStr> {
        match path.file_name() {
            Some(name) if name.to_string_lossy().to_ascii_lowercase().ends_with(".md") => Ok(name),
            _ => Err(refuse(
                requested,
                "is not a markdown file; tools read and write only files whose names end in .md",
            )),
        }
    }

    /// Refuse a canonical path outside every root, or inside a private
    /// directory or the data directory.
    fn inside(&self, requested: &str, real: &Path) -> Result<()> {
        let Some(root) = self.roots.iter().find(|r| real.starts_with(r)) else {
            return Err(refuse(
                requested,
                format!(
                    "is outside {}; MCP tools read and write only inside the repository this server \
                     serves (serve --file-root DIR adds a directory)",
                    self.roots_display()
                ),
            ));
        };
        let private = real
            .strip_prefix(root)
            .unwrap_or(real)
            .components()
            .any(|c| matches!(c, Component::Normal(n) if PRIVATE_DIRS.iter().any(|p| n == *p)));
        if private || self.data_dir.as_ref().is_some_and(|d| real.starts_with(d)) {
            return Err(refuse(
                requested,
                "is inside the store's directory or .git; tools never read or write there",
            ));
        }
        Ok(())
    }

    fn roots_display(&self) -> String {
        self.roots
            .iter()
            .map(|r| r.display().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// Read a regular file of at most [`MAX_READ`] bytes as UTF-8, never
/// following a symlink in its last component and never blocking on a FIFO.
fn read_regular_file(requested: &str, real: &Path) -> Result<String> {
    use std::os::unix::fs::OpenOptionsExt;
    let flags = rustix::fs::OFlags::NOFOLLOW | rustix::fs::OFlags::NONBLOCK;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(flags.bits() as i32)
        .open(real)
        .map_err(|e| refuse(requested, format!("cannot be read: {e}")))?;
    let meta = file
        .metadata()
        .map_err(|e| refuse(requested, format!("cannot be read: {e}")))?;
    if !meta.is_file() {
        return Err(refuse(
            requested,
            "is not a regular file (a device, a FIFO or a directory); tools read only regular files",
        ));
    }
    let too_big = || {
        refuse(
            requested,
            format!("is larger than {} MiB, the most a tool reads", MAX_READ >> 20),
        )
    };
    if meta.len() > MAX_READ {
        return Err(too_big());
    }
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    file.take(MAX_READ + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| refuse(requested, format!("cannot be read: {e}")))?;
    if bytes.len() as u64 > MAX_READ {
        return Err(too_big());
    }
    String::from_utf8(bytes).map_err(|_| refuse(requested, "is not UTF-8 text"))
}

/// An error on `path` that quotes at most a short prefix of what was asked.
fn refuse(requested: &str, why: impl std::fmt::Display) -> Error {
    Error::invalid("path", format!("{} {why}", crate::error::quote(requested)))
}
