//! One guard for every paged listing a cloud gives (ARM `nextLink`, Cloud Storage and Compute
//! `nextPageToken`, Blob `NextMarker`, EC2 `NextToken`, vSphere `RetrievePropertiesEx` tokens):
//! a cloud that repeats a token, never stops paging or sends more than any real listing holds
//! gets an error naming the listing instead of an export that stays in `preparing` for ever.
//!
//! ```ignore
//! let mut pages = Pages::new(format!("listing gs://{bucket}/{prefix}"));
//! loop {
//!     let page = call(token).await?;
//!     pages.page(page.items.len(), page.body_len)?;
//!     match page.next { Some(t) => { pages.next(&t)?; token = Some(t) } None => break }
//! }
//! ```

use std::collections::HashSet;
use std::time::Duration;

use tokio::time::Instant;

use crate::error::{Error, Result};

/// The bounds of one listing. The defaults are far above any real one (a subscription's disks,
/// a bucket prefix's objects, a 5 TB page blob's ranges) and far below what exhausts memory.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Limits {
    /// Time from the first page to the last.
    pub deadline: Duration,
    pub max_pages: usize,
    pub max_items: usize,
    /// Bytes of answer bodies over all pages.
    pub max_bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            deadline: Duration::from_secs(15 * 60),
            max_pages: 10_000,
            max_items: 2_000_000,
            max_bytes: 512 << 20,
        }
    }
}

/// The state of one paged listing; see the module's docs.
#[derive(Debug)]
pub(crate) struct Pages {
    what: String,
    limits: Limits,
    started: Instant,
    seen: HashSet<String>,
    pages: usize,
    items: usize,
    bytes: u64,
}

impl Pages {
    pub fn new(what: impl Into<String>) -> Self {
        Self::with_limits(what, Limits::default())
    }

    pub fn with_limits(what: impl Into<String>, limits: Limits) -> Self {
        Pages {
            what: what.into(),
            limits,
            started: Instant::now(),
            seen: HashSet::new(),
            pages: 0,
            items: 0,
            bytes: 0,
        }
    }

    /// What the listing is, for errors the caller makes.
    pub fn what(&self) -> &str {
        &self.what
    }

    /// The time left before the listing's deadline (for the next call's own deadline).
    pub fn remaining(&self) -> Duration {
        self.limits.deadline.saturating_sub(self.started.elapsed())
    }

    /// Counts a page that held `items` items in `bytes` bytes of answer; an error once the
    /// listing is past any of its bounds or its deadline.
    pub fn page(&mut self, items: usize, bytes: u64) -> Result<()> {
        self.pages += 1;
        self.items = self.items.saturating_add(items);
        self.bytes = self.bytes.saturating_add(bytes);
        let l = &self.limits;
        let over = if self.pages > l.max_pages {
            Some(format!("more than {} pages", l.max_pages))
        } else if self.items > l.max_items {
            Some(format!("more than {} items", l.max_items))
        } else if self.bytes > l.max_bytes {
            Some(format!("more than {} MiB of answers", l.max_bytes >> 20))
        } else if self.started.elapsed() > l.deadline {
            Some(format!("still paging after {:?}", l.deadline))
        } else {
            None
        };
        match over {
            Some(why) => Err(Error::Remote(format!(
                "{}: the cloud kept paging ({why}); stopped",
                self.what
            ))),
            None => Ok(()),
        }
    }

    /// Takes the token (or link) of the next page; an error if the cloud gave it before (a
    /// listing that points back at itself never ends). The token is not quoted in the error:
    /// it may be a signed link.
    pub fn next(&mut self, token: &str) -> Result<()> {
        if token.is_empty() || !self.seen.insert(token.to_string()) {
            return Err(Error::Remote(format!(
                "{}: the cloud gave page {} the token of an earlier page (or an empty one); \
                 a listing that repeats never ends, stopped",
                self.what,
                self.pages + 1
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorKind;

    #[test]
    fn a_repeated_token_is_an_error_naming_the_listing() {
        let mut p = Pages::new("listing gs://b/p");
        p.page(10, 100).unwrap();
        p.next("t1").unwrap();
        p.page(10, 100).unwrap();
        p.next("t2").unwrap();
        p.page(10, 100).unwrap();
        let e = p.next("t1").unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Remote);
        assert!(e.to_string().contains("listing gs://b/p"), "{e}");
        assert!(!e.to_string().contains("t1"), "{e}");
        assert!(p.next("").is_err());
    }

    #[test]
    fn each_bound_stops_the_listing() {
        let l = Limits {
            deadline: Duration::from_secs(60),
            max_pages: 3,
            max_items: 25,
            max_bytes: 1000,
        };
        let mut p = Pages::with_limits("pages", l);
        for _ in 0..3 {
            p.page(0, 0).unwrap();
        }
        assert!(p.page(0, 0).unwrap_err().to_string().contains("3 pages"));
        let mut p = Pages::with_limits("items", l);
        p.page(20, 0).unwrap();
        assert!(p.page(6, 0).unwrap_err().to_string().contains("25 items"));
        let mut p = Pages::with_limits("bytes", l);
        p.page(0, 900).unwrap();
        assert!(p.page(0, 101).is_err());
    }

    #[tokio::test(start_paused = true)]
    async fn the_deadline_stops_a_slow_listing() {
        let mut p = Pages::with_limits(
            "slow",
            Limits {
                deadline: Duration::from_secs(60),
                ..Limits::default()
            },
        );
        p.page(1, 1).unwrap();
        tokio::time::advance(Duration::from_secs(59)).await;
        p.page(1, 1).unwrap();
        assert!(p.remaining() <= Duration::from_secs(1));
        tokio::time::advance(Duration::from_secs(2)).await;
        assert!(
            p.page(1, 1)
                .unwrap_err()
                .to_string()
                .contains("still paging")
        );
    }
}
