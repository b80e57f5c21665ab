//! The one mapping from a cloud's error answer to our [`Error`]: the cloud's code where its
//! dialect knows it, else the status; and the one-line text every such error carries.

use reqwest::StatusCode;

use super::api::{Answer, CodeClass, Dialect};
use super::text::one_line;
use crate::error::{Error, ErrorKind};

pub(super) fn describe(
    what: &str,
    status: StatusCode,
    detail: Option<&(String, String)>,
) -> String {
    match detail {
        Some((code, msg)) if !code.is_empty() && !msg.is_empty() => {
            format!("{what}: HTTP {status}: {code}: {}", one_line(msg))
        }
        Some((code, msg)) if !code.is_empty() || !msg.is_empty() => {
            format!("{what}: HTTP {status}: {code}{}", one_line(msg))
        }
        _ => format!("{what}: HTTP {status}"),
    }
}

/// The one mapping from an error answer to our error: the cloud's code where its dialect knows
/// it, else the status. Nothing of the request (its signature, a token) is in the message.
pub(crate) fn answer_error(what: &str, dialect: &dyn Dialect, a: &Answer) -> Error {
    let detail = dialect.error_detail(a);
    let class = detail.as_ref().and_then(|(c, _)| dialect.classify(c));
    let text = describe(what, a.status, detail.as_ref());
    let kind = match class {
        Some(CodeClass::Kind(k)) => k,
        Some(CodeClass::Throttled | CodeClass::Retry) => ErrorKind::Network,
        None => status_kind(a.status),
    };
    Error::of(kind, text)
}

/// [`answer_error`] for an answer read outside a call (a HEAD whose status the caller judged,
/// an SDK's error): the dialect's two readers as plain functions, no signer needed.
pub(crate) fn error_from(
    what: &str,
    a: &Answer,
    detail: fn(&[u8]) -> Option<(String, String)>,
    classify: fn(&str) -> Option<CodeClass>,
) -> Error {
    struct Readers {
        detail: fn(&[u8]) -> Option<(String, String)>,
        classify: fn(&str) -> Option<CodeClass>,
    }
    impl Dialect for Readers {
        fn error_detail(&self, a: &Answer) -> Option<(String, String)> {
            (self.detail)(&a.body)
        }
        fn classify(&self, code: &str) -> Option<CodeClass> {
            (self.classify)(code)
        }
    }
    answer_error(what, &Readers { detail, classify }, a)
}

/// What a status means when no code says more.
pub(crate) fn status_kind(s: StatusCode) -> ErrorKind {
    match s.as_u16() {
        401 | 403 => ErrorKind::Auth,
        404 | 410 => ErrorKind::NotFound,
        409 | 412 => ErrorKind::InvalidState,
        400 | 422 => ErrorKind::InvalidArgument,
        _ if crate::transfer::retry::is_retryable_status(s) => ErrorKind::Network,
        _ => ErrorKind::Remote,
    }
}
