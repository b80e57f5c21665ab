//! The error type of the safe API: one enum, each variant a category the C ABI maps to a stable
//! `hs_status` value. Messages name what is wrong and never carry credentials or query strings.

use std::path::Path;

use crate::progress::Phase;

/// Errors of every layer below the C ABI.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    #[error("not found: {0}")]
    NotFound(String),
    #[error("authentication failed: {0}")]
    Auth(String),
    #[error("already exists: {0}")]
    AlreadyExists(String),
    #[error("I/O error: {0}")]
    Io(String),
    #[error("network error: {0}")]
    Network(String),
    #[error("verification failed: {0}")]
    Verification(String),
    #[error("cancelled")]
    Cancelled,
    #[error("timed out: {0}")]
    Timeout(String),
    #[error("unsupported: {0}")]
    Unsupported(String),
    #[error("remote error: {0}")]
    Remote(String),
    #[error("{0} changed on the server during the download")]
    SourceChanged(String),
    #[error("invalid state: {0}")]
    InvalidState(String),
    #[error("internal error: {0}")]
    Internal(String),
}

/// The category of an [`Error`], stable and cheap to copy; the C ABI maps it to `hs_status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    InvalidArgument,
    NotFound,
    Auth,
    AlreadyExists,
    Io,
    Network,
    Verification,
    Cancelled,
    Timeout,
    Unsupported,
    Remote,
    InvalidState,
    Internal,
}

impl ErrorKind {
    /// Every kind.
    pub fn all() -> [ErrorKind; 13] {
        [
            ErrorKind::InvalidArgument,
            ErrorKind::NotFound,
            ErrorKind::Auth,
            ErrorKind::AlreadyExists,
            ErrorKind::Io,
            ErrorKind::Network,
            ErrorKind::Verification,
            ErrorKind::Cancelled,
            ErrorKind::Timeout,
            ErrorKind::Unsupported,
            ErrorKind::Remote,
            ErrorKind::InvalidState,
            ErrorKind::Internal,
        ]
    }

    /// A short stable name, used in result JSON and as the C status name.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::InvalidArgument => "invalid_argument",
            ErrorKind::NotFound => "not_found",
            ErrorKind::Auth => "auth",
            ErrorKind::AlreadyExists => "already_exists",
            ErrorKind::Io => "io",
            ErrorKind::Network => "network",
            ErrorKind::Verification => "verification",
            ErrorKind::Cancelled => "cancelled",
            ErrorKind::Timeout => "timeout",
            ErrorKind::Unsupported => "unsupported",
            ErrorKind::Remote => "remote",
            ErrorKind::InvalidState => "invalid_state",
            ErrorKind::Internal => "internal",
        }
    }
}

impl Error {
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::InvalidArgument(_) => ErrorKind::InvalidArgument,
            Error::NotFound(_) => ErrorKind::NotFound,
            Error::Auth(_) => ErrorKind::Auth,
            Error::AlreadyExists(_) => ErrorKind::AlreadyExists,
            Error::Io(_) => ErrorKind::Io,
            Error::Network(_) => ErrorKind::Network,
            Error::Verification(_) => ErrorKind::Verification,
            Error::Cancelled => ErrorKind::Cancelled,
            Error::Timeout(_) => ErrorKind::Timeout,
            Error::Unsupported(_) => ErrorKind::Unsupported,
            Error::Remote(_) | Error::SourceChanged(_) => ErrorKind::Remote,
            Error::InvalidState(_) => ErrorKind::InvalidState,
            Error::Internal(_) => ErrorKind::Internal,
        }
    }

    /// An error of the given kind (for mappings that decide the kind first, as the kit's
    /// status + cloud code mapping does).
    pub(crate) fn of(kind: ErrorKind, msg: String) -> Error {
        match kind {
            ErrorKind::InvalidArgument => Error::InvalidArgument(msg),
            ErrorKind::NotFound => Error::NotFound(msg),
            ErrorKind::Auth => Error::Auth(msg),
            ErrorKind::AlreadyExists => Error::AlreadyExists(msg),
            ErrorKind::Io => Error::Io(msg),
            ErrorKind::Network => Error::Network(msg),
            ErrorKind::Verification => Error::Verification(msg),
            ErrorKind::Cancelled => Error::Cancelled,
            ErrorKind::Timeout => Error::Timeout(msg),
            ErrorKind::Unsupported => Error::Unsupported(msg),
            ErrorKind::Remote => Error::Remote(msg),
            ErrorKind::InvalidState => Error::InvalidState(msg),
            ErrorKind::Internal => Error::Internal(msg),
        }
    }

    /// An I/O error that names the file it happened on.
    pub fn io(path: &Path, what: &str, err: std::io::Error) -> Error {
        Error::Io(format!("{what} {}: {err}", path.display()))
    }

    /// A reqwest error without its URL (URLs can carry SAS tokens or pre-signed signatures).
    pub fn http(context: &str, err: reqwest::Error) -> Error {
        let timeout = err.is_timeout();
        let err = err.without_url();
        // reqwest's Display stops at the outermost layer; the cause (refused, reset, TLS) is
        // what a user needs.
        let mut msg = format!("{context}: {err}");
        let mut tls = None;
        let mut source = std::error::Error::source(&err);
        while let Some(s) = source {
            msg.push_str(": ");
            msg.push_str(&s.to_string());
            tls = tls.or(certificate_error(s));
            source = s.source();
        }
        // A refused certificate does not pass by trying again: said at once, with what to do,
        // as a remote error (not retried, the same exit code as a network one).
        if let Some(hint) = tls {
            msg.push_str(hint);
            return Error::Remote(msg);
        }
        if timeout {
            Error::Timeout(msg)
        } else {
            Error::Network(msg)
        }
    }
}

