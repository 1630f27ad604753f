//! Opening connections: TLS per `sslmode` through rustls, the connection task spawned on the
//! current runtime, and errors sorted into "cannot reach", "wrong credentials" and the rest.

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use tokio_postgres::error::SqlState;
use tokio_postgres::{Client, NoTls};
use tokio_postgres_rustls::MakeRustlsConnect;

use super::config::{PgUrl, TlsMode};
use crate::error::{ConnectorError, describe};

/// Connects to the server `url` names.
pub async fn connect(url: &PgUrl) -> Result<Client, ConnectorError> {
    let result = match url.tls() {
        TlsMode::Disable => url.config().connect(NoTls).await.map(|(client, conn)| {
            drive(conn);
            client
        }),
        mode => {
            let tls = make_tls(url, mode)?;
            url.config().connect(tls).await.map(|(client, conn)| {
                drive(conn);
                client
            })
        }
    };
    result.map_err(|e| connect_error(url, e))
}

/// Runs a connection's I/O on the current runtime until it closes.
fn drive<F>(conn: F)
where
    F: std::future::Future<Output = Result<(), tokio_postgres::Error>> + Send + 'static,
{
    tokio::spawn(async move {
        if let Err(e) = conn.await {
            tracing::debug!(error = %describe(&e), "postgres connection closed");
        }
    });
}

fn connect_error(url: &PgUrl, err: tokio_postgres::Error) -> ConnectorError {
    let reason = describe(&err);
    match err.code() {
        Some(c)
            if *c == SqlState::INVALID_PASSWORD
                || *c == SqlState::INVALID_AUTHORIZATION_SPECIFICATION =>
        {
            ConnectorError::Auth {
                url: url.redacted().to_string(),
                user: url.user().to_string(),
                reason,
            }
        }
        Some(_) => ConnectorError::from_pg(format!("connecting to {}", url.redacted()), err),
        None if reason.contains("password missing") => ConnectorError::Auth {
            url: url.redacted().to_string(),
            user: url.user().to_string(),
            reason:
                "the server asks for a password and none was given (URL, PGPASSWORD or ~/.pgpass)"
                    .into(),
        },
        None if reason.to_ascii_lowercase().contains("tls") => ConnectorError::Tls {
            url: url.redacted().to_string(),
            reason,
        },
        None => ConnectorError::Unreachable {
            url: url.redacted().to_string(),
            reason,
        },
    }
}

fn make_tls(url: &PgUrl, mode: TlsMode) -> Result<MakeRustlsConnect, ConnectorError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| ConnectorError::Tls {
            url: url.redacted().to_string(),
            reason: e.to_string(),
        })?;
    let tls_err = |reason: String| ConnectorError::Tls {
        url: url.redacted().to_string(),
        reason,
    };
    let config = if matches!(mode, TlsMode::VerifyCa | TlsMode::VerifyFull) {
        let roots = match url.root_cert() {
            Some(path) => {
                use rustls::pki_types::pem::PemObject;
                let mut roots = rustls::RootCertStore::empty();
                let certs = CertificateDer::pem_file_iter(path)
                    .map_err(|e| tls_err(format!("sslrootcert {}: {e}", path.display())))?;
                for cert in certs {
                    let cert =
                        cert.map_err(|e| tls_err(format!("sslrootcert {}: {e}", path.display())))?;
                    roots
                        .add(cert)
                        .map_err(|e| tls_err(format!("sslrootcert {}: {e}", path.display())))?;
                }
                if roots.is_empty() {
                    return Err(tls_err(format!(
                        "sslrootcert {} holds no certificate",
                        path.display()
                    )));
                }
                roots
            }
            None => rustls::RootCertStore {
                roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
            },
        };
        if mode == TlsMode::VerifyCa {
            let inner = rustls::client::WebPkiServerVerifier::builder_with_provider(
                Arc::new(roots),
                provider.clone(),
            )
            .build()
            .map_err(|e| tls_err(e.to_string()))?;
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(ChainOnly(inner)))
                .with_no_client_auth()
        } else {
            builder.with_root_certificates(roots).with_no_client_auth()
        }
    } else {
        // libpq's `prefer` and `require` encrypt without checking the certificate.
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(NoVerify(provider)))
            .with_no_client_auth()
    };
    Ok(MakeRustlsConnect::new(config))
}

/// libpq's `verify-ca`: the chain must lead to a trusted root, the name in the certificate may
/// be any.
#[derive(Debug)]
struct ChainOnly(Arc<rustls::client::WebPkiServerVerifier>);

impl ServerCertVerifier for ChainOnly {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
        {
            Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::NotValidForName
                | rustls::CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

/// Accepts any server certificate while still checking handshake signatures: libpq's
/// `sslmode=require` semantics.
#[derive(Debug)]
struct NoVerify(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for NoVerify {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
