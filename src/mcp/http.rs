//! The MCP server over streamable HTTP (`waymark serve --http ADDR`): the
//! same server as on stdio, at `/mcp`, for clients that speak HTTP and for
//! the MCP conformance suite.
//!
//! rmcp's [`StreamableHttpService`] does the protocol (sessions, SSE
//! streams, Host and Origin checks); hyper carries it over HTTP/1.1. Every
//! session gets a clone of one [`WaymarkServer`], so all of them share the
//! store, the tool set and the background sync worker and git watcher.
//!
//! Loopback only, unless the caller allows otherwise: an MCP server on a
//! network address answers anyone who reaches it. On loopback, requests
//! must name a loopback host (`Host`) and, from a browser, a loopback origin
//! (`Origin`), against DNS rebinding. Elsewhere (`--allow-remote`) every
//! request must carry `Authorization: Bearer TOKEN` (compared in constant
//! time; the server refuses to start without a token), and a browser's
//! `Origin` must be one the caller allowed (none by default).
//!
//! Bounded: at most [`MAX_CONNECTIONS`] connections (more wait in the
//! kernel's queue rather than take descriptors), [`MAX_SESSIONS`] sessions
//! (a new one past that is refused with 503), request heads within
//! [`HEAD_TIMEOUT`] and bodies within [`BODY_TIMEOUT`] and
//! [`MAX_BODY_BYTES`]; idle sessions end after [`SESSION_IDLE`].

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use http_body_util::{BodyExt, Full, combinators::BoxBody};
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::{StreamableHttpServerConfig, StreamableHttpService};
use tokio_util::sync::CancellationToken;

use super::{Background, ServeContext, ServeOptions, WaymarkServer};
use crate::ops::Tracker;

/// The path the server answers on.
pub(crate) const MCP_PATH: &str = "/mcp";

/// How long open connections get to finish after Ctrl-C or SIGTERM.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);
/// The most connections served at once.
pub(crate) const MAX_CONNECTIONS: usize = 256;
/// The most MCP sessions open at once.
pub(crate) const MAX_SESSIONS: usize = 128;
/// How long a client has to send a request's head (also how long an idle
/// connection stays open).
pub(crate) const HEAD_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a client has to send a request's body.
pub(crate) const BODY_TIMEOUT: Duration = Duration::from_secs(30);
/// The largest request body.
pub(crate) const MAX_BODY_BYTES: usize = 4 << 20;
/// How long a session lives without a request.
pub(crate) const SESSION_IDLE: Duration = Duration::from_secs(120);
/// The shortest bearer token accepted.
pub(crate) const MIN_TOKEN_CHARS: usize = 16;

/// How `serve --http` listens and whom it lets in.
#[derive(Clone, Default)]
pub struct HttpAccess {
    /// Bind a non-loopback address (then `token` is required).
    pub allow_remote: bool,
    /// The bearer token every request must carry, when set.
    pub token: Option<String>,
    /// Browser origins allowed beside the loopback ones (e.g.
    /// `https://app.example.com:443`).
    pub allowed_origins: Vec<String>,
}

impl std::fmt::Debug for HttpAccess {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpAccess")
            .field("allow_remote", &self.allow_remote)
            .field("token", &self.token.as_ref().map(|_| "***"))
            .field("allowed_origins", &self.allowed_origins)
            .finish()
    }
}

/// Whether `serve --http` may bind `addr`: loopback always, anything else
/// only with `allow_remote` and a token. The error says why and what to do.
pub fn check_bind(addr: SocketAddr, access: &HttpAccess) -> Result<(), String> {
    if let Some(token) = &access.token
        && token.chars().count() < MIN_TOKEN_CHARS
    {
        return Err(format!(
            "the HTTP token is {} characters; use at least {MIN_TOKEN_CHARS} random ones (e.g. openssl rand -hex 32)",
            token.chars().count()
        ));
    }
    if addr.ip().is_loopback() {
        return Ok(());
    }
    if !access.allow_remote {
        return Err(format!(
            "refusing to serve MCP on {addr}: it is not a loopback address, so anyone who can reach it \
             could read and change this tracker; bind 127.0.0.1 or [::1], or pass --allow-remote with \
             a token (WAYMARK_HTTP_TOKEN or --token-file)"
        ));
    }
    if access.token.is_none() {
        return Err(format!(
            "refusing to serve MCP on {addr} without a token: set WAYMARK_HTTP_TOKEN or pass \
             --token-file FILE, and have clients send Authorization: Bearer TOKEN"
        ));
    }
    Ok(())
}