/// A rustls certificate error, directly or inside `io::Error`s (hyper's connector wraps it, and
/// an `io::Error`'s `source` skips the error it wraps); failing a type match, rustls's own
/// wording ("invalid peer certificate"). `Some(hint)`: what to add to the message (nothing for
/// a verifier's own explained refusal, such as a thumbprint that does not match).
fn certificate_error(e: &(dyn std::error::Error + 'static)) -> Option<&'static str> {
    use rustls::{CertificateError, Error as Tls};
    const UNTRUSTED: &str = " (the server's TLS certificate is not trusted: give its CA as ca_bundle_pem or ca_bundle_path)";
    const REFUSED: &str = " (the server's TLS certificate was refused: expired, not yet valid, or not for this host name)";
    if let Some(r) = e.downcast_ref::<Tls>() {
        return match r {
            Tls::InvalidCertificate(CertificateError::UnknownIssuer) => Some(UNTRUSTED),
            Tls::InvalidCertificate(CertificateError::Other(_)) => Some(""),
            Tls::InvalidCertificate(_) | Tls::NoCertificatesPresented => Some(REFUSED),
            _ => None,
        };
    }
    if let Some(inner) = e
        .downcast_ref::<std::io::Error>()
        .and_then(|io| io.get_ref())
    {
        return certificate_error(inner);
    }
    let text = e.to_string();
    text.contains("invalid peer certificate").then(|| {
        if text.contains("UnknownIssuer") {
            UNTRUSTED
        } else {
            REFUSED
        }
    })
}

/// An error together with the phase of the export it ended.
#[derive(Debug, Clone)]
pub struct ExportError {
    pub kind: ErrorKind,
    pub message: String,
    pub phase: Phase,
}

impl std::fmt::Display for ExportError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} (during {})", self.message, self.phase.as_str())
    }
}

impl std::error::Error for ExportError {}

impl ExportError {
    pub(crate) fn from_error(e: &Error, phase: Phase) -> ExportError {
        // The message reaches results, logs and terminals: what a cloud put in it is escaped.
        ExportError {
            kind: e.kind(),
            message: crate::printable::printable(&e.to_string()).into_owned(),
            phase,
        }
    }

    pub(crate) fn cancelled(phase: Phase) -> ExportError {
        ExportError {
            kind: ErrorKind::Cancelled,
            message: "cancelled".into(),
            phase,
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_export_error_escapes_what_a_cloud_put_in_its_message() {
        let e = Error::Remote("denied\u{1b}]52;c;eA==\u{7}\u{9b}2J".into());
        let x = ExportError::from_error(&e, Phase::Preparing);
        assert_eq!(
            x.message,
            "remote error: denied\\u{1b}]52;c;eA==\\u{7}\\u{9b}2J"
        );
        assert_eq!(x.kind, ErrorKind::Remote);
    }
}
