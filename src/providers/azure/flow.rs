//! One Azure export's run: targets (disks, snapshots of attached disks, a VM's disks), read
//! grants (renewed before their SAS expires), the page-blob downloads, and the ledger steps
//! that revoke every grant and delete every snapshot we made.

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use azure_core::credentials::TokenCredential;
use reqwest::Method;
use serde_json::{Value, json};
use url::Url;

use super::access::{Grant, needs_renewal, revoke, sas_expiry};
use super::arm::Arm;
use super::blob::{self, BlobAuth};
use super::config::{AzureOptions, Source};
use crate::BoxFuture;
use crate::error::{Error, Result};
use crate::paths::sanitize_file_name;
use crate::providers::kit::text::percent_decode;
use crate::seam::{Flow, FlowCtx, When};
use crate::sync::lock;
use crate::transfer::FileSource;

pub(super) struct AzureFlow {
    pub(super) arm: Arc<Arm>,
    pub(super) http: reqwest::Client,
    pub(super) cred: Arc<dyn TokenCredential>,
    pub(super) source: Source,
    pub(super) opts: AzureOptions,
    pub(super) ctx: Option<FlowCtx>,
    pub(super) grants: Vec<Grant>,
    /// Snapshots we made: (resource group, name); deleted in cleanup.
    pub(super) snapshots: Vec<(String, String)>,
    pub(super) files: Vec<Value>,
    /// Grants the cleanup ledger revoked (for the result's `revoked`).
    pub(super) revokes_ok: Arc<std::sync::atomic::AtomicUsize>,
    /// A blob URL source's server may get an Entra ID token (`config::token_host`).
    pub(super) blob_token: bool,
    /// Incremental exports (`keep_base`, `incremental_from`).
    pub(super) incr: super::incremental::IncrState,
}

impl AzureFlow {
    pub(super) fn new(
        arm: Arc<Arm>,
        http: reqwest::Client,
        cred: Arc<dyn TokenCredential>,
        source: Source,
        opts: AzureOptions,
    ) -> Self {
        AzureFlow {
            arm,
            http,
            cred,
            source,
            opts,
            ctx: None,
            grants: Vec::new(),
            snapshots: Vec::new(),
            files: Vec::new(),
            revokes_ok: Arc::default(),
            blob_token: false,
            incr: Default::default(),
        }
    }

    pub(super) fn ext(&self) -> &'static str {
        if self.opts.file_format.eq_ignore_ascii_case("vhdx") {
            "vhdx"
        } else {
            "vhd"
        }
    }

    /// How much of a disk one Get Page Ranges covers, bytes.
    pub(super) fn segment(&self) -> u64 {
        self.opts.page_ranges_segment_mib << 20
    }

    pub(super) fn timeout(&self) -> Duration {
        Duration::from_secs(self.opts.timeout_secs)
    }

    pub(super) fn first_delay(&self) -> Duration {
        Duration::from_millis(self.opts.poll_interval_ms)
    }

    /// `beginGetAccess` and its operation → the SAS URLs: the disk's, and with `guest_state`
    /// those of its VM guest state and security metadata where Azure gives them.
    pub(super) async fn grant(
        &self,
        ctx: &FlowCtx,
        rg: &str,
        kind: &str,
        name: &str,
        guest_state: bool,
    ) -> Result<Access> {
        let mut body = json!({
            "access": "Read",
            "durationInSeconds": self.opts.access_duration_secs,
        });
        if guest_state {
            body["getSecureVMGuestStateSAS"] = true.into();
        }
        // Only asked for where it applies (checked by check_format); VHD is the default.
        if self.ext() == "vhdx" {
            body["fileFormat"] = "VHDX".into();
        }
        let first = self
            .arm
            .call(
                Method::POST,
                self.arm.url(rg, kind, name, Some("beginGetAccess")),
                Some(&body),
            )
            .await?;
        let out = self
            .arm
            .wait(
                ctx,
                &format!("read access to {name}"),
                first,
                self.timeout(),
                self.first_delay(),
            )
            .await?;
        let sas_url = |key: &str| -> Result<Option<Url>> {
            let Some(sas) = out[key].as_str().filter(|s| !s.is_empty()) else {
                return Ok(None);
            };
            let url = Url::parse(sas).map_err(|_| {
                Error::Remote(format!("the grant of {name} gave an unusable {key}"))
            })?;
            if url.scheme() != "https" {
                return Err(Error::Remote(format!(
                    "the grant of {name} gave a {key} that is not https; refusing to send it in clear"
                )));
            }
            Ok(Some(url))
        };
        let disk = sas_url("accessSAS")?
            .or(sas_url("accessSas")?)
            .ok_or_else(|| Error::Remote(format!("the grant of {name} gave no accessSAS")))?;
        let access = Access {
            disk,
            guest_state: sas_url("securityDataAccessSAS")?,
            metadata: sas_url("securityMetadataAccessSAS")?,
        };
        if guest_state && access.guest_state.is_none() {
            // Never drop a VM's guest state silently.
            return Err(Error::Remote(format!(
                "the grant of {name} gave no securityDataAccessSAS for its VM guest state"
            )));
        }
        Ok(access)
    }
}

