//! The one internal tokio runtime, created on first use and never torn down (its worker threads
//! live as long as the process; C callers have no natural point to shut it down).

use std::sync::LazyLock;

/// The process the runtime was made in: its threads do not survive a `fork`.
static OWNER_PID: std::sync::OnceLock<u32> = std::sync::OnceLock::new();

static RUNTIME: LazyLock<tokio::runtime::Runtime> = LazyLock::new(|| {
    let _ = OWNER_PID.set(std::process::id());
    // Two TLS providers may be compiled in once cloud SDKs join; pick one explicitly so no
    // client panics at start-up. An error only means another caller installed one already.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    tokio::runtime::Builder::new_multi_thread()
        .thread_name("hypersdk")
        .on_thread_start(block_sigpipe)
        .enable_all()
        .build()
        .expect("hypersdk: cannot start the tokio runtime")
});

/// The shared runtime handle.
pub fn handle() -> &'static tokio::runtime::Handle {
    RUNTIME.handle()
}

/// A child made by `fork` after the library started has the runtime's memory but none of its
/// threads: anything that waits on them would hang. Entry points refuse instead.
pub(crate) fn check_not_forked() -> crate::error::Result<()> {
    match OWNER_PID.get() {
        Some(pid) if *pid != std::process::id() => Err(crate::error::Error::InvalidState(
            "hypersdk was started in the parent process; after fork a child cannot use it \
             (start exports in the parent, or exec a new program)"
                .into(),
        )),
        _ => Ok(()),
    }
}

/// A write to a socket the peer has closed raises SIGPIPE on the writing thread. Rust programs
/// ignore it in `main`, but as a library we run inside C, Go and .NET hosts whose default action
/// kills the process (Go crashes on a SIGPIPE in a non-Go thread). Blocking it on our own
/// threads turns it into the EPIPE error the code already handles, without touching the host's
/// process-wide signal disposition.
pub(crate) fn block_sigpipe() {
    #[cfg(unix)]
    // SAFETY: plain libc calls on a local, initialised signal set.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGPIPE);
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
    }
}

/// Runs a future to its end on the library runtime from synchronous code (a client's login),
/// also when called from a thread of that runtime, by going through a scoped thread.
pub(crate) fn block_on<T: Send>(fut: impl std::future::Future<Output = T> + Send) -> T {
    std::thread::scope(|s| {
        s.spawn(|| {
            // This thread does socket I/O too.
            block_sigpipe();
            handle().block_on(fut)
        })
        .join()
        .expect("hypersdk: a blocking call panicked")
    })
}
