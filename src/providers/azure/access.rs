//! Read grants and the snapshots we make: a grant's SAS expiry and renewal margin, and the ARM
//! calls that undo both (`endGetAccess`, `DELETE` of a snapshot), which the cleanup ledger runs.

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use reqwest::Method;
use url::Url;

use super::arm::Arm;
use crate::error::Result;
use crate::seam::FlowCtx;

/// A read grant we asked for (revoked in cleanup whether or not it was answered).
pub(super) struct Grant {
    pub rg: String,
    pub kind: &'static str,
    pub name: String,
    /// The current SAS (query string), shared with the download's signer.
    pub sas: Arc<Mutex<String>>,
    /// When the current SAS was granted and when it expires (its `se`).
    pub granted: SystemTime,
    pub expires: Option<SystemTime>,
    pub renewals: u32,
    /// After a failed renewal: not before this time again.
    pub retry_at: Option<SystemTime>,
    /// The grant asks for the VM guest state's SAS too (renewals ask the same).
    pub guest_state: bool,
}

/// Revokes a read grant (`endGetAccess`) and waits for the operation.
pub(super) async fn revoke(
    arm: &Arm,
    ctx: &FlowCtx,
    rg: &str,
    kind: &str,
    name: &str,
) -> Result<()> {
    let first = arm
        .call(
            Method::POST,
            arm.url(rg, kind, name, Some("endGetAccess")),
            None,
        )
        .await?;
    arm.wait(
        ctx,
        &format!("revoking access to {name}"),
        first,
        Duration::from_secs(600),
        Duration::from_millis(200),
    )
    .await?;
    Ok(())
}

/// Deletes a snapshot we made and waits for the operation.
pub(super) async fn delete_snapshot(arm: &Arm, ctx: &FlowCtx, rg: &str, name: &str) -> Result<()> {
    let first = arm
        .call(Method::DELETE, arm.url(rg, "snapshots", name, None), None)
        .await?;
    arm.wait(
        ctx,
        &format!("deleting snapshot {name}"),
        first,
        Duration::from_secs(600),
        Duration::from_millis(200),
    )
    .await?;
    Ok(())
}

/// The expiry a SAS states (`se`, ISO 8601).
pub(super) fn sas_expiry(url: &Url) -> Option<SystemTime> {
    let se = url.query_pairs().find(|(k, _)| k == "se")?.1.to_string();
    let t =
        time::OffsetDateTime::parse(&se, &time::format_description::well_known::Rfc3339).ok()?;
    let secs = u64::try_from(t.unix_timestamp()).ok()?;
    Some(SystemTime::UNIX_EPOCH + Duration::from_secs(secs))
}

/// Renew when less than a third of the SAS's life (at most 10 minutes) is left.
pub(super) fn needs_renewal(g: &Grant, now: SystemTime) -> bool {
    let Some(exp) = g.expires else { return false };
    let life = exp.duration_since(g.granted).unwrap_or_default();
    let margin = (life / 3).min(Duration::from_secs(600));
    now + margin >= exp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sas_expiry_and_renewal_margin() {
        let u = Url::parse("https://a/c/b?sv=1&se=2030-01-01T00%3A00%3A00Z&sig=x").unwrap();
        let exp = sas_expiry(&u).unwrap();
        assert_eq!(
            exp.duration_since(SystemTime::UNIX_EPOCH)
                .unwrap()
                .as_secs(),
            1_893_456_000
        );
        let g = |granted: SystemTime| Grant {
            rg: String::new(),
            kind: "disks",
            name: String::new(),
            sas: Default::default(),
            granted,
            expires: Some(exp),
            renewals: 0,
            retry_at: None,
            guest_state: false,
        };
        // An hour-long SAS: renewed in its last 20 minutes, capped at 10.
        let hour = exp - Duration::from_secs(3600);
        assert!(!needs_renewal(&g(hour), exp - Duration::from_secs(601)));
        assert!(needs_renewal(&g(hour), exp - Duration::from_secs(599)));
        // A 9-second SAS: renewed with 3 s left.
        let short = exp - Duration::from_secs(9);
        assert!(!needs_renewal(&g(short), exp - Duration::from_secs(4)));
        assert!(needs_renewal(&g(short), exp - Duration::from_secs(3)));
    }
}
