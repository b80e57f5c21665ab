//! The safe Rust API's entry point.

use std::sync::Arc;
use std::time::Duration;

use crate::error::{Error, Result};
use crate::export::job::Job;
use crate::export::options::CommonOptions;
use crate::export::{Export, ExportResult, ExportShared, ProgressCallback, dispatch};
use crate::providers::{Provider, new_provider};

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
        let rt = crate::runtime::handle();
        rt.spawn(dispatch::run(shared.clone(), on_progress, interval));
        rt.spawn(job.run());
        Ok(Export { shared })
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
