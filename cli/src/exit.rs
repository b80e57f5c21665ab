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
