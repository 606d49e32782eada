//! TLS for the client's connections: the settings ([`TlsConfig`]), the rustls connector made
//! from them once per client (so reconnects and extra connections reuse it), the handshake, and
//! the byte stream a connection reads and writes, plain or encrypted.

use std::io;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{AlertDescription, CertificateError};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

/// How a connection speaks TLS.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsConfig {
    /// PEM file with the CA certificate(s) to trust; `None`: the operating system's trust store.
    pub ca_file: Option<PathBuf>,
    /// The name the server's certificate must be valid for (the Iggy SDK's `tls_domain`).
    /// `None`: the host of the server address, or `localhost` when that is an IP address (the
    /// Iggy SDK's default domain).
    pub domain: Option<String>,
    /// A certificate to present, for servers that require one (mutual TLS).
    pub client_certificate: Option<ClientCertificate>,
}

/// A client certificate and its private key, both PEM files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientCertificate {
    /// The certificate chain, leaf first.
    pub cert_file: PathBuf,
    /// The private key (PKCS#8, PKCS#1 or SEC1).
    pub key_file: PathBuf,
}

impl TlsConfig {
    /// TLS trusting the CAs in `ca_file` (PEM).
    pub fn with_ca_file(ca_file: impl Into<PathBuf>) -> TlsConfig {
        TlsConfig {
            ca_file: Some(ca_file.into()),
            ..TlsConfig::default()
        }
    }

    /// Sets the name the server's certificate must be valid for.
    pub fn domain(mut self, domain: impl Into<String>) -> TlsConfig {
        self.domain = Some(domain.into());
        self
    }

    /// Presents this certificate (and proves its key) to the server.
    pub fn client_certificate(
        mut self,
        cert_file: impl Into<PathBuf>,
        key_file: impl Into<PathBuf>,
    ) -> TlsConfig {
        self.client_certificate = Some(ClientCertificate {
            cert_file: cert_file.into(),
            key_file: key_file.into(),
        });
        self
    }
}

/// Why TLS could not be set up or the handshake failed. None of these pass with a retry.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TlsError {
    /// The CA file could not be read or holds no usable certificate.
    #[error("CA file {path}: {reason}")]
    CaFile {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// No CA file was given and the system trust store yields no certificate.
    #[error("no CA file given and the system trust store is unusable: {0}")]
    SystemTrustStore(String),
    /// The client certificate or key file could not be read or does not fit together.
    #[error("client certificate {path}: {reason}")]
    ClientCertificate {
        /// The certificate or key file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The name to verify is not a valid DNS name or IP address.
    #[error("invalid TLS domain {0:?}")]
    InvalidDomain(String),
    /// The server's certificate is not signed by a trusted CA (or is expired, revoked, ...).
    #[error("server certificate not trusted: {0}")]
    UntrustedCertificate(String),
    /// The server's certificate is valid, but not for the name we verify.
    #[error("server certificate is not valid for {domain:?}: {reason}")]
    NameMismatch {
        /// The name the certificate had to carry.
        domain: String,
        /// The certificate's names, as rustls reports them.
        reason: String,
    },
    /// The server refused our certificate, or wanted one and we had none.
    #[error("the server refused the client certificate ({0})")]
    ClientCertificateRefused(String),
    /// Any other handshake failure (the server does not speak TLS, a protocol error, ...).
    #[error("TLS handshake with {server} failed: {reason}")]
    Handshake {
        /// The server address.
        server: String,
        /// What went wrong.
        reason: String,
    },
}

/// The connector and the name to verify, made once from a [`TlsConfig`].
#[derive(Clone)]
pub(crate) struct Tls {
    connector: TlsConnector,
    domain: ServerName<'static>,
}

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tls")
            .field("domain", &self.domain)
            .finish_non_exhaustive()
    }
}

