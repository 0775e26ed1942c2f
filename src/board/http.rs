//! The board over HTTP, beside `/mcp` in `serve --http` (see
//! `src/mcp/http.rs`, which hands it every other path).
//!
//! The same rules as `/mcp`: on a loopback address, requests must name a
//! loopback `Host` and come from no other browser `Origin` than a loopback
//! one (or one allowed), against DNS rebinding; with a token, every request
//! must carry it. A browser cannot send `Authorization` when it follows a
//! link, so the board also takes the token once as `?token=`, answering
//! with an HttpOnly, SameSite=Strict cookie that carries it after. Only
//! GET and HEAD: the board never writes.
//!
//! `/events` streams server-sent events off the change feed: `change`
//! (data: the new cursor) after each change, a comment every
//! [`KEEPALIVE`] otherwise.

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use http_body_util::{BodyExt, Full, combinators::BoxBody};
use hyper::body::{Bytes, Frame};
use hyper::header::{self, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use tokio_util::sync::CancellationToken;

use super::{At, Board, CSS, JS, Page};
use crate::ops::{Changes, WaitForChanges};

/// How long the event stream stays quiet before it sends a comment (which
/// also tells it whether the browser is still there).
pub(crate) const KEEPALIVE: Duration = Duration::from_secs(15);
/// The cookie that carries the token after `?token=`.
const COOKIE: &str = "waymark_token";

pub(crate) type Body = BoxBody<Bytes, Infallible>;

/// Who may see the board.
#[derive(Clone, Debug, Default)]
pub struct Access {
    /// The server listens on a loopback address: `Host` must name one.
    pub loopback: bool,
    /// The bearer token, when the server has one.
    pub token: Option<String>,
    /// Browser origins allowed beside the loopback ones (on loopback), or
    /// at all (elsewhere).
    pub allowed_origins: Vec<String>,
}

/// Answer one request for the board.
pub async fn handle<B>(
    board: &Arc<Board>,
    access: &Access,
    request: Request<B>,
    stop: &CancellationToken,
) -> Response<Body> {
    let path = request.uri().path().to_owned();
    let known = Page::at(&path).is_some()
        || matches!(
            path.as_str(),
            "/assets/board.css" | "/assets/board.js" | "/favicon.ico" | "/events"
        );
    if !known {
        return text(
            StatusCode::NOT_FOUND,
            "not found; the board's pages are /, /tree, /health and /plan (MCP is at /mcp)",
        );
    }
    let head = request.method() == Method::HEAD;
    if request.method() != Method::GET && !head {
        let mut r = text(StatusCode::METHOD_NOT_ALLOWED, "the board is read-only: GET only");
        r.headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
        return r;
    }
    if let Err(refusal) = check(access, &request) {
        return *refusal;
    }
    let query = request.uri().query().unwrap_or("").to_owned();
    if let Some(token) = &access.token
        && let Some(given) = param(&query, "token")
    {
        // The token once in the address, then in a cookie: send the
        // browser back to the address without it.
        if !same_token(given.as_bytes(), token.as_bytes()) {
            return text(StatusCode::UNAUTHORIZED, "that is not this server's token");
        }
        let mut r = text(StatusCode::SEE_OTHER, "signed in");
        r.headers_mut().insert(header::LOCATION, header_value(&path));
        r.headers_mut().insert(
            header::SET_COOKIE,
            header_value(&format!("{COOKIE}={given}; HttpOnly; SameSite=Strict; Path=/")),
        );
        return r;
    }
    let mut response = match path.as_str() {
        "/assets/board.css" => asset(CSS, "text/css; charset=utf-8"),
        "/assets/board.js" => asset(JS, "text/javascript; charset=utf-8"),
        "/favicon.ico" => {
            let mut r = Response::new(Full::new(Bytes::new()).boxed());
            *r.status_mut() = StatusCode::NO_CONTENT;
            r
        }
        "/events" => {
            let last = request
                .headers()
                .get("last-event-id")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
                .or_else(|| param(&query, "cursor"));
            events(board.clone(), last, stop.child_token())
        }
        _ => match Page::at(&path) {
            Some(page) => {
                let main_only = param(&query, "part").as_deref() == Some("main");
                let at = match at(page, &query) {
                    Ok(at) => at,
                    Err(refusal) => return *refusal,
                };
                let b = board.clone();
                match tokio::task::spawn_blocking(move || b.render_at(page, &at, main_only)).await {
                    Ok(Ok(html)) => {
                        let mut r = Response::new(Full::new(Bytes::copy_from_slice(html.as_bytes())).boxed());
                        r.headers_mut().insert(
                            header::CONTENT_TYPE,
                            HeaderValue::from_static("text/html; charset=utf-8"),
                        );
                        r.headers_mut()
                            .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
                        r
                    }
                    Ok(Err(crate::error::Error::NotFound { .. })) => {
                        text(StatusCode::NOT_FOUND, "no live work item with that id on this board")
                    }
                    Ok(Err(e)) => {
                        tracing::error!("the board failed: {e}");
                        text(StatusCode::INTERNAL_SERVER_ERROR, &format!("the board failed: {e}"))
                    }
                    Err(e) => text(StatusCode::INTERNAL_SERVER_ERROR, &format!("the board failed: {e}")),
                }
            }
            None => text(StatusCode::NOT_FOUND, "not found"),
        },
    };
    secure(&mut response);
    if head {
        *response.body_mut() = Full::new(Bytes::new()).boxed();
    }
    response
}

/// Host, Origin and token: `Err` with the refusal.
fn check<B>(access: &Access, request: &Request<B>) -> Result<(), Box<Response<Body>>> {
    let headers = request.headers();
    if access.loopback {
        let host = headers.get(header::HOST).and_then(|h| h.to_str().ok()).unwrap_or("");
        if !is_loopback_host(host) {
            return Err(Box::new(text(
                StatusCode::FORBIDDEN,
                "this board answers only requests addressed to localhost, 127.0.0.1 or [::1]",
            )));
        }
    }
    if let Some(origin) = headers.get(header::ORIGIN) {
        let origin = origin.to_str().unwrap_or("");
        let allowed = (access.loopback && is_loopback_origin(origin))
            || access.allowed_origins.iter().any(|a| origin_matches(a, origin));
        if !allowed {
            return Err(Box::new(text(
                StatusCode::FORBIDDEN,
                "requests from that origin are not allowed",
            )));
        }
    }
    if let Some(token) = &access.token {
        let bearer = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.as_bytes().strip_prefix(b"Bearer "));
        let cookie = headers
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .filter_map(|c| c.trim().strip_prefix(COOKIE).and_then(|c| c.strip_prefix('=')))
            .map(str::as_bytes)
            .next();
        let query_token = request.uri().query().and_then(|q| param(q, "token")).is_some();
        let ok = [bearer, cookie]
            .into_iter()
            .flatten()
            .any(|given| same_token(given, token.as_bytes()));
        if !ok && !query_token {
            let mut r = text(
                StatusCode::UNAUTHORIZED,
                "this board needs the server's token: open it once as /?token=TOKEN (or send Authorization: Bearer TOKEN)",
            );
            r.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            return Err(Box::new(r));
        }
    }
    Ok(())
}

