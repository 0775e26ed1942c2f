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
//! network address answers anyone who reaches it, with no authentication.
//! On loopback, requests must name a loopback host (`Host`) and, from a
//! browser, a loopback origin (`Origin`), against DNS rebinding.

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
pub const MCP_PATH: &str = "/mcp";

/// How long open connections get to finish after Ctrl-C or SIGTERM.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Whether `serve --http` may bind `addr`: loopback always, anything else
/// only with `allow_remote`. The error says why and what to do.
pub fn check_bind(addr: SocketAddr, allow_remote: bool) -> Result<(), String> {
    if addr.ip().is_loopback() || allow_remote {
        Ok(())
    } else {
        Err(format!(
            "refusing to serve MCP on {addr}: it is not a loopback address, and the server has no \
             authentication, so anyone who can reach it could read and change this tracker; bind \
             127.0.0.1 or [::1], or pass --allow-remote if that is what you want"
        ))
    }
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
    allow_remote: bool,
) -> std::io::Result<()> {
    check_bind(addr, allow_remote).map_err(|e| std::io::Error::new(std::io::ErrorKind::PermissionDenied, e))?;
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let bound = listener.local_addr()?;
        let background = Background::start(&tracker, options, &context);
        let server = WaymarkServer::new(tracker.clone(), options).with_context(context);
        let stop = CancellationToken::new();
        let mut config = StreamableHttpServerConfig::default().with_cancellation_token(stop.child_token());
        if bound.ip().is_loopback() {
            config = config.with_allowed_origins(["http://localhost:*", "http://127.0.0.1:*", "http://[::1]:*"]);
        } else {
            // Clients name this machine as they know it; nothing to check Host against.
            config = config.disable_allowed_hosts();
            tracing::warn!(%bound, "serving MCP on a non-loopback address, without authentication");
        }
        let mcp = StreamableHttpService::new(
            move || Ok(server.clone()),
            Arc::new(LocalSessionManager::default()),
            config,
        );
        eprintln!("waymark: serving MCP on http://{bound}{MCP_PATH}");
        tracing::info!(toolset = %options.toolset, read_only = options.read_only, %bound, "serving MCP over HTTP");
        let result = accept_until_stopped(listener, mcp, stop).await;
        background.stop(&tracker);
        tracing::debug!("MCP server stopped");
        result
    })
}

type Mcp = StreamableHttpService<WaymarkServer, LocalSessionManager>;

async fn accept_until_stopped(
    listener: tokio::net::TcpListener,
    mcp: Mcp,
    stop: CancellationToken,
) -> std::io::Result<()> {
    let mut connections = tokio::task::JoinSet::new();
    let signal = shutdown_signal();
    tokio::pin!(signal);
    loop {
        tokio::select! {
            why = &mut signal => {
                tracing::info!("{why}: stopping the MCP server");
                break;
            }
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let mcp = mcp.clone();
                    let stop = stop.clone();
                    connections.spawn(serve_connection(stream, peer, mcp, stop));
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

async fn serve_connection(stream: tokio::net::TcpStream, peer: SocketAddr, mcp: Mcp, stop: CancellationToken) {
    let service = hyper::service::service_fn(move |request: Request<Incoming>| {
        let mcp = mcp.clone();
        async move { Ok::<_, Infallible>(route(mcp, request).await) }
    });
    let connection = hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), service);
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

async fn route(mcp: Mcp, request: Request<Incoming>) -> Response<BoxBody<Bytes, Infallible>> {
    if request.uri().path() == MCP_PATH {
        return mcp.handle(request).await;
    }
    let mut response =
        Response::new(Full::new(Bytes::from(format!("not found; the MCP endpoint is {MCP_PATH}\n"))).boxed());
    *response.status_mut() = StatusCode::NOT_FOUND;
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
