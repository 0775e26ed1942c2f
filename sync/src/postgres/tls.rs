//! TLS to the hub over rustls (ring provider): the system's CA
//! certificates or the URL's `sslrootcert`, and the certificate refusal
//! told apart from a network failure.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_postgres::Socket;
use tokio_postgres::tls::{ChannelBinding, MakeTlsConnect, TlsConnect, TlsStream};
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName};
use tokio_rustls::rustls::{ClientConfig, RootCertStore};

use super::{HubUrl, TlsMode};
use crate::protocol::HubError;

pub(super) fn tls_config(url: &HubUrl) -> Result<Option<Arc<ClientConfig>>, HubError> {
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
pub(super) struct MakeRustls(pub(super) Option<Arc<ClientConfig>>);

pub(super) struct RustlsConnect {
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

/// Why the TLS handshake refused the server's certificate, when that is
/// why connecting failed.
pub(super) fn tls_refusal(e: &tokio_postgres::Error) -> Option<String> {
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