/// Whether `given` is `expected`, in time that depends only on the length
/// of `expected` (as `/mcp` compares its token).
fn same_token(given: &[u8], expected: &[u8]) -> bool {
    let mut diff = given.len() ^ expected.len();
    for (i, e) in expected.iter().enumerate() {
        diff |= usize::from(given.get(i).copied().unwrap_or(0) ^ e);
    }
    std::hint::black_box(diff) == 0
}

fn is_loopback_host(host: &str) -> bool {
    let name = if let Some(rest) = host.strip_prefix('[') {
        rest.split(']').next().unwrap_or("")
    } else {
        host.rsplit_once(':').map_or(host, |(h, port)| {
            if port.bytes().all(|b| b.is_ascii_digit()) {
                h
            } else {
                host
            }
        })
    };
    name.eq_ignore_ascii_case("localhost") || name.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

fn is_loopback_origin(origin: &str) -> bool {
    origin
        .strip_prefix("http://")
        .is_some_and(|rest| !rest.contains('/') && is_loopback_host(rest))
}

/// `allowed` as `serve --allow-origin` takes it (`https://host:port`, the
/// port may be `*`).
fn origin_matches(allowed: &str, origin: &str) -> bool {
    match allowed.strip_suffix(":*") {
        Some(prefix) => origin.strip_prefix(prefix).is_some_and(|rest| {
            rest.is_empty()
                || rest
                    .strip_prefix(':')
                    .is_some_and(|p| p.bytes().all(|b| b.is_ascii_digit()))
        }),
        None => allowed.eq_ignore_ascii_case(origin),
    }
}

/// The part of `page` its address asks for: the tree page takes `root`
/// (a work item's id) and `from` (a count); other pages take neither.
fn at(page: Page, query: &str) -> Result<At, Box<Response<Body>>> {
    if page != Page::Tree {
        return Ok(At::default());
    }
    let root = param(query, "root");
    if let Some(id) = &root
        && (id.is_empty() || id.len() > 64 || !id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'))
    {
        return Err(Box::new(text(
            StatusCode::NOT_FOUND,
            "no live work item with that id on this board",
        )));
    }
    let from = match param(query, "from") {
        None => 0,
        Some(n) => n.parse::<usize>().map_err(|_| {
            Box::new(text(
                StatusCode::BAD_REQUEST,
                "from must be a count of top-level items (0, 1, 2, ...)",
            ))
        })?,
    };
    Ok(At { root, from })
}

/// The value of `name` in a query string (no percent-decoding: cursors,
/// tokens and `part` are plain).
fn param(query: &str, name: &str) -> Option<String> {
    query
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_owned())
}

fn header_value(s: &str) -> HeaderValue {
    HeaderValue::from_str(s).unwrap_or_else(|_| HeaderValue::from_static("/"))
}

fn text(status: StatusCode, message: &str) -> Response<Body> {
    let mut r = Response::new(Full::new(Bytes::from(format!("{message}\n"))).boxed());
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    secure(&mut r);
    r
}

fn asset(body: &'static str, kind: &'static str) -> Response<Body> {
    let mut r = Response::new(Full::new(Bytes::from_static(body.as_bytes())).boxed());
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(kind));
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("max-age=300"));
    r
}

