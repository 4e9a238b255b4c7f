//! The SDK's HTTP client: rustls (on ring, no OpenSSL, so the binary links statically) for
//! `https://`, plain hyper for `http://`, each with its own pool of kept-alive connections.
//!
//! The TLS side is only built when the first `https://` request is made. Building it reads the
//! system's trust store (every file in /etc/ssl/certs: several milliseconds), which a run that
//! only talks to an `http://` endpoint (moto, LocalStack, EC2 metadata) need not pay. Against
//! real AWS it is built once, before the first request, exactly as the SDK's default would.

use std::sync::{Arc, OnceLock};

use aws_smithy_http_client::tls::{Provider, rustls_provider::CryptoMode};
use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpClient,
    SharedHttpConnector,
};
use aws_smithy_runtime_api::client::interceptors::context::InterceptorContext;
use aws_smithy_runtime_api::client::orchestrator::HttpRequest;
use aws_smithy_runtime_api::client::retries::classifiers::{ClassifyRetry, RetryAction};
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;

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
