//! The SDK's HTTP client: rustls (on ring, no OpenSSL, so the binary links statically) for
//! `https://`, plain hyper for `http://`, each with its own pool of kept-alive connections.
//!
//! The TLS side is only built when the first `https://` request is made. Building it reads the
//! system's trust store (every file in /etc/ssl/certs: several milliseconds), which a run that
//! only talks to an `http://` endpoint (moto, LocalStack, EC2 metadata) need not pay. Against
//! real AWS it is built once, before the first request, exactly as the SDK's default would.
//!
//! The system's trust store is used so that a company CA (a TLS-inspecting proxy) is trusted
//! as it is by everything else on the machine; SSL_CERT_FILE and SSL_CERT_DIR select another
//! one. Where there is none at all (a FROM-scratch container such as the Bitbucket pipe's),
//! the Mozilla roots compiled into the binary are used instead: the SDK would otherwise trust
//! nothing, and fail every request with an unhelpful "UnknownIssuer".

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use aws_smithy_http_client::tls::{Provider, TlsContext, TrustStore, rustls_provider::CryptoMode};
use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpClient,
    SharedHttpConnector,
};
use aws_smithy_runtime_api::client::interceptors::context::InterceptorContext;
use aws_smithy_runtime_api::client::orchestrator::HttpRequest;
use aws_smithy_runtime_api::client::retries::classifiers::{ClassifyRetry, RetryAction};
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use base64::Engine;

/// An HTTP client choosing plain HTTP or TLS per request, TLS built on first use.
#[derive(Debug, Clone)]
pub struct Client {
    http: SharedHttpClient,
    https: Arc<OnceLock<SharedHttpClient>>,
}

impl Client {
    pub fn shared() -> SharedHttpClient {
        SharedHttpClient::new(Client {
            http: aws_smithy_http_client::Builder::new().build_http(),
            https: Arc::new(OnceLock::new()),
        })
    }
}

impl HttpClient for Client {
    fn http_connector(
        &self,
        settings: &HttpConnectorSettings,
        components: &RuntimeComponents,
    ) -> SharedHttpConnector {
        SharedHttpConnector::new(Routed {
            http: self.http.http_connector(settings, components),
            https: Arc::clone(&self.https),
            settings: settings.clone(),
            components: components.clone(),
        })
    }
}

/// One connector per scheme; the underlying clients cache theirs per settings.
#[derive(Debug)]
struct Routed {
    http: SharedHttpConnector,
    https: Arc<OnceLock<SharedHttpClient>>,
    settings: HttpConnectorSettings,
    components: RuntimeComponents,
}

impl HttpConnector for Routed {
    fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
        if request.uri().starts_with("https:") {
            self.https
                .get_or_init(|| {
                    aws_smithy_http_client::Builder::new()
                        .tls_provider(Provider::Rustls(CryptoMode::Ring))
                        .tls_context(tls_context())
                        .build_https()
                })
                .http_connector(&self.settings, &self.components)
                .call(request)
        } else {
            self.http.call(request)
        }
    }
}

/// Forbids retrying a TLS handshake that failed on the server's certificate: an untrusted or
/// wrong certificate does not fix itself, and the SDK's default (every I/O error is transient)
/// would spend seconds of backoff before saying so.
#[derive(Debug, Clone, Copy)]
pub struct NoRetryOnBadCertificate;

impl ClassifyRetry for NoRetryOnBadCertificate {
    fn classify_retry(&self, ctx: &InterceptorContext) -> RetryAction {
        let Some(Err(error)) = ctx.output_or_error() else {
            return RetryAction::NoActionIndicated;
        };
        let Some(connector) = error.as_connector_error() else {
            return RetryAction::NoActionIndicated;
        };
        if is_certificate_error(connector) {
            RetryAction::RetryForbidden
        } else {
            RetryAction::NoActionIndicated
        }
    }

    fn name(&self) -> &'static str {
        "stepsecret::NoRetryOnBadCertificate"
    }
}

/// Retries an HTTP 429 as throttling. Secrets Manager throttles with a 400 and a code the SDK
/// knows, but proxies and gateways in front of it (and LocalStack-style endpoints) answer a
/// bare 429, which the SDK's status classifier does not list.
#[derive(Debug, Clone, Copy)]
pub struct RetryTooManyRequests;

