//! TLS for the listeners: turns a door's [`TlsSettings`] (PEM certificate chain, private key,
//! optional client CA) into the acceptor its TLS listeners share, and names the file and the
//! problem when that cannot be done, so that the server refuses to start with a clear message.
//!
//! The crypto provider is always rustls' `ring` one, passed explicitly: the process may hold
//! more than one provider (the official iggy SDK brings aws-lc-rs), and then rustls' process
//! default is ambiguous.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::TlsAcceptor;

use crate::config::TlsSettings;

/// Why a door's TLS settings cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("TLS {what} file {}: cannot read it: {source}", path.display())]
    Read {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("TLS {what} file {}: not valid PEM: {message}", path.display())]
    Pem {
        what: &'static str,
        path: PathBuf,
        message: String,
    },
    #[error("TLS {what} file {}: no certificate in it", path.display())]
    NoCertificate { what: &'static str, path: PathBuf },
    #[error("TLS key file {}: no private key in it (PKCS#8, PKCS#1 or SEC1 PEM)", path.display())]
    NoKey { path: PathBuf },
    #[error(
        "TLS key file {} does not go with certificate file {}: {message}",
        key.display(),
        cert.display()
    )]
    KeyMismatch {
        key: PathBuf,
        cert: PathBuf,
        message: String,
    },
    #[error("TLS client CA file {}: {message}", path.display())]
    ClientCa { path: PathBuf, message: String },
    #[error("TLS: {0}")]
    Rustls(String),
}

/// The one crypto provider the server's TLS uses.
fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Maps a PEM reading error for the `what` file at `path`: unreadable, bad PEM, or (`missing`)
/// no item of the kind looked for.
fn pem_error(
    what: &'static str,
    path: &Path,
    e: rustls_pki_types::pem::Error,
    missing: impl FnOnce(PathBuf) -> TlsError,
) -> TlsError {
    let path = path.to_path_buf();
    match e {
        rustls_pki_types::pem::Error::Io(source) => TlsError::Read { what, path, source },
        rustls_pki_types::pem::Error::NoItemsFound => missing(path),
        other => TlsError::Pem {
            what,
            path,
            message: other.to_string(),
        },
    }
}

/// Every certificate in the PEM `what` file at `path`, at least one.
fn certificates(what: &'static str, path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let missing = |path| TlsError::NoCertificate { what, path };
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| pem_error(what, path, e, missing))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| pem_error(what, path, e, missing))?;
    if certs.is_empty() {
        return Err(missing(path.to_path_buf()));
    }
    Ok(certs)
}

/// The server configuration for `settings`: its certificate chain and key, and, with a client
/// CA file, client certificates required and checked against it (mutual TLS).
pub fn server_config(settings: &TlsSettings) -> Result<ServerConfig, TlsError> {
    let chain = certificates("certificate", &settings.cert_file)?;
    let key = PrivateKeyDer::from_pem_file(&settings.key_file).map_err(|e| {
        pem_error("key", &settings.key_file, e, |path| TlsError::NoKey {
            path,
        })
    })?;
    let builder = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Rustls(e.to_string()))?;
    let builder = match &settings.client_ca_file {
        None => builder.with_no_client_auth(),
        Some(ca_file) => {
            let mut roots = RootCertStore::empty();
            for ca in certificates("client CA", ca_file)? {
                roots.add(ca).map_err(|e| TlsError::ClientCa {
                    path: ca_file.clone(),
                    message: e.to_string(),
                })?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider())
                .build()
                .map_err(|e| TlsError::ClientCa {
                    path: ca_file.clone(),
                    message: e.to_string(),
                })?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    // rustls checks here that the key is usable and is the end-entity certificate's.
    builder
        .with_single_cert(chain, key)
        .map_err(|e| TlsError::KeyMismatch {
            key: settings.key_file.clone(),
            cert: settings.cert_file.clone(),
            message: e.to_string(),
        })
}

/// The acceptor for a door's TLS listeners.
pub fn acceptor(settings: &TlsSettings) -> Result<TlsAcceptor, TlsError> {
    Ok(TlsAcceptor::from(Arc::new(server_config(settings)?)))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A CA-less self-signed certificate for `localhost` and its key, as PEM.
    fn self_signed() -> (String, String) {
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["localhost".to_string()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        (cert.pem(), key.serialize_pem())
    }

    fn settings(dir: &Path, cert: &str, key: &str) -> TlsSettings {
        let (cert_file, key_file) = (dir.join("cert.pem"), dir.join("key.pem"));
        std::fs::write(&cert_file, cert).unwrap();
        std::fs::write(&key_file, key).unwrap();
        TlsSettings {
            cert_file,
            key_file,
            client_ca_file: None,
        }
    }

    #[test]
    fn a_matching_certificate_and_key_make_a_config() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = self_signed();
        let mut s = settings(dir.path(), &cert, &key);
        server_config(&s).expect("a usable pair");
        // The certificate as its own client CA: mutual TLS configures too.
        s.client_ca_file = Some(s.cert_file.clone());
        server_config(&s).expect("with a client CA");
    }

    #[test]
    fn each_bad_file_is_named_with_its_problem() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = self_signed();
        let (_, other_key) = self_signed();

        let mut s = settings(dir.path(), &cert, &key);
        s.cert_file = dir.path().join("absent.pem");
        let e = server_config(&s).unwrap_err();
        assert!(matches!(e, TlsError::Read { .. }), "{e}");
        assert!(e.to_string().contains("certificate file"), "{e}");
        assert!(e.to_string().contains("absent.pem"), "{e}");

        // The key where the certificate should be: no certificate in it.
        let s = settings(dir.path(), &key, &key);
        let e = server_config(&s).unwrap_err();
        assert!(matches!(e, TlsError::NoCertificate { .. }), "{e}");
        assert!(e.to_string().contains("cert.pem"), "{e}");

        let s = settings(dir.path(), &cert, &cert);
        let e = server_config(&s).unwrap_err();
        assert!(matches!(e, TlsError::NoKey { .. }), "{e}");
        assert!(e.to_string().contains("key.pem"), "{e}");

        let s = settings(dir.path(), &cert, &other_key);
        let e = server_config(&s).unwrap_err();
        assert!(matches!(e, TlsError::KeyMismatch { .. }), "{e}");
        assert!(e.to_string().contains("key.pem"), "{e}");

        let mut s = settings(dir.path(), &cert, &key);
        let ca = dir.path().join("ca.pem");
        std::fs::write(&ca, "not a certificate").unwrap();
        s.client_ca_file = Some(ca);
        let e = server_config(&s).unwrap_err();
        assert!(e.to_string().contains("ca.pem"), "{e}");
    }
}