/// Whether `given` is `expected`, in time that depends only on the length
/// of `expected`.
fn same_token(given: &[u8], expected: &[u8]) -> bool {
    let mut diff = given.len() ^ expected.len();
    for (i, e) in expected.iter().enumerate() {
        diff |= usize::from(given.get(i).copied().unwrap_or(0) ^ e);
    }
    std::hint::black_box(diff) == 0
}

/// Serve MCP over streamable HTTP at `http://ADDR/mcp` until Ctrl-C or
/// SIGTERM. Builds its own runtime; starts the sync worker and the git
/// watcher as [`super::serve_stdio`] does. Refuses a non-loopback address
/// unless `allow_remote`. Once listening, writes
/// `waymark: serving MCP on http://ADDR/mcp` to stderr, with the port
/// actually bound (so port 0 picks a free one).
pub fn serve_http(
    tracker: Tracker,
    options: ServeOptions,
    context: ServeContext,
    addr: SocketAddr,
    access: HttpAccess,
) -> std::io::Result<()> {
    serve_http_then(tracker, options, context, addr, access, |_| {})
}

/// [`serve_http`], calling `bound` with the address bound once listening
/// (`waymark board` prints the board's URL and opens a browser there).
pub fn serve_http_then(
    tracker: Tracker,
    options: ServeOptions,
    context: ServeContext,
    addr: SocketAddr,
    access: HttpAccess,
    bound: impl FnOnce(SocketAddr),
) -> std::io::Result<()> {
    let on_bound = bound;
    check_bind(addr, &access).map_err(|e| std::io::Error::new(std::io::ErrorKind::PermissionDenied, e))?;
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let bound = listener.local_addr()?;
        let background = Background::start(&tracker, options, &context);
        let server = WaymarkServer::new(tracker.clone(), options).with_context(context);
        let stop = CancellationToken::new();
        let mut config = StreamableHttpServerConfig::default().with_cancellation_token(stop.child_token());
        config = config.with_max_request_body_bytes(MAX_BODY_BYTES);
        if bound.ip().is_loopback() {
            let loopback = ["http://localhost:*", "http://127.0.0.1:*", "http://[::1]:*"].map(String::from);
            config = config.with_allowed_origins(loopback.into_iter().chain(access.allowed_origins.iter().cloned()));
        } else {
            // Clients name this machine as they know it; nothing to check
            // Host against (the token stands in). Browsers only from the
            // origins allowed, none by default.
            config = config.disable_allowed_hosts();
            config = if access.allowed_origins.is_empty() {
                config.enforce_origin_validation()
            } else {
                config.with_allowed_origins(access.allowed_origins.iter().cloned())
            };
            tracing::warn!(%bound, "serving MCP on a non-loopback address; every request needs the token");
        }
        let mut sessions = LocalSessionManager::default();
        sessions.session_config.keep_alive = Some(SESSION_IDLE);
        sessions.session_config.init_timeout = Some(HEAD_TIMEOUT);
        let sessions = Arc::new(sessions);
        let mcp = StreamableHttpService::new(move || Ok(server.clone()), sessions.clone(), config);
        let board = crate::board::http::Access {
            loopback: bound.ip().is_loopback(),
            token: access.token.clone(),
            allowed_origins: access.allowed_origins.clone(),
        };
        let sessions_for_trim = sessions.clone();
        let gate = Arc::new(Gate {
            mcp,
            sessions,
            token: access.token.clone(),
            full_warned: Default::default(),
            board: Arc::new(crate::board::Board::new(tracker.clone())),
            board_access: board,
            stop: stop.clone(),
        });
        eprintln!("waymark: serving MCP on http://{bound}{MCP_PATH}");
        eprintln!("waymark: board at http://{bound}/");
        on_bound(bound);
        tracing::info!(toolset = %options.toolset, read_only = options.read_only, %bound, "serving MCP over HTTP");
        let trimmer = tokio::spawn(return_memory(sessions_for_trim, stop.clone()));
        let result = accept_until_stopped(listener, gate, stop).await;
        trimmer.abort();
        background.stop(&tracker);
        tracing::debug!("MCP server stopped");
        result
    })
}

