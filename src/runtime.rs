//! The one internal tokio runtime, created on first use and never torn down (its worker threads
//! live as long as the process; C callers have no natural point to shut it down).

use std::sync::LazyLock;

static RUNTIME: LazyLock<tokio::runtime::Runtime> = LazyLock::new(|| {
    // Two TLS providers may be compiled in once cloud SDKs join; pick one explicitly so no
    // client panics at start-up. An error only means another caller installed one already.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    tokio::runtime::Builder::new_multi_thread()
        .thread_name("hypersdk")
        .enable_all()
        .build()
        .expect("hypersdk: cannot start the tokio runtime")
});

/// The shared runtime handle.
pub fn handle() -> &'static tokio::runtime::Handle {
    RUNTIME.handle()
}
