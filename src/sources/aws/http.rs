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

use crate::env::Env;
use crate::tls::SystemStore;

/// An HTTP client choosing plain HTTP or TLS per request, TLS built on first use.
#[derive(Debug, Clone)]
pub(super) struct Client {
    http: SharedHttpClient,
    https: Arc<OnceLock<SharedHttpClient>>,
    /// The system's trust store, looked at when the TLS side is built.
    store: SystemStore,
}

impl Client {
    pub(super) fn shared(env: &Env) -> SharedHttpClient {
        SharedHttpClient::new(Client {
            http: aws_smithy_http_client::Builder::new().build_http(),
            https: Arc::new(OnceLock::new()),
            store: SystemStore::from_env(env),
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
            store: self.store.clone(),
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
    store: SystemStore,
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
                        .tls_context(tls_context(&self.store))
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
pub(super) struct NoRetryOnBadCertificate;

impl ClassifyRetry for NoRetryOnBadCertificate {
    fn classify_retry(&self, ctx: &InterceptorContext) -> RetryAction {
        let Some(Err(error)) = ctx.output_or_error() else {
            return RetryAction::NoActionIndicated;
        };
        let Some(connector) = error.as_connector_error() else {
            return RetryAction::NoActionIndicated;
        };
        if crate::tls::is_certificate_error(connector) {
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
pub(super) struct RetryTooManyRequests;

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

/// The trust store: the system's when it has one, else the compiled-in Mozilla roots.
fn tls_context(system: &SystemStore) -> TlsContext {
    let store = if system.present() {
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
