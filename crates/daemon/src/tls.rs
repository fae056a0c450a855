//! SIP over TLS (RFC 3261 §26.2.1): the server side of the handshake for
//! the `sip_tls` listener. It owns loading the certificate chain and key
//! (PEM) and the protocol policy: TLS 1.3 and 1.2 with rustls' cipher
//! suites (AEAD with forward secrecy only; no RC4, CBC, RSA key exchange
//! or renegotiation), the ring provider. It must not read SIP: an
//! accepted connection is served like a TCP one (server.rs).

use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::TlsAcceptor;

/// The acceptor for `cert` (the chain, leaf first) and `key`.
pub fn acceptor(cert: &Path, key: &Path) -> anyhow::Result<TlsAcceptor> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .and_then(|certs| certs.collect::<Result<_, _>>())
        .map_err(|e| anyhow::anyhow!("{e}"))
        .with_context(|| format!("server.tls_cert: reading {}", cert.display()))?;
    if chain.is_empty() {
        anyhow::bail!(
            "server.tls_cert: {} holds no PEM certificate",
            cert.display()
        );
    }
    let key = PrivateKeyDer::from_pem_file(key)
        .map_err(|e| anyhow::anyhow!("{e}"))
        .with_context(|| {
            format!(
                "server.tls_key: reading {} (a PEM private key)",
                key.display()
            )
        })?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .context("the TLS protocol versions")?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .context("server.tls_key: the key does not match server.tls_cert's certificate")?;
    Ok(TlsAcceptor::from(Arc::new(config)))
}