impl Tls {
    /// Reads the files and builds the rustls configuration (ring provider, safe defaults).
    pub(crate) fn new(config: &TlsConfig, server: &str) -> Result<Tls, TlsError> {
        let roots = match &config.ca_file {
            Some(path) => ca_file_roots(path)?,
            None => system_roots()?,
        };
        let builder = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Handshake {
            server: server.into(),
            reason: e.to_string(),
        })?
        .with_root_certificates(roots);
        let client = match &config.client_certificate {
            None => builder.with_no_client_auth(),
            Some(ClientCertificate {
                cert_file,
                key_file,
            }) => {
                let chain =
                    read_certificates(cert_file).map_err(|reason| TlsError::ClientCertificate {
                        path: cert_file.clone(),
                        reason,
                    })?;
                let key = PrivateKeyDer::from_pem_file(key_file).map_err(|e| {
                    TlsError::ClientCertificate {
                        path: key_file.clone(),
                        reason: format!("no usable private key: {e}"),
                    }
                })?;
                builder.with_client_auth_cert(chain, key).map_err(|e| {
                    TlsError::ClientCertificate {
                        path: key_file.clone(),
                        reason: format!("key does not fit the certificate: {e}"),
                    }
                })?
            }
        };
        let name = match &config.domain {
            Some(d) => d.clone(),
            None => default_domain(server),
        };
        let domain =
            ServerName::try_from(name.clone()).map_err(|_| TlsError::InvalidDomain(name))?;
        Ok(Tls {
            connector: TlsConnector::from(Arc::new(client)),
            domain,
        })
    }

    /// The TLS handshake over a connected socket.
    pub(crate) async fn handshake(
        &self,
        tcp: TcpStream,
        server: &str,
    ) -> Result<TlsStream<TcpStream>, TlsError> {
        self.connector
            .connect(self.domain.clone(), tcp)
            .await
            .map_err(|e| self.classify(&e, server))
    }

    /// Names a failed handshake by what the user has to fix.
    fn classify(&self, e: &io::Error, server: &str) -> TlsError {
        if let Some(refused) = client_certificate_refused(e) {
            return refused;
        }
        let other = |reason: String| TlsError::Handshake {
            server: server.into(),
            reason,
        };
        match rustls_error(e) {
            Some(
                tls @ rustls::Error::InvalidCertificate(
                    CertificateError::NotValidForName
                    | CertificateError::NotValidForNameContext { .. },
                ),
            ) => TlsError::NameMismatch {
                domain: self.domain.to_str().into_owned(),
                reason: tls.to_string(),
            },
            Some(tls @ rustls::Error::InvalidCertificate(_)) => {
                TlsError::UntrustedCertificate(tls.to_string())
            }
            Some(tls) => other(tls.to_string()),
            None => other(e.to_string()),
        }
    }
}

fn rustls_error(e: &io::Error) -> Option<&rustls::Error> {
    e.get_ref()?.downcast_ref::<rustls::Error>()
}

/// The server's refusal of our certificate (or of its absence), if `e` is one. With TLS 1.3 the
/// server checks the client's certificate after the client considers the handshake done, so
/// the refusal usually arrives on the first read rather than in the handshake.
pub(crate) fn client_certificate_refused(e: &io::Error) -> Option<TlsError> {
    match rustls_error(e)? {
        tls @ rustls::Error::AlertReceived(
            AlertDescription::CertificateRequired
            | AlertDescription::BadCertificate
            | AlertDescription::UnknownCA
            | AlertDescription::CertificateUnknown
            | AlertDescription::UnsupportedCertificate
            | AlertDescription::CertificateExpired
            | AlertDescription::CertificateRevoked
            | AlertDescription::AccessDenied,
        ) => Some(TlsError::ClientCertificateRefused(tls.to_string())),
        _ => None,
    }
}

/// The host of `host:port`, or `localhost` for an IP address (as the Iggy SDK's default).
fn default_domain(server: &str) -> String {
    if server.parse::<std::net::SocketAddr>().is_ok() {
        return "localhost".into();
    }
    let host = server.rsplit_once(':').map_or(server, |(host, _)| host);
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    if bare.is_empty() || bare.parse::<IpAddr>().is_ok() {
        "localhost".into()
    } else {
        bare.into()
    }
}

/// Every certificate of a PEM file; an error names what is wrong.
fn read_certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| format!("cannot read: {e}"))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("not valid PEM: {e}"))?;
    if certs.is_empty() {
        return Err("holds no PEM certificate".into());
    }
    Ok(certs)
}

fn ca_file_roots(path: &Path) -> Result<rustls::RootCertStore, TlsError> {
    let fail = |reason: String| TlsError::CaFile {
        path: path.to_path_buf(),
        reason,
    };
    let mut roots = rustls::RootCertStore::empty();
    for cert in read_certificates(path).map_err(fail)? {
        roots
            .add(cert)
            .map_err(|e| fail(format!("unusable certificate: {e}")))?;
    }
    Ok(roots)
}

fn system_roots() -> Result<rustls::RootCertStore, TlsError> {
    let found = rustls_native_certs::load_native_certs();
    let mut roots = rustls::RootCertStore::empty();
    // A store with a few broken entries is still usable; one with none is not.
    let (_added, _ignored) = roots.add_parsable_certificates(found.certs);
    if roots.is_empty() {
        let why = found
            .errors
            .first()
            .map_or_else(|| "no certificates found".to_string(), ToString::to_string);
        return Err(TlsError::SystemTrustStore(why));
    }
    Ok(roots)
}