/// Headers every board answer carries: scripts, styles and connections
/// from this server only, no framing, no referrer, no sniffing.
fn secure(r: &mut Response<Body>) {
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
        ),
    );
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
}

/// A response body fed by a channel.
struct Stream(tokio::sync::mpsc::Receiver<Bytes>);

impl hyper::body::Body for Stream {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.0.poll_recv(cx).map(|chunk| chunk.map(|b| Ok(Frame::data(b))))
    }
}

/// The event stream: a task waits on the change feed and sends `change`
/// events until the browser goes or the server stops.
fn events(board: Arc<Board>, cursor: Option<String>, stop: CancellationToken) -> Response<Body> {
    let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(8);
    tokio::spawn(async move {
        let tracker = board.tracker().clone();
        // A cursor from elsewhere (another store, a stale page) starts at
        // the head; the page's next change still arrives.
        let mut cursor = match cursor.filter(|c| {
            tracker
                .changes_since(&WaitForChanges {
                    cursor: Some(c.clone()),
                    ..WaitForChanges::default()
                })
                .is_ok()
        }) {
            Some(c) => c,
            None => match tracker.changes_cursor() {
                Ok(c) => c,
                Err(_) => return,
            },
        };
        if tx.send(Bytes::from_static(b"retry: 1000\n\n")).await.is_err() {
            return;
        }
        loop {
            let input = WaitForChanges {
                cursor: Some(cursor.clone()),
                timeout_s: Some(KEEPALIVE.as_secs() as i64),
                ..WaitForChanges::default()
            };
            let answer = tokio::select! {
                _ = stop.cancelled() => return,
                _ = tx.closed() => return,
                answer = wait(&tracker, input) => answer,
            };
            let Some(changes) = answer else { return };
            let event = if changes.changes.is_empty() {
                Bytes::from_static(b": still here\n\n")
            } else {
                Bytes::from(format!("id: {c}\nevent: change\ndata: {c}\n\n", c = changes.cursor))
            };
            cursor = changes.cursor;
            if tx.send(event).await.is_err() {
                return;
            }
        }
    });
    let mut r = Response::new(BodyExt::boxed(Stream(rx)));
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

/// `wait_for_changes` on a blocking thread that gives up once this future
/// is dropped (the browser left, the server stops).
async fn wait(tracker: &crate::ops::Tracker, input: WaitForChanges) -> Option<Changes> {
    struct CancelOnDrop(Arc<AtomicBool>);
    impl Drop for CancelOnDrop {
        fn drop(&mut self) {
            self.0.store(true, Ordering::Relaxed);
        }
    }
    let cancelled = Arc::new(AtomicBool::new(false));
    let _guard = CancelOnDrop(cancelled.clone());
    let tracker = tracker.clone();
    match tokio::task::spawn_blocking(move || tracker.wait_for_changes_or(&input, &cancelled)).await {
        Ok(Ok(changes)) => Some(changes),
        Ok(Err(e)) => {
            tracing::warn!("the board's event stream stops: {e}");
            None
        }
        Err(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_and_origins() {
        for host in [
            "localhost",
            "localhost:8080",
            "127.0.0.1:1",
            "[::1]:3000",
            "LOCALHOST",
            "127.0.0.5",
        ] {
            assert!(is_loopback_host(host), "{host}");
        }
        for host in ["example.com", "evil.localhost.example:80", "10.0.0.1:80", "", "[::2]:1"] {
            assert!(!is_loopback_host(host), "{host}");
        }
        assert!(is_loopback_origin("http://localhost:4000"));
        assert!(is_loopback_origin("http://127.0.0.1:9"));
        assert!(!is_loopback_origin("https://evil.example"));
        assert!(!is_loopback_origin("http://localhost.evil.example"));
        assert!(origin_matches(
            "https://app.example.com:*",
            "https://app.example.com:8443"
        ));
        assert!(!origin_matches(
            "https://app.example.com:*",
            "https://app.example.com.evil:1"
        ));
        assert!(origin_matches("https://a.example", "https://a.example"));
    }
}
