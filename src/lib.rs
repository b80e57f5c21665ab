//! hypersdk exports virtual machines and disks out of clouds and hypervisors onto local disk,
//! many at once, with progress that can be trusted, through a safe Rust API and a C ABI.
//!
//! # Architecture
//!
//! ```text
//! C / Go / C# / PowerShell caller
//!         │  include/hypersdk.h (cbindgen, committed)
//! ffi/        the only unsafe, C-facing layer: handles, hs_status, panic guard, C strings
//!         │  safe API (client.rs): Client, Export, Progress, ExportResult, Error, provider info
//! export/     the engine: a job per export (phases, cancel, cleanup on every path), a
//!             dispatcher per export (serialized, throttled callbacks, one terminal call)
//!         │  reaches providers only through the registry (providers::new_provider)
//! providers/  the registry and one module per source behind a cargo feature, each
//!             mod.rs (Provider) + flow.rs (Flow) + config.rs + its cloud's files, on the kit:
//!             kit/ (one API client: retry rule, deadlines, error mapping; NetConfig; the
//!             HTTP client), poll (cloud-side waits), process (child processes), schema
//! seam/       what the engine and the providers share, below both: the Provider and Flow
//!             traits, their contexts, the cleanup ledger, the export's common options
//! transfer/   sources (HTTP, HTTP extents, local file, a file another process writes) →
//!             positioned writes in a sparse temp file; resume journal, retries, stall
//!             detection, token buckets, one global buffer budget, checksums
//! progress.rs Phase, Progress, counters: the vocabulary every layer shares (the bottom layer,
//!             with error.rs, sync.rs, runtime.rs)
//! ```
//!
//! A call enters `ffi/`, becomes a job in `export/`, the job drives a provider's `Flow`, the flow
//! hands `FileSource`s to `transfer/` and registers the undo of what it creates in the cloud in
//! the export's ledger, and progress flows back through atomic counters read by one dispatcher
//! per export. Imports point down only: nothing below `ffi/` knows about C, `export/` and
//! `providers/` meet only in `seam/`, nothing in `transfer/` knows about providers or the engine.
//!
//! ```no_run
//! let client = hypersdk::Client::new("http", "{}")?;
//! let export = client.start_export(
//!     "http://127.0.0.1:8080/disk.vmdk",
//!     r#"{"output_dir": "/tmp"}"#,
//!     Some(Box::new(|p: &hypersdk::Progress| println!("{:?} {}/{}", p.phase, p.bytes_done, p.bytes_total))),
//! )?;
//! let result = export.wait(None)?.expect("no timeout given");
//! println!("{}", result.to_json());
//! # Ok::<(), hypersdk::Error>(())
//! ```

mod client;
mod error;
mod export;
mod ffi;
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzz_api;
mod paths;
mod platform;
mod printable;
mod progress;
#[cfg(test)]
mod proptests;
mod providers;
mod runtime;
mod seam;
mod secret;
mod settings;
mod sync;
mod transfer;

pub use client::Client;
pub use client::{available_providers, provider_info_json};
pub use error::{Error, ErrorKind, ExportError, Result};
pub use export::{ChecksumResult, ErrorResult, Export, ExportResult, FileResult, ProgressCallback};
pub use printable::printable;
pub use progress::{Phase, Progress};
pub use seam::ledger::CleanupStep;
pub use seam::{DryRun, SourceInfo};
pub use settings::{GlobalSettings, configure};
pub use transfer::{Leftover, clean_partials, redact_source};

/// The library version.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// A boxed future, as the provider seam passes them around.
pub(crate) type BoxFuture<'a, T> =
    std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send + 'a>>;