impl ClassifyRetry for RetryTooManyRequests {
    fn classify_retry(&self, ctx: &InterceptorContext) -> RetryAction {
        match ctx.response() {
            Some(response) if response.status().as_u16() == 429 => RetryAction::throttling_error(),
            _ => RetryAction::NoActionIndicated,
        }
    }

    fn name(&self) -> &'static str {
        "stepsecret::RetryTooManyRequests"
    }
}

/// Whether a rustls certificate error is somewhere in `error`'s chain. `io::Error` hides the
/// error it wraps from `source()` (hyper-rustls nests the rustls error two `io::Error`s deep),
/// so each one is unwrapped by hand.
fn is_certificate_error(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut current = Some(error);
    while let Some(e) = current {
        if let Some(tls) = e.downcast_ref::<rustls::Error>() {
            return matches!(
                tls,
                rustls::Error::InvalidCertificate(_) | rustls::Error::NoCertificatesPresented
            );
        }
        current = match e
            .downcast_ref::<std::io::Error>()
            .and_then(std::io::Error::get_ref)
        {
            Some(inner) => Some(inner as &(dyn std::error::Error + 'static)),
            None => e.source(),
        };
    }
    false
}

/// The trust store: the system's when it has one, else the compiled-in Mozilla roots.
fn tls_context() -> TlsContext {
    let store = if system_store_present() {
        TrustStore::default()
    } else {
        let mut store = TrustStore::empty().with_native_roots(false);
        for der in webpki_root_certs::TLS_SERVER_ROOT_CERTS {
            store.add_pem_certificate(pem(der));
        }
        store
    };
    TlsContext::builder()
        .with_trust_store(store)
        .build()
        .expect("a trust store without names always builds")
}

/// Where Linux distributions keep their CA bundle or directory (the places OpenSSL and
/// rustls-native-certs look when SSL_CERT_FILE and SSL_CERT_DIR are unset).
const SYSTEM_FILES: [&str; 7] = [
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/pki/ca-trust/extracted/pem/tls-ca-bundle.pem",
    "/etc/ssl/ca-bundle.pem",
    "/etc/pki/tls/cacert.pem",
    "/etc/ssl/cert.pem",
    "/usr/local/ssl/cert.pem",
];
const SYSTEM_DIRS: [&str; 3] = [
    "/etc/ssl/certs",
    "/etc/pki/tls/certs",
    "/usr/local/ssl/certs",
];

/// Whether the system has certificates for rustls-native-certs to load (it reads
/// SSL_CERT_FILE / SSL_CERT_DIR when either is set, else the usual places).
fn system_store_present() -> bool {
    let file = |p: &Path| std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.len() > 0);
    let dir = |p: &Path| std::fs::read_dir(p).is_ok_and(|mut d| d.next().is_some());
    let env_file = std::env::var_os("SSL_CERT_FILE").map(PathBuf::from);
    let env_dir = std::env::var_os("SSL_CERT_DIR").map(PathBuf::from);
    if env_file.is_some() || env_dir.is_some() {
        return env_file.is_some_and(|f| file(&f)) || env_dir.is_some_and(|d| dir(&d));
    }
    SYSTEM_FILES.iter().any(|f| file(Path::new(f))) || SYSTEM_DIRS.iter().any(|d| dir(Path::new(d)))
}

/// A DER certificate as PEM (the form the SDK's trust store takes).
fn pem(der: &[u8]) -> Vec<u8> {
    let text = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = String::with_capacity(text.len() + text.len() / 64 + 64);
    out.push_str("-----BEGIN CERTIFICATE-----\n");
    for line in text.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(line).expect("base64 is ASCII"));
        out.push('\n');
    }
    out.push_str("-----END CERTIFICATE-----\n");
    out.into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;

    #[test]
    fn bundled_roots_survive_the_trip_through_pem() {
        for der in webpki_root_certs::TLS_SERVER_ROOT_CERTS.iter().take(20) {
            let back = CertificateDer::from_pem_slice(&pem(der)).unwrap();
            assert_eq!(back.as_ref(), der.as_ref());
        }
        assert!(webpki_root_certs::TLS_SERVER_ROOT_CERTS.len() > 100);
    }
}