type Mcp = StreamableHttpService<WaymarkServer, LocalSessionManager>;

/// How often the server looks whether sessions ended.
const TRIM_EVERY: Duration = Duration::from_secs(5);

/// Hands the memory of ended sessions back to the system. The allocator
/// (glibc's) keeps what a burst of sessions freed in its arenas for reuse,
/// so a server that once held 128 sessions would stay at that size; after
/// the number of sessions changed, the server trims the arenas (a
/// millisecond or so, on a blocking thread).
async fn return_memory(sessions: Arc<LocalSessionManager>, stop: CancellationToken) {
    let mut last = 0;
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(TRIM_EVERY) => {}
        }
        let now = sessions.sessions.read().await.len();
        if now != last {
            let _ = tokio::task::spawn_blocking(trim_heap).await;
        }
        last = now;
    }
}

/// Return the allocator's free memory to the system, where it can.
#[allow(unsafe_code)]
fn trim_heap() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only walks and releases the allocator's own free
    // lists; it takes no pointer and is safe to call from any thread.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// What every request passes through: the token, the session cap, the
/// body's deadline; then the MCP service.
struct Gate {
    mcp: Mcp,
    sessions: Arc<LocalSessionManager>,
    token: Option<String>,
    /// Whether the log already says the sessions are full.
    full_warned: std::sync::atomic::AtomicBool,
    /// The read-only board at every other path (`src/board`).
    board: Arc<crate::board::Board>,
    board_access: crate::board::http::Access,
    /// Ends the board's event streams when the server stops.
    stop: CancellationToken,
}

