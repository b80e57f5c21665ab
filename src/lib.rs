//! hypersdk exports virtual machines and disks out of clouds and hypervisors onto local disk,
//! many at once, with progress that can be trusted, through a safe Rust API and a C ABI.
//!
//! # Architecture
//!
//! ```text
//! C / Go / C# / PowerShell caller
//!         │  include/hypersdk.h (cbindgen, committed)
//! ffi/        the only unsafe, C-facing layer: handles, hs_status, panic guard, C strings
//!         │  safe API: Client, Export, Progress, ExportResult, Error
//! export/     a job per export (phases, cancel, cleanup on every path), a dispatcher per
//!             export (serialized, throttled callbacks, one terminal call), options
//! transfer/   ranged parallel GETs → positioned writes in a sparse temp file; resume journal,
//!             retries, stall detection, token buckets, one global buffer budget, checksums
//! providers/  http now; aws, azure, gcp, vsphere, hyperv behind cargo features (Provider/Flow)
//! runtime.rs  the one tokio runtime, created on first use
//! ```
//!
//! A call enters `ffi/`, becomes a job in `export/`, the job drives a provider's `Flow`, the flow
//! hands URLs to `transfer/`, and progress flows back through atomic counters read by one
//! dispatcher per export. Nothing below `ffi/` knows about C.
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

pub mod client;
pub mod error;
pub mod export;
pub mod ffi;
pub mod paths;
pub mod providers;
pub mod runtime;
pub mod settings;
pub mod transfer;

pub use client::Client;
pub use error::{Error, ErrorKind, ExportError, Result};
pub use export::{Export, ExportResult, FileResult, Phase, Progress, ProgressCallback};
pub use settings::{GlobalSettings, configure};

/// The library version.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
