//! The provider kit: what every cloud provider builds on, so that a 503, a `Retry-After`, a
//! private CA or a slow endpoint is handled the same way whichever cloud it comes from.
//!
//! - [`config`]: the network keys every provider's config accepts ([`NetConfig`]: CA bundle,
//!   insecure flag, connect timeout, API deadline), split off the provider's own keys.
//! - [`api`]: one client for cloud API calls ([`ApiClient`]): one retry rule (the downloader's,
//!   `transfer::retry`), a deadline per attempt, `Retry-After` as seconds or a date, cancel, and
//!   one mapping from status + cloud error code to [`crate::ErrorKind`]. A cloud plugs in only
//!   its signing and how to read its error bodies ([`Dialect`]).
//! - [`net`]: the reqwest client builder (our TLS stack, extra CAs, redirect policy), capped
//!   body reads, header maps.
//! - [`checksums`]: the whole-object checksums clouds put in their headers, handed to the
//!   downloader as a source's hooks.
//! - [`paging`]: one guard for every paged listing (a repeated token or link, a listing that
//!   never ends, too many items or bytes: an error naming the listing).
//! - [`text`]: one-line messages out of cloud answers, percent-decoding.

// A build with only some providers (`--no-default-features --features NAME`) leaves parts of
// the kit without a user.
#![cfg_attr(
    not(all(
        feature = "aws",
        feature = "azure",
        feature = "gcp",
        feature = "vsphere",
        feature = "hyperv"
    )),
    allow(dead_code, unused_imports)
)]

pub(crate) mod api;
pub(crate) mod checksums;
pub(crate) mod config;
pub(crate) mod errors;
pub(crate) mod net;
pub(crate) mod paging;
pub(crate) mod text;

pub(crate) use api::{Answer, ApiClient, Call, CodeClass, Dialect};
pub(crate) use config::parse_config;