impl AzureFlow {
    /// The cloud side (see `Flow::prepare`).
    async fn prepare_sources(&mut self, ctx: &FlowCtx) -> Result<Vec<FileSource>> {
        self.ctx = Some(ctx.clone());
        if let Source::Blob(url) = &self.source {
            let url = url.clone();
            let has_sas = url.query_pairs().any(|(k, _)| k == "sig");
            let auth = if has_sas {
                BlobAuth::Sas(Arc::new(Mutex::new(url.query().unwrap_or("").to_string())))
            } else {
                BlobAuth::Token(self.cred.clone())
            };
            let last = url
                .path_segments()
                .and_then(|mut s| s.next_back())
                .unwrap_or("");
            let file = match &self.opts.file_name {
                Some(n) => n.clone(),
                None => sanitize_file_name(&percent_decode(last), &format!("blob.{}", self.ext())),
            };
            let mut bare = url.clone();
            bare.set_query(None);
            let (src, checks) =
                match blob::file_source(&self.http, &bare, &auth, file.clone(), self.segment())
                    .await
                {
                    // A disk's SAS given as a URL, the disk readable only with Entra ID
                    // (dataAccessAuthMode AzureActiveDirectory): the service asks for a bearer
                    // token beside the SAS, which the URL cannot say beforehand.
                    Err(Error::Auth(m))
                        if has_sas
                            && self.blob_token
                            && m.contains("NoAuthenticationInformation") =>
                    {
                        let auth = match auth {
                            BlobAuth::Sas(q) => BlobAuth::SasAndToken(q, self.cred.clone()),
                            other => other,
                        };
                        blob::file_source(&self.http, &bare, &auth, file.clone(), self.segment())
                            .await?
                    }
                    other => other?,
                };
            self.files.push(json!({
                "file": file,
                "blob": crate::transfer::redact_url(&url),
                "checks": checks,
            }));
            return Ok(vec![src]);
        }
        let targets = self.targets(ctx).await?;
        let base = match &self.opts.incremental_from {
            Some(from) => Some(super::incremental::load_base(from)?),
            None => None,
        };
        let for_base = self.opts.keep_base || base.is_some();
        let mut sources = Vec::new();
        for t in &targets {
            ctx.waiting_for_cloud(&format!("granting read access to {}", t.name));
            // Registered before the request: a cancel while it runs still revokes it.
            let (arm, rg, kind, name) = (self.arm.clone(), t.rg.clone(), t.kind, t.name.clone());
            let ok = self.revokes_ok.clone();
            ctx.ledger().add(
                format!("revoking read access to {}", t.name),
                When::Always,
                move |pctx| {
                    let (arm, rg, name, ok) = (arm.clone(), rg.clone(), name.clone(), ok.clone());
                    async move {
                        // Not found is done (the ledger says so too): nothing left to revoke.
                        match revoke(&arm, &pctx, &rg, kind, &name).await {
                            Ok(()) | Err(Error::NotFound(_)) => {
                                ok.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                                Ok(())
                            }
                            Err(e) => Err(e),
                        }
                    }
                },
            );
            self.grants.push(Grant {
                rg: t.rg.clone(),
                kind: t.kind,
                name: t.name.clone(),
                sas: Arc::new(Mutex::new(String::new())),
                granted: SystemTime::now(),
                expires: None,
                renewals: 0,
                retry_at: None,
                guest_state: t.security_type.is_some(),
            });
            let access = self
                .grant(ctx, &t.rg, t.kind, &t.name, t.security_type.is_some())
                .await?;
            let url = access.disk.clone();
            let g = self.grants.last_mut().expect("pushed");
            *lock(&g.sas) = url.query().unwrap_or("").to_string();
            g.granted = SystemTime::now();
            g.expires = sas_expiry(&url);
            // A disk readable only with Entra ID: its SAS and a Storage token on every read.
            let with_sas = |sas: Arc<Mutex<String>>| {
                if t.entra_data_access {
                    BlobAuth::SasAndToken(sas, self.cred.clone())
                } else {
                    BlobAuth::Sas(sas)
                }
            };
            let auth = with_sas(g.sas.clone());
            let mut bare = url.clone();
            bare.set_query(None);
            if for_base && t.kind == "snapshots" {
                self.incr.points.push(super::incremental::Point {
                    file: t.file.clone(),
                    rg: t.rg.clone(),
                    snapshot: t.name.clone(),
                    disk_id: t.source_id.clone(),
                });
            }
            let (src, checks, outcome, map) = self
                .disk_source(ctx, base.as_ref(), t, &bare, &auth)
                .await?;
            self.incr.outcomes.extend(outcome);
            if let Some(m) = map {
                // The base names the delta file, which is what was written.
                if let Some(p) = self.incr.points.iter_mut().find(|p| p.file == t.file) {
                    p.file = m.name.clone();
                }
                self.incr.maps.push(m);
            }
            let disk_src = src;
            let mut f = json!({"file": t.file, "source_id": t.source_id, "checks": checks});
            // The VM guest state (vTPM, UEFI variables) and a confidential VM's security
            // metadata travel beside the disk: without them it does not boot as it was. They
            // go first: their SAS is not renewed with the disk's, and they are megabytes.
            let stem = t.file.rsplit_once('.').map_or(t.file.as_str(), |(s, _)| s);
            for (url, ext, key) in [
                (&access.guest_state, "vmgs", "guest_state_file"),
                (
                    &access.metadata,
                    "security-metadata",
                    "security_metadata_file",
                ),
            ] {
                if let Some(u) = url {
                    let name = format!("{stem}.{ext}");
                    let auth = with_sas(Arc::new(Mutex::new(u.query().unwrap_or("").to_string())));
                    let mut bare = u.clone();
                    bare.set_query(None);
                    let (src, _) =
                        blob::file_source(&self.http, &bare, &auth, name.clone(), self.segment())
                            .await?;
                    sources.push(src);
                    f[key] = json!(name);
                }
            }
            sources.push(disk_src);
            if let Some(st) = &t.security_type {
                f["security_type"] = json!(st);
            }
            if t.entra_data_access {
                f["data_access_auth_mode"] = json!("AzureActiveDirectory");
            }
            if t.kind == "snapshots" {
                f["exported_from"] = json!(format!(
                    "/subscriptions/{}/resourceGroups/{}/providers/Microsoft.Compute/snapshots/{}",
                    self.arm.subscription(),
                    t.rg,
                    t.name
                ));
            }
            self.files.push(f);
        }
        ctx.message("");
        Ok(sources)
    }
}