/// A connection's byte stream. An enum rather than a boxed trait object so the plain path
/// stays a direct call.
#[derive(Debug)]
pub(crate) enum Transport {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

impl Transport {
    /// Read and write halves that can be used from different tasks.
    pub(crate) fn into_split(self) -> (ReadHalf, WriteHalf) {
        match self {
            Transport::Plain(tcp) => {
                let (r, w) = tcp.into_split();
                (ReadHalf::Plain(r), WriteHalf::Plain(w))
            }
            Transport::Tls(tls) => {
                let (r, w) = tokio::io::split(*tls);
                (ReadHalf::Tls(r), WriteHalf::Tls(w))
            }
        }
    }
}

/// The reading half of a [`Transport`].
#[derive(Debug)]
pub(crate) enum ReadHalf {
    Plain(tokio::net::tcp::OwnedReadHalf),
    Tls(tokio::io::ReadHalf<TlsStream<TcpStream>>),
}

/// The writing half of a [`Transport`].
#[derive(Debug)]
pub(crate) enum WriteHalf {
    Plain(tokio::net::tcp::OwnedWriteHalf),
    Tls(tokio::io::WriteHalf<TlsStream<TcpStream>>),
}

macro_rules! delegate_read {
    ($t:ty, $($variant:ident),+) => {
        impl AsyncRead for $t {
            fn poll_read(
                self: Pin<&mut Self>,
                cx: &mut Context<'_>,
                buf: &mut ReadBuf<'_>,
            ) -> Poll<io::Result<()>> {
                match self.get_mut() {
                    $(Self::$variant(s) => Pin::new(s).poll_read(cx, buf),)+
                }
            }
        }
    };
}

macro_rules! delegate_write {
    ($t:ty, $($variant:ident),+) => {
        impl AsyncWrite for $t {
            fn poll_write(
                self: Pin<&mut Self>,
                cx: &mut Context<'_>,
                buf: &[u8],
            ) -> Poll<io::Result<usize>> {
                match self.get_mut() {
                    $(Self::$variant(s) => Pin::new(s).poll_write(cx, buf),)+
                }
            }

            fn poll_write_vectored(
                self: Pin<&mut Self>,
                cx: &mut Context<'_>,
                bufs: &[io::IoSlice<'_>],
            ) -> Poll<io::Result<usize>> {
                match self.get_mut() {
                    $(Self::$variant(s) => Pin::new(s).poll_write_vectored(cx, bufs),)+
                }
            }

            fn is_write_vectored(&self) -> bool {
                match self {
                    $(Self::$variant(s) => s.is_write_vectored(),)+
                }
            }

            fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
                match self.get_mut() {
                    $(Self::$variant(s) => Pin::new(s).poll_flush(cx),)+
                }
            }

            fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
                match self.get_mut() {
                    $(Self::$variant(s) => Pin::new(s).poll_shutdown(cx),)+
                }
            }
        }
    };
}

delegate_read!(Transport, Plain, Tls);
delegate_write!(Transport, Plain, Tls);
delegate_read!(ReadHalf, Plain, Tls);
delegate_write!(WriteHalf, Plain, Tls);

#[cfg(test)]
#[allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test
mod tests {
    use super::*;

    #[test]
    fn the_default_domain_is_the_address_host_or_localhost_for_an_ip() {
        assert_eq!(default_domain("127.0.0.1:8090"), "localhost");
        assert_eq!(default_domain("[::1]:8090"), "localhost");
        assert_eq!(
            default_domain("wharf.example.com:8090"),
            "wharf.example.com"
        );
        assert_eq!(default_domain("wharf"), "wharf");
    }

    #[test]
    fn an_unreadable_ca_file_is_named_in_the_error() {
        let missing = Path::new("/nonexistent/wharf-ca.pem");
        let err = Tls::new(&TlsConfig::with_ca_file(missing), "127.0.0.1:1").unwrap_err();
        assert!(
            matches!(&err, TlsError::CaFile { path, .. } if path == missing),
            "{err}"
        );
    }

    #[test]
    fn a_ca_file_without_certificates_is_refused() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
        let path = dir.path().join("empty.pem");
        std::fs::write(&path, "not a certificate\n").unwrap_or_else(|e| panic!("write: {e}"));
        let err = Tls::new(&TlsConfig::with_ca_file(&path), "127.0.0.1:1").unwrap_err();
        assert!(
            matches!(&err, TlsError::CaFile { reason, .. } if reason.contains("no PEM certificate")),
            "{err}"
        );
    }
}
