//! TLS trust for every backend, in one place: where the system keeps its CA certificates, and
//! whether a failed connection was the server's certificate (typed, from rustls's own error
//! type, never from an error's text).
//!
//! The system's store is preferred so that a company CA (a TLS-inspecting proxy) is trusted
//! as it is by everything else on the machine; SSL_CERT_FILE and SSL_CERT_DIR select another
//! one. Where there is none (a FROM-scratch container such as the Bitbucket pipe's), each
//! backend falls back to the Mozilla roots compiled into its HTTP client.

// Each backend uses its part: a build with only one of them leaves the other's unused.
#![cfg_attr(not(all(feature = "vault", feature = "aws")), allow(dead_code))]

use std::path::{Path, PathBuf};

use crate::env::Env;

/// Where Linux distributions keep their CA bundle (the places OpenSSL and rustls-native-certs
/// look when SSL_CERT_FILE and SSL_CERT_DIR are unset), most common first.
const SYSTEM_FILES: [&str; 7] = [
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/ssl/ca-bundle.pem",
    "/etc/pki/tls/cacert.pem",
    "/etc/pki/ca-trust/extracted/pem/tls-ca-bundle.pem",
    "/etc/ssl/cert.pem",
    "/usr/local/ssl/cert.pem",
];
/// ... and their CA directories.
const SYSTEM_DIRS: [&str; 3] = [
    "/etc/ssl/certs",
    "/etc/pki/tls/certs",
    "/usr/local/ssl/certs",
];

/// The system's trust store, as the run's environment points to it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct SystemStore {
    /// SSL_CERT_FILE, when set.
    file: Option<PathBuf>,
    /// SSL_CERT_DIR, when set.
    dir: Option<PathBuf>,
}

impl SystemStore {
    /// The store SSL_CERT_FILE / SSL_CERT_DIR select, else the distribution's.
    pub(crate) fn from_env(env: &Env) -> SystemStore {
        SystemStore {
            file: env.path("SSL_CERT_FILE"),
            dir: env.path("SSL_CERT_DIR"),
        }
    }

    /// Whether there are certificates to load: the selected file or directory when either
    /// variable is set (then nothing else is looked at), else any of the usual places.
    pub(crate) fn present(&self) -> bool {
        if self.file.is_some() || self.dir.is_some() {
            return self.file.as_deref().is_some_and(non_empty_file)
                || self.dir.as_deref().is_some_and(non_empty_dir);
        }
        SYSTEM_FILES.iter().any(|f| non_empty_file(Path::new(f)))
            || SYSTEM_DIRS.iter().any(|d| non_empty_dir(Path::new(d)))
    }

    /// The CA bundle file: SSL_CERT_FILE when set, else the first of the usual bundles that
    /// exists.
    pub(crate) fn bundle(&self) -> Option<PathBuf> {
        match &self.file {
            Some(file) => Some(file.clone()),
            None => SYSTEM_FILES
                .iter()
                .map(PathBuf::from)
                .find(|f| non_empty_file(f)),
        }
    }
}

fn non_empty_file(path: &Path) -> bool {
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.len() > 0)
}

fn non_empty_dir(path: &Path) -> bool {
    std::fs::read_dir(path).is_ok_and(|mut d| d.next().is_some())
}

/// Whether the server's certificate was refused: a rustls certificate error somewhere in
/// `error`'s chain. Such a failure does not fix itself, so it is never retried, and its
/// message points at the CA setting. `io::Error` hides the error it wraps from `source()`
/// (hyper-rustls nests the rustls error two `io::Error`s deep), so each one is unwrapped by
/// hand.
pub(crate) fn is_certificate_error(error: &(dyn std::error::Error + 'static)) -> bool {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn certificate_errors_are_found_through_nested_io_errors() {
        let bad = rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer);
        let nested = std::io::Error::other(std::io::Error::other(bad));
        assert!(is_certificate_error(&nested));
        let other = std::io::Error::other(rustls::Error::DecryptError);
        assert!(!is_certificate_error(&other));
        let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        assert!(!is_certificate_error(&refused));
    }

    #[test]
    fn a_selected_store_is_the_only_one_looked_at() {
        let dir = tempfile::tempdir().unwrap();
        let missing = Env::from_vars([("SSL_CERT_FILE", dir.path().join("none.pem"))]);
        let store = SystemStore::from_env(&missing);
        assert!(!store.present());
        assert_eq!(store.bundle(), Some(dir.path().join("none.pem")));
        let file = dir.path().join("ca.pem");
        std::fs::write(&file, "-----BEGIN CERTIFICATE-----\n").unwrap();
        assert!(SystemStore::from_env(&Env::from_vars([("SSL_CERT_FILE", &file)])).present());
    }
}