impl Flow for AzureFlow {
    fn dry_run(&self) -> (Vec<String>, Vec<String>) {
        let ext = self.ext();
        let snap = "a snapshot of each attached disk (incremental for Premium SSD v2 and Ultra), \
                    deleted on every outcome";
        let grant = format!(
            "a read SAS ({} s, renewed while the download runs), revoked on every outcome",
            self.opts.access_duration_secs
        );
        let named =
            |stem: &str| crate::seam::planned_name(self.opts.file_name.as_deref(), stem, ext);
        match &self.source {
            Source::Disk { name, .. }
                if self.opts.keep_base || self.opts.incremental_from.is_some() =>
            {
                let mut cloud = vec![format!(
                    "an incremental snapshot of {name}, {}",
                    if self.opts.keep_base {
                        "kept after a finished export as the base of a later incremental one (keep_base)"
                    } else {
                        "deleted on every outcome"
                    }
                )];
                let mut files = vec![named(name)];
                if self.opts.incremental_from.is_some() {
                    cloud.push(
                        "on the base snapshot: a read SAS for the diff, revoked on every outcome"
                            .into(),
                    );
                    files.push(crate::transfer::incremental::delta::planned(
                        self.opts.incremental_output,
                        "pages",
                    ));
                }
                cloud.push(format!("on that snapshot: {grant}"));
                (cloud, files)
            }
            Source::Disk { name, .. } => {
                let mut cloud = Vec::new();
                let mut files = vec![named(name)];
                if self.opts.keep_base || self.opts.incremental_from.is_some() {
                    cloud.push(format!(
                        "an incremental snapshot of {name}: {}",
                        if self.opts.keep_base {
                            "kept after a finished export as the next one's base (keep_base), \
                             deleted after a failure or cancel"
                        } else {
                            "deleted on every outcome"
                        }
                    ));
                    if self.opts.incremental_from.is_some() {
                        cloud.push(format!("on the base snapshot too: {grant}"));
                        files.push(crate::transfer::incremental::delta::planned(
                            self.opts.incremental_output,
                            "pages",
                        ));
                    }
                } else if self.opts.snapshot_attached {
                    cloud.push(format!(
                        "if {name} is attached to a VM: a snapshot of it, deleted on every outcome"
                    ));
                }
                cloud.push(format!("on the disk (or that snapshot): {grant}"));
                (cloud, files)
            }
            Source::Snapshot { name, .. } => (
                vec![format!("on the snapshot {name}: {grant}")],
                vec![named(name)],
            ),
            Source::Vm { name, .. }
                if self.opts.keep_base || self.opts.incremental_from.is_some() =>
            {
                let mut cloud = vec![format!(
                    "an incremental snapshot of each managed disk of the VM {name}{}, {}",
                    if self.opts.snapshot_attached {
                        ""
                    } else {
                        " (its attached disks refused: snapshot_attached is false)"
                    },
                    if self.opts.keep_base {
                        "kept after a finished export as the base of a later incremental one \
                         (keep_base), deleted after a failure or cancel"
                    } else {
                        "deleted on every outcome"
                    }
                )];
                let mut files = vec![format!("<disk>.{ext} (one per disk, OS disk first)")];
                if self.opts.incremental_from.is_some() {
                    cloud.push(
                        "on each disk's base snapshot: a read SAS for the diff, revoked on every \
                         outcome"
                            .into(),
                    );
                    files.push(crate::transfer::incremental::delta::planned(
                        self.opts.incremental_output,
                        "pages",
                    ));
                }
                cloud.push(format!("on each snapshot: {grant}"));
                (cloud, files)
            }
            Source::Vm { name, .. } => (
                vec![
                    if self.opts.snapshot_attached {
                        format!("for the VM {name}: {snap}")
                    } else {
                        format!(
                            "none for the VM {name}: snapshot_attached is false, so its attached disks are refused"
                        )
                    },
                    format!("on each disk or snapshot: {grant}"),
                    "for Trusted Launch and confidential VMs: a guest state SAS, revoked with \
                     the disk's"
                        .into(),
                ],
                vec![
                    format!("<disk>.{ext} (one per disk, OS disk first)"),
                    "<disk>.vmgs and <disk>.security-metadata (Trusted Launch, confidential VMs)"
                        .into(),
                ],
            ),
            Source::Blob(url) => {
                let last = url
                    .path_segments()
                    .and_then(|mut s| s.next_back())
                    .unwrap_or("");
                (
                    Vec::new(),
                    vec![self.opts.file_name.clone().unwrap_or_else(|| {
                        sanitize_file_name(&percent_decode(last), &format!("blob.{ext}"))
                    })],
                )
            }
        }
    }

