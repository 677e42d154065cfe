//! The connector: plain HTTP, or HTTPS with rustls (ring) trusting Mozilla's roots plus, for
//! proxies with certificates from a private CA, the certificates of an extra CA file.

use std::path::Path;
use std::sync::Arc;

use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::connect::HttpConnector;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use rustls::{ClientConfig, RootCertStore};

use crate::Error;

pub(crate) fn connector(ca_cert: Option<&Path>) -> Result<HttpsConnector<HttpConnector>, Error> {
    let mut roots = RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    if let Some(path) = ca_cert {
        for certificate in read_certificates(path)? {
            roots.add(certificate).map_err(|error| Error::CaCert {
                path: path.to_owned(),
                reason: error.to_string(),
            })?;
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|error| Error::InvalidRequest(format!("tls setup: {error}")))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(HttpsConnectorBuilder::new()
        .with_tls_config(config)
        .https_or_http()
        .enable_http1()
        .enable_http2()
        .build())
}

/// Every certificate of a PEM file; a file with none is an error.
fn read_certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, Error> {
    let invalid = |reason: String| Error::CaCert {
        path: path.to_owned(),
        reason,
    };
    let certificates = CertificateDer::pem_file_iter(path)
        .map_err(|error| invalid(error.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|error| invalid(error.to_string()))?;
    if certificates.is_empty() {
        return Err(invalid("no PEM certificate in it".into()));
    }
    Ok(certificates)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_or_empty_ca_file_is_refused() {
        let missing = connector(Some(Path::new("/nonexistent/ca.pem"))).err();
        assert!(matches!(missing, Some(Error::CaCert { .. })), "{missing:?}");
        let empty = std::env::temp_dir().join(format!("kiln-client-empty-{}.pem", std::process::id()));
        std::fs::write(&empty, "not a certificate\n").unwrap();
        let refused = connector(Some(&empty)).err();
        std::fs::remove_file(&empty).unwrap();
        assert!(
            matches!(&refused, Some(Error::CaCert { reason, .. }) if reason.contains("no PEM")),
            "{refused:?}"
        );
        assert!(connector(None).is_ok());
    }
}
