//! The whole-file digest of a ranged download, computed behind the parts instead of after them.

use std::sync::Arc;
use std::time::Duration;

use super::Ranged;
use crate::error::{Error, Result};
use crate::sync::lock;
use crate::transfer::Digest;

/// Hashes the file while it downloads: follows the part of the file that is in place from byte
/// 0 on (parts finish out of order; holes count as in place and read as zeros) and reads it back
/// while it is still in the page cache, so the hash is ready a moment after the last byte
/// instead of costing a second pass over the whole disk (an OVF manifest hashes every disk;
/// `govc export.ovf -sha 256` hashes as it streams). Stops when the download stops.
pub(super) fn follow_hash(
    st: Arc<Ranged>,
    size: u64,
    kind: Digest,
) -> tokio::task::JoinHandle<Result<Vec<u8>>> {
    tokio::task::spawn_blocking(move || {
        crate::runtime::block_sigpipe();
        let mut h = kind.hasher();
        let mut buf = vec![0u8; 1 << 20];
        let mut cursor = 0u64;
        loop {
            let ready = lock(&st.journal)
                .done
                .ranges()
                .next()
                .filter(|(a, _)| *a == 0)
                .map_or(0, |(_, b)| b);
            while cursor < ready {
                if st.stop.is_cancelled() {
                    return Err(Error::Cancelled);
                }
                let n = ((ready - cursor) as usize).min(buf.len());
                crate::platform::read_exact_at(&st.file, &mut buf[..n], cursor)
                    .map_err(|e| Error::io(&st.temp.path, "cannot read back", e))?;
                h.update(&buf[..n]);
                cursor += n as u64;
            }
            if cursor >= size {
                return Ok(h.finalize().into_vec());
            }
            if st.stop.is_cancelled() {
                return Err(Error::Cancelled);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    })
}