    /// A cancel ends `prepare` at once, even inside an ARM call: every grant and snapshot is
    /// recorded before its request is sent, so cleanup undoes whatever the cloud did.
    fn prepare<'a>(&'a mut self, ctx: &'a FlowCtx) -> BoxFuture<'a, Result<Vec<FileSource>>> {
        Box::pin(async move {
            let cancel = ctx.cancel().clone();
            tokio::select! {
                biased;
                _ = cancel.cancelled() => Err(Error::Cancelled),
                r = self.prepare_sources(ctx) => r,
            }
        })
    }

    /// A clock check, every second (more often for a SAS that lives less than 10 s), so a
    /// renewal, or its retry, is never late by more than a tenth of the SAS's life.
    fn keep_alive_interval(&self) -> Option<Duration> {
        let shortest = self
            .grants
            .iter()
            .filter_map(|g| g.expires?.duration_since(g.granted).ok())
            .min()?;
        Some((shortest / 10).clamp(Duration::from_millis(100), Duration::from_secs(1)))
    }

    /// Renews a grant whose SAS is about to expire; downloads pick the new SAS up at their
    /// next request.
    fn keep_alive<'a>(&'a mut self, _percent: u8) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            let Some(ctx) = self.ctx.clone() else {
                return Ok(());
            };
            let now = SystemTime::now();
            for i in 0..self.grants.len() {
                if !needs_renewal(&self.grants[i], now)
                    || self.grants[i].retry_at.is_some_and(|t| now < t)
                {
                    continue;
                }
                let (rg, kind, name) = {
                    let g = &self.grants[i];
                    (g.rg.clone(), g.kind, g.name.clone())
                };
                let guest = self.grants[i].guest_state;
                let url = match self.grant(&ctx, &rg, kind, &name, guest).await {
                    Ok(a) => a.disk,
                    // Tried again while the current SAS still works: in half its remaining
                    // life, at most 10 s.
                    Err(e)
                        if self.grants[i]
                            .expires
                            .is_some_and(|x| SystemTime::now() < x) =>
                    {
                        tracing::warn!(disk = %name, error = %e, "renewing read access failed; trying again");
                        let now = SystemTime::now();
                        let left = self.grants[i]
                            .expires
                            .and_then(|x| x.duration_since(now).ok())
                            .unwrap_or_default();
                        self.grants[i].retry_at =
                            Some(now + (left / 2).min(Duration::from_secs(10)));
                        continue;
                    }
                    Err(e) => return Err(e),
                };
                let g = &mut self.grants[i];
                *lock(&g.sas) = url.query().unwrap_or("").to_string();
                g.granted = SystemTime::now();
                g.expires = sas_expiry(&url);
                g.renewals += 1;
                g.retry_at = None;
                tracing::info!(disk = %name, "read access renewed");
            }
            Ok(())
        })
    }

    fn after_download<'a>(
        &'a mut self,
        _ctx: &'a FlowCtx,
        files: &'a [crate::transfer::Downloaded],
        dir: &'a Arc<crate::transfer::OutDir>,
    ) -> BoxFuture<'a, Result<crate::seam::AfterDownload>> {
        Box::pin(async move {
            let mut after = crate::seam::AfterDownload::default();
            for m in &self.incr.maps {
                after.extra.push(m.write(dir)?);
            }
            self.record_base(files);
            Ok(after)
        })
    }

    fn extra_names(&self) -> Vec<String> {
        self.incr
            .maps
            .iter()
            .map(|m| crate::transfer::incremental::delta::map_name(&m.name))
            .collect()
    }

    fn cleanup_deadline(&self) -> Duration {
        // Revokes are quick; deleting a snapshot is an operation of its own.
        Duration::from_secs(300)
    }

    fn result_fields(&self) -> serde_json::Map<String, Value> {
        let mut m = serde_json::Map::new();
        m.insert("disks".into(), Value::Array(self.files.clone()));
        let sub = self.arm.subscription();
        m.insert(
            "snapshots_made".into(),
            self.snapshots
                .iter()
                .map(|(rg, n)| {
                    Value::from(format!(
                        "/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.Compute/snapshots/{n}"
                    ))
                })
                .collect(),
        );
        if !self.grants.is_empty() {
            let ok = self.revokes_ok.load(std::sync::atomic::Ordering::Relaxed);
            m.insert("revoked".into(), (ok == self.grants.len()).into());
        }
        m.insert(
            "sas_renewals".into(),
            self.grants.iter().map(|g| g.renewals).sum::<u32>().into(),
        );
        self.incremental_fields(&mut m);
        m
    }
}

/// What a grant gave: the disk's SAS, and a VM guest state's and security metadata's.
pub(super) struct Access {
    pub(super) disk: Url,
    guest_state: Option<Url>,
    metadata: Option<Url>,
}
