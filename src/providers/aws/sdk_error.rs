//! Maps AWS SDK errors to ours: the service's code decides the category; the message never
//! carries credentials (the SDK does not put them there).

use aws_sdk_ec2::error::{ProvideErrorMetadata, SdkError};

use crate::error::Error;

type HttpResponse = aws_smithy_runtime_api::client::orchestrator::HttpResponse;

const AUTH_CODES: &[&str] = &[
    "AuthFailure",
    "SignatureDoesNotMatch",
    "InvalidClientTokenId",
    "UnrecognizedClientException",
    "AccessDenied",
    "InvalidAccessKeyId",
    "ExpiredToken",
    "UnauthorizedOperation",
    "Forbidden",
];

pub(crate) fn sdk_error<E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static>(
    what: &str,
    err: SdkError<E, HttpResponse>,
) -> Error {
    match &err {
        SdkError::ServiceError(_) | SdkError::ResponseError(_) => {}
        SdkError::TimeoutError(_) => {
            return Error::Timeout(format!("{what}: the request timed out"));
        }
        _ => return Error::Network(format!("{what}: {}", error_chain(&err))),
    }
    let code = err.code().unwrap_or("").to_string();
    let msg = err.message().unwrap_or("").to_string();
    // HEAD answers have no body, so no code: the status must do.
    let status = status_of(&err);
    if code.is_empty() {
        match status {
            Some(401 | 403) => {
                return Error::Auth(format!(
                    "{what}: access denied (HTTP {})",
                    status.unwrap_or(403)
                ));
            }
            Some(404) => return Error::NotFound(format!("{what}: not found")),
            _ => {}
        }
    }
    let text = if code.is_empty() {
        format!("{what}: {}", error_chain(&err))
    } else {
        format!("{what}: {code}: {msg}")
    };
    if AUTH_CODES.contains(&code.as_str()) {
        Error::Auth(text)
    } else if code.ends_with(".NotFound") || code.starts_with("NoSuch") || code == "NotFound" {
        Error::NotFound(text)
    } else if code.starts_with("InvalidParameter") || code.ends_with(".Malformed") {
        Error::InvalidArgument(text)
    } else {
        Error::Remote(text)
    }
}

/// The HTTP status of a service answer, if there was one.
pub(crate) fn status_of<E>(err: &SdkError<E, HttpResponse>) -> Option<u16> {
    err.raw_response().map(|r| r.status().as_u16())
}

fn error_chain<E: std::error::Error + 'static, R: std::fmt::Debug>(err: &SdkError<E, R>) -> String {
    // The whole chain (connection refused, TLS, …), without request details.
    let mut s = err.to_string();
    let mut src = std::error::Error::source(err);
    while let Some(e) = src {
        s.push_str(": ");
        s.push_str(&e.to_string());
        src = e.source();
    }
    s
}
