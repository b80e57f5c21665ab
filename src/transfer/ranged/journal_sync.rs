//! Recording finished ranges in the journal: only after their bytes are synced, so a crash never
//! leaves the journal claiming bytes the disk lost; at most once a second, since every sync
//! waits for the disk.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::Ranged;
use crate::error::{Error, Result};
use crate::sync::lock;
use crate::transfer::blocking;

/// Least time between two journal syncs.
const JOURNAL_EVERY: Duration = Duration::from_secs(1);

pub(super) async fn maybe_sync_journal(st: &Arc<Ranged>) -> Result<()> {
    if lock(&st.last_sync).elapsed() < JOURNAL_EVERY {
        return Ok(());
    }
    // One sync at a time; a part that finds one running leaves it the work.
    let Ok(_guard) = st.sync_lock.try_lock() else {
        return Ok(());
    };
    sync_journal_locked(st).await
}

pub(super) async fn sync_journal(st: &Arc<Ranged>) -> Result<()> {
    let _guard = st.sync_lock.lock().await;
    sync_journal_locked(st).await
}

/// Syncs the data, then records the ranges that were done before the sync.
async fn sync_journal_locked(st: &Arc<Ranged>) -> Result<()> {
    let snapshot = lock(&st.journal).clone();
    let file = st.file.clone();
    let (dir, temp) = (st.ctx.dir.clone(), st.temp.clone());
    blocking(move || {
        file.sync_data()
            .map_err(|e| Error::io(&temp.path, "cannot sync", e))?;
        snapshot.store(&dir, &temp.journal)
    })
    .await?;
    *lock(&st.last_sync) = Instant::now();
    Ok(())
}
