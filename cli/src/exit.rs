//! Exit codes (listed in `hypersdk --help`). With several exports the worst, i.e. highest, wins,
//! so the order of the codes is part of the contract.

use hypersdk::{ErrorKind, ExportResult};

/// The code of one finished export.
pub(crate) fn of_result(r: &ExportResult, interrupted: bool) -> u8 {
    match r.error() {
        None => 0,
        Some(e) => of_kind(e.kind, interrupted),
    }
}

/// `interrupted` tells a Ctrl+C (130) from a cancel that came from elsewhere (9).
pub(crate) fn of_kind(kind: ErrorKind, interrupted: bool) -> u8 {
    match kind {
        ErrorKind::Cancelled if interrupted => 130,
        ErrorKind::Cancelled => 9,
        ErrorKind::InvalidArgument => 2,
        ErrorKind::NotFound => 3,
        ErrorKind::Auth => 4,
        ErrorKind::Network | ErrorKind::Timeout | ErrorKind::Remote => 5,
        ErrorKind::Verification => 6,
        ErrorKind::Io | ErrorKind::AlreadyExists => 7,
        _ => 8,
    }
}

/// Why a command could not run its exports, with the code it exits with: bad input (2) unless
/// the library said otherwise — a vCenter that refuses the password is 4, one that cannot be
/// reached 5, a missing PowerShell 8.
pub(crate) struct Failure {
    pub code: u8,
    /// The error kind's name (`invalid_argument`, `auth`…), for `--json`.
    pub kind: &'static str,
    pub message: String,
}

impl Failure {
    /// A local file problem (an output folder that cannot be made, a log or accounts file that
    /// cannot be read): 7, as the help says, not 2.
    pub(crate) fn local(message: String) -> Failure {
        Failure {
            code: 7,
            kind: ErrorKind::Io.as_str(),
            message,
        }
    }
}

impl From<String> for Failure {
    fn from(message: String) -> Failure {
        Failure {
            code: 2,
            kind: ErrorKind::InvalidArgument.as_str(),
            message,
        }
    }
}

impl From<&str> for Failure {
    fn from(message: &str) -> Failure {
        message.to_string().into()
    }
}

impl From<hypersdk::Error> for Failure {
    fn from(e: hypersdk::Error) -> Failure {
        Failure {
            code: of_kind(e.kind(), false),
            kind: e.kind().as_str(),
            message: e.to_string(),
        }
    }
}
