//! The connections: a few idle ones kept for the next calls, each with its
//! background task, opened (TLS or not) and checked on first use.

use std::future::{Future, poll_fn};
use std::sync::{Mutex, MutexGuard};

use tokio::sync::mpsc::UnboundedSender;
use tokio::task::AbortHandle;
use tokio_postgres::{AsyncMessage, Client};

use super::tls::tls_refusal;
use super::{PostgresHub, Stmts};
use crate::protocol::HubError;

/// One connection, with its background task (aborted when dropped, so a
/// stalled connection never lingers) and its prepared statements.
pub(super) struct Conn {
    pub(super) client: Client,
    pub(super) task: tokio::task::AbortHandle,
    pub(super) stmts: Option<Stmts>,
    /// Taken from the idle list rather than just connected.
    pub(super) reused: bool,
}

impl Drop for Conn {
    fn drop(&mut self) {
        self.task.abort();
    }
}

pub(super) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl PostgresHub {
    /// Run `fut` under the call timeout; a timeout is [`HubError::Unreachable`].
    pub(super) async fn call<T>(&self, fut: impl Future<Output = Result<T, HubError>>) -> Result<T, HubError> {
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
    pub(super) async fn checkout(&self, check_schema: bool) -> Result<Conn, HubError> {
        loop {
            let Some(mut conn) = lock(&self.idle).pop() else { break };
            if !conn.client.is_closed() {
                conn.reused = true;
                return Ok(conn);
            }
        }
        let (client, task) = self.open(None).await?;
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

    /// A new connection and the task that drives it (abort it to close the
    /// connection). The task sends each notification's payload to
    /// `notifications`, when given, and drops it when the connection ends.
    pub(super) async fn open(
        &self,
        notifications: Option<UnboundedSender<String>>,
    ) -> Result<(Client, AbortHandle), HubError> {
        let (client, mut connection) =
            self.config
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
            while let Some(Ok(message)) = poll_fn(|cx| connection.poll_message(cx)).await {
                if let (AsyncMessage::Notification(n), Some(to)) = (message, &notifications)
                    && to.send(n.payload().to_owned()).is_err()
                {
                    break;
                }
            }
        })
        .abort_handle();
        Ok((client, task))
    }

    pub(super) fn checkin(&self, conn: Conn) {
        if conn.client.is_closed() {
            return;
        }
        let mut idle = lock(&self.idle);
        if idle.len() < self.opts.max_idle {
            idle.push(conn);
        }
    }
}
