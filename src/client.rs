//! The safe Rust API's entry point.

use std::sync::Arc;
use std::time::Duration;

use crate::error::{Error, Result};
use crate::export::job::Job;
use crate::export::{Export, ExportResult, ExportShared, ProgressCallback, dispatch};
use crate::providers::{self, new_provider};
use crate::seam::Provider;
use crate::seam::options::CommonOptions;

/// The providers compiled into this build (the registry is the one place that knows them).
pub fn available_providers() -> Vec<&'static str> {
    providers::available()
}

/// What every known provider accepts, as JSON: `{"common_options": [{key, type, default}],
/// "providers": [{name, built_in, sources, config_keys, option_keys}]}` (`hs_provider_info`).
pub fn provider_info_json() -> String {
    serde_json::to_string(&providers::schema()).unwrap_or_else(|_| "{}".into())
}

/// A configured provider (one login, one HTTP connection pool) that starts exports. Cheap to
/// clone; usable from any thread. Exports keep what they need alive, so a client may be dropped
/// while its exports run.
#[derive(Clone)]
pub struct Client {
    provider: Arc<dyn Provider>,
    name: String,
}

impl Client {
    /// `provider` is `"http"` (cloud providers follow, each behind a cargo feature);
    /// `config_json` is that provider's config object (`""` or `"{}"` for defaults).
    pub fn new(provider: &str, config_json: &str) -> Result<Client> {
        crate::runtime::check_not_forked()?;
        // Providers build HTTP clients that want a runtime context.
        let provider_impl = {
            let _guard = crate::runtime::handle().enter();
            new_provider(provider, config_json)?
        };
        Ok(Client {
            provider: provider_impl,
            name: provider.to_string(),
        })
    }

    pub fn provider_name(&self) -> &str {
        &self.name
    }

    /// The sources this provider can export (instances and images, disks and snapshots, VMs),
    /// for front ends. `filter_json`: `""` or an object with `kind` (`instance`, `image`,
    /// `disk`, `snapshot`, `vm`, `object`), `name_contains`, and the provider's own keys (a
    /// zone, a resource group, a bucket and prefix…). Blocks until the cloud answers (at most
    /// five minutes).
    pub fn list_sources(&self, filter_json: &str) -> Result<Vec<crate::seam::SourceInfo>> {
        crate::runtime::check_not_forked()?;
        let mut scope = match filter_json.trim() {
            "" => serde_json::Map::new(),
            t => match serde_json::from_str(t) {
                Ok(serde_json::Value::Object(m)) => m,
                Ok(_) => {
                    return Err(Error::InvalidArgument(
                        "list filter must be a JSON object".into(),
                    ));
                }
                Err(e) => return Err(Error::InvalidArgument(format!("list filter: {e}"))),
            },
        };
        let text = |v: Option<serde_json::Value>, k: &str| match v {
            None | Some(serde_json::Value::Null) => Ok(None),
            Some(serde_json::Value::String(s)) => Ok(Some(s)),
            Some(_) => Err(Error::InvalidArgument(format!(
                "list filter {k} must be a string"
            ))),
        };
        let kind = text(scope.remove("kind"), "kind")?;
        let contains = text(scope.remove("name_contains"), "name_contains")?;
        if let Some(k) = &kind
            && !["instance", "image", "disk", "snapshot", "vm", "object"].contains(&k.as_str())
        {
            return Err(Error::InvalidArgument(format!(
                "list filter kind {k:?} is not one of instance, image, disk, snapshot, vm, object"
            )));
        }
        let provider = self.provider.clone();
        // Through a scoped thread: also safe from inside a progress callback.
        let all = crate::runtime::block_on(async move {
            tokio::time::timeout(Duration::from_secs(300), provider.list(&scope))
                .await
                .map_err(|_| Error::Timeout("listing sources took more than 5 minutes".into()))?
        })?;
        let needle = contains.map(|c| c.to_lowercase());
        Ok(all
            .into_iter()
            .filter(|s| kind.as_deref().is_none_or(|k| s.kind == k))
            .filter(|s| {
                needle
                    .as_deref()
                    .is_none_or(|n| s.name.to_lowercase().contains(n))
            })
            .collect())
    }

    /// Starts an export and returns at once; the export runs on the internal runtime. Bad
    /// options and a missing output folder are errors here, before anything is touched.
    pub fn start_export(
        &self,
        source_id: &str,
        options_json: &str,
        on_progress: Option<ProgressCallback>,
    ) -> Result<Export> {
        crate::runtime::check_not_forked()?;
        let (opts, rest) = CommonOptions::parse(options_json)?;
        opts.check_output_dir()?;
        let flow = self.provider.plan(source_id, &opts, rest)?;
        let interval = Duration::from_millis(opts.progress_interval_ms);
        let shared = ExportShared::new();
        let job = Job {
            shared: shared.clone(),
            _provider: self.provider.clone(),
            flow,
            opts: Arc::new(opts),
        };
        // The place in the queue is taken now, so arrival order is the order of these calls.
        let ticket = crate::export::job::EXPORT_SLOTS.ticket(job.opts.priority);
        let place = ticket.place();
        let rt = crate::runtime::handle();
        rt.spawn(dispatch::run(shared.clone(), on_progress, interval));
        rt.spawn(job.run(ticket));
        Ok(Export { shared, place })
    }

    /// What `start_export` with these arguments would do, without doing it: the options are
    /// checked as `start_export` checks them, and the provider says what it would create in the
    /// cloud and which files it would write. Nothing is asked of the cloud, nothing is
    /// written, and the output folder need not exist yet (a path that is not a folder is an
    /// error).
    pub fn dry_run(&self, source_id: &str, options_json: &str) -> Result<crate::DryRun> {
        let (opts, rest) = CommonOptions::parse(options_json)?;
        if opts.output_dir.exists() {
            opts.check_output_dir()?;
        }
        let flow = self.provider.plan(source_id, &opts, rest)?;
        let (cloud, files) = flow.dry_run();
        Ok(crate::DryRun {
            provider: self.name.clone(),
            source: crate::transfer::redact_url_text(source_id.trim()),
            output_dir: opts.output_dir.display().to_string(),
            cloud,
            files,
        })
    }

    /// Runs an export to its end on the calling thread (not from inside the runtime).
    pub fn export(
        &self,
        source_id: &str,
        options_json: &str,
        on_progress: Option<ProgressCallback>,
    ) -> std::result::Result<ExportResult, crate::error::ExportError> {
        let e = self
            .start_export(source_id, options_json, on_progress)
            .map_err(|e| {
                crate::error::ExportError::from_error(&e, crate::progress::Phase::Queued)
            })?;
        let r = e
            .wait(None)
            .map_err(|e| crate::error::ExportError::from_error(&e, crate::progress::Phase::Queued))?
            .ok_or_else(|| {
                crate::error::ExportError::from_error(
                    &Error::Internal("wait returned without a result".into()),
                    crate::progress::Phase::Queued,
                )
            })?;
        r.into_result()
    }
}