async fn accept_until_stopped(
    listener: tokio::net::TcpListener,
    gate: Arc<Gate>,
    stop: CancellationToken,
) -> std::io::Result<()> {
    let mut connections = tokio::task::JoinSet::new();
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    let signal = shutdown_signal();
    tokio::pin!(signal);
    loop {
        // A connection past the cap waits in the kernel's queue, not in a
        // descriptor of ours.
        let next = async {
            let slot = slots.clone().acquire_owned().await;
            (slot, listener.accept().await)
        };
        tokio::select! {
            why = &mut signal => {
                tracing::info!("{why}: stopping the MCP server");
                break;
            }
            (slot, accepted) = next => match accepted {
                Ok((stream, peer)) => {
                    let gate = gate.clone();
                    let stop = stop.clone();
                    connections.spawn(async move {
                        serve_connection(stream, peer, gate, stop).await;
                        drop(slot);
                    });
                }
                // Out of file descriptors and the like: wait, then go on.
                Err(e) => {
                    tracing::warn!("accepting a connection failed: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
            // Reap finished connections so the set does not grow.
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    drop(listener);
    // Ends every session and its SSE streams, then lets each connection
    // finish the response it is writing.
    stop.cancel();
    tracing::debug!(open = connections.len(), "draining connections");
    let drain = async { while connections.join_next().await.is_some() {} };
    if tokio::time::timeout(SHUTDOWN_GRACE, drain).await.is_err() {
        tracing::warn!("connections still open after {SHUTDOWN_GRACE:?}; closing them");
        connections.shutdown().await;
    }
    tracing::debug!("connections closed");
    Ok(())
}

async fn serve_connection(stream: tokio::net::TcpStream, peer: SocketAddr, gate: Arc<Gate>, stop: CancellationToken) {
    let service = hyper::service::service_fn(move |request: Request<Incoming>| {
        let gate = gate.clone();
        async move { Ok::<_, Infallible>(route(&gate, request).await) }
    });
    let connection = hyper::server::conn::http1::Builder::new()
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(HEAD_TIMEOUT)
        .max_buf_size(64 * 1024)
        .serve_connection(TokioIo::new(stream), service);
    tokio::pin!(connection);
    let result = tokio::select! {
        result = connection.as_mut() => result,
        _ = stop.cancelled() => {
            connection.as_mut().graceful_shutdown();
            connection.await
        }
    };
    if let Err(e) = result {
        tracing::debug!(%peer, "HTTP connection ended: {e}");
    }
}

async fn route(gate: &Gate, request: Request<Incoming>) -> Response<BoxBody<Bytes, Infallible>> {
    if request.uri().path() != MCP_PATH {
        return crate::board::http::handle(&gate.board, &gate.board_access, request, &gate.stop).await;
    }
    if let Some(token) = &gate.token {
        let given = request
            .headers()
            .get(hyper::header::AUTHORIZATION)
            .and_then(|v| v.as_bytes().strip_prefix(b"Bearer "))
            .unwrap_or_default();
        if !same_token(given, token.as_bytes()) {
            let mut response = plain(
                StatusCode::UNAUTHORIZED,
                "this MCP server needs Authorization: Bearer TOKEN (the token it was started with)",
            );
            response.headers_mut().insert(
                hyper::header::WWW_AUTHENTICATE,
                hyper::header::HeaderValue::from_static("Bearer"),
            );
            return response;
        }
    }
    let opens_session = request.method() == hyper::Method::POST && !request.headers().contains_key("mcp-session-id");
    if opens_session && gate.sessions.sessions.read().await.len() >= MAX_SESSIONS {
        // Once per run: a client that retries must not flood the log.
        if !gate.full_warned.swap(true, std::sync::atomic::Ordering::Relaxed) {
            tracing::warn!("refusing new MCP sessions while {MAX_SESSIONS} are open");
        }
        return plain(
            StatusCode::SERVICE_UNAVAILABLE,
            &format!(
                "{MAX_SESSIONS} MCP sessions are open, the most this server keeps; end one (DELETE) or retry later"
            ),
        );
    }
    let (parts, body) = request.into_parts();
    let body = match tokio::time::timeout(
        BODY_TIMEOUT,
        http_body_util::Limited::new(body, MAX_BODY_BYTES).collect(),
    )
    .await
    {
        Ok(Ok(collected)) => collected.to_bytes(),
        Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => {
            return plain(
                StatusCode::PAYLOAD_TOO_LARGE,
                &format!("a request body may hold at most {MAX_BODY_BYTES} bytes"),
            );
        }
        Ok(Err(e)) => {
            return plain(
                StatusCode::BAD_REQUEST,
                &format!("the request body could not be read: {e}"),
            );
        }
        Err(_) => {
            return plain(
                StatusCode::REQUEST_TIMEOUT,
                &format!("the request body did not arrive within {BODY_TIMEOUT:?}"),
            );
        }
    };
    gate.mcp.handle(Request::from_parts(parts, Full::new(body))).await
}

/// A plain-text answer with this status.
fn plain(status: StatusCode, message: &str) -> Response<BoxBody<Bytes, Infallible>> {
    let mut response = Response::new(Full::new(Bytes::from(format!("{message}\n"))).boxed());
    *response.status_mut() = status;
    response.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

/// Resolves on Ctrl-C or SIGTERM, naming which.
async fn shutdown_signal() -> &'static str {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(term) => term,
        Err(e) => {
            tracing::warn!("cannot listen for SIGTERM: {e}");
            let _ = tokio::signal::ctrl_c().await;
            return "Ctrl-C";
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => "Ctrl-C",
        _ = term.recv() => "SIGTERM",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_compare_whole() {
        assert!(same_token(b"0123456789abcdef", b"0123456789abcdef"));
        assert!(!same_token(b"0123456789abcdeX", b"0123456789abcdef"));
        assert!(!same_token(b"0123456789abcde", b"0123456789abcdef"));
        assert!(!same_token(b"0123456789abcdef0", b"0123456789abcdef"));
        assert!(!same_token(b"", b"0123456789abcdef"));
    }

    #[test]
    fn a_remote_address_needs_allow_remote_and_a_long_token() {
        let remote: SocketAddr = "0.0.0.0:8080".parse().unwrap();
        let local: SocketAddr = "127.0.0.1:8080".parse().unwrap();
        let token = |t: &str| HttpAccess {
            allow_remote: true,
            token: Some(t.into()),
            allowed_origins: vec![],
        };
        assert!(check_bind(local, &HttpAccess::default()).is_ok());
        assert!(
            check_bind(remote, &HttpAccess::default())
                .unwrap_err()
                .contains("--allow-remote")
        );
        let no_token = HttpAccess {
            allow_remote: true,
            ..HttpAccess::default()
        };
        assert!(
            check_bind(remote, &no_token)
                .unwrap_err()
                .contains("WAYMARK_HTTP_TOKEN")
        );
        assert!(check_bind(remote, &token("short")).unwrap_err().contains("at least 16"));
        assert!(check_bind(remote, &token("a-long-enough-token")).is_ok());
        assert!(!format!("{:?}", token("a-long-enough-token")).contains("enough"));
    }
}
