//! TLS to the hub: tokio-postgres-rustls (which also gives channel
//! binding) over rustls with the ring provider, trusting the system's CA
//! certificates or the URL's `sslrootcert`; and the certificate refusal
//! told apart from a network failure.

use std::io;
use std::sync::Arc;

use tokio_postgres_rustls::MakeRustlsConnect;
use tokio_rustls::rustls::pki_types::CertificateDer;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::{ClientConfig, RootCertStore};

use super::{HubUrl, TlsMode};
use crate::protocol::HubError;

/// The TLS hook for connections to `url`'s hub. With TLS disabled it
/// trusts nothing (tokio-postgres never asks it for a handshake then), so
/// no CA certificates are read.
pub(super) fn tls(url: &HubUrl) -> Result<MakeRustlsConnect, HubError> {
    let mut roots = RootCertStore::empty();
    match url.sslrootcert.as_deref() {
        _ if url.tls_mode() == TlsMode::Disable => {}
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
    Ok(MakeRustlsConnect::new(config))
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
