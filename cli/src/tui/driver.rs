//! Carries out the app's effects with the library, off the drawing thread: builds each
//! account's client once, lists, starts exports (as `batch` does: one [`Item`] each, recorded
//! in the history when it ends), cancels, reads the history and resumes. What it learns comes
//! back to the app as [`Event`]s on one channel.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::mpsc::Sender;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hypersdk::{Client, ErrorKind, Export};
use serde_json::Value;

use super::app::{Effect, Event, Start};
use super::sources::ListError;
use super::watch::Ended;
use crate::batch::Account;
use crate::item::{Item, Refusal};
use crate::{history, history_cmd, shown};

/// How often the running exports are read.
const POLL: Duration = Duration::from_millis(200);

struct Running {
    item: Item,
    export: Export,
}

#[derive(Clone)]
pub(crate) struct Driver {
    tx: Sender<Event>,
    accounts: Arc<Vec<Account>>,
    profile: Option<PathBuf>,
    clients: Arc<Mutex<HashMap<usize, Arc<Client>>>>,
    running: Arc<Mutex<HashMap<usize, Running>>>,
    /// The history store's records (tests give their own).
    pub(crate) history: fn() -> Result<Vec<Value>, String>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Driver {
    /// `profile`: the file the accounts came from (the history records it, so a resume finds
    /// the config and its secrets again).
    pub(crate) fn new(tx: Sender<Event>, accounts: Vec<Account>, profile: Option<PathBuf>) -> Self {
        let d = Driver {
            tx,
            accounts: Arc::new(accounts),
            profile,
            clients: Arc::default(),
            running: Arc::default(),
            history: history::load,
        };
        let poller = d.clone();
        std::thread::spawn(move || poller.poll());
        d
    }

    pub(crate) fn apply(&self, effect: Effect) {
        let d = self.clone();
        match effect {
            Effect::List(i) => {
                std::thread::spawn(move || d.list(i));
            }
            Effect::DryRun { form, starts } => {
                std::thread::spawn(move || {
                    let plans = starts.iter().map(|s| d.dry_run(s)).collect();
                    let _ = d.tx.send(Event::DryRun { form, plans });
                });
            }
            Effect::SetPriority { row, priority } => {
                // Not yet started (its start still on its way) or ended: not queued here.
                let applied = lock(&self.running)
                    .get(&row)
                    .is_some_and(|r| r.export.set_priority(priority));
                let _ = self.tx.send(Event::Priority {
                    row,
                    priority,
                    applied,
                });
            }
            Effect::Start(starts) => {
                std::thread::spawn(move || starts.into_iter().for_each(|s| d.start(s)));
            }
            Effect::Cancel(row) => {
                if let Some(r) = lock(&self.running).get(&row) {
                    r.export.cancel();
                }
            }
            Effect::LoadHistory => {
                std::thread::spawn(move || {
                    let _ = d.tx.send(Event::History(history::load()));
                });
            }
            Effect::Resume { row, id } => {
                std::thread::spawn(move || d.resume(row, id));
            }
            Effect::Exit | Effect::ExitNow => {}
        }
    }

    /// The account's client, made once (a login, a connection pool): its config with what
    /// the environment fills in, as `export` completes one.
    fn client(&self, i: usize) -> Result<Arc<Client>, Refusal> {
        if let Some(c) = lock(&self.clients).get(&i) {
            return Ok(c.clone());
        }
        let a = &self.accounts[i];
        let context = format!("[providers.{}]", a.name);
        let refusal = |message: String| Refusal {
            kind: ErrorKind::InvalidArgument,
            message,
        };
        let config = a.config.clone().map_err(refusal)?;
        let (config, _) = crate::discover::complete(&a.provider, &config, &[]).map_err(refusal)?;
        let c = Client::new(&a.provider, &config)
            .map(Arc::new)
            .map_err(|e| Refusal::of(&e, &context))?;
        lock(&self.clients).insert(i, c.clone());
        Ok(c)
    }

    fn list(&self, i: usize) {
        let result = match self.client(i) {
            Err(r) => Err(ListError::Failed(r.message)),
            Ok(c) => c.list_sources("").map_err(|e| match e.kind() {
                ErrorKind::Unsupported => ListError::Unsupported(e.to_string()),
                _ => ListError::Failed(e.to_string()),
            }),
        };
        let _ = self.tx.send(Event::Listed { account: i, result });
    }

    /// The options JSON a start or dry run is given: `incremental_from=<history id>` becomes
    /// that export's record from the history store, as `export` and `batch` do.
    fn options_json(&self, options: &serde_json::Map<String, Value>) -> Result<String, String> {
        let mut options = options.clone();
        history::resolve_incremental_with(&mut options, self.history)?;
        Ok(Value::Object(options).to_string())
    }

    /// What starting `s` would do, from the library (nothing is started or written).
    fn dry_run(&self, s: &Start) -> Result<hypersdk::DryRun, String> {
        let client = self.client(s.account).map_err(|r| r.message)?;
        let opts = self.options_json(&s.options)?;
        client.dry_run(&s.source, &opts).map_err(|e| e.to_string())
    }

    fn start(&self, mut s: Start) {
        let a = &self.accounts[s.account];
        // Absolute and made when missing, as `export` and `batch` do (the history keeps it).
        if let Some(dir) = s.options.get("output_dir").and_then(Value::as_str) {
            match crate::input::output_dir(std::path::Path::new(dir), true) {
                Ok(p) => {
                    s.options
                        .insert("output_dir".into(), p.display().to_string().into());
                }
                Err(why) => {
                    let _ = self.tx.send(Event::Refused { row: s.row, why });
                    return;
                }
            }
        }
        let item = Item {
            label: format!("{}:{}", shown::text(&a.name), shown::source(&s.source)),
            provider: a.provider.clone(),
            source: s.source,
            client: self.client(s.account),
            options: s.options,
            config_file: None,
            profile: self.profile.clone().map(|p| (p, a.name.clone())),
        };
        self.launch(s.row, item);
    }

    fn resume(&self, row: usize, id: u64) {
        let made = history::load().map_err(|e| e.to_string()).and_then(|all| {
            history_cmd::resume_item(&all, id, &history_cmd::Given::default())
                .map_err(|f| f.message)
        });
        match made {
            Ok((item, _)) => self.launch(row, item),
            Err(why) => {
                let _ = self.tx.send(Event::Refused { row, why });
            }
        }
    }

    fn launch(&self, row: usize, item: Item) {
        let started = match (&item.client, self.options_json(&item.options)) {
            (Ok(c), Ok(opts)) => c
                .start_export(&item.source, &opts, None)
                .map_err(|e| e.to_string()),
            (Err(r), _) => Err(r.message.clone()),
            (_, Err(why)) => Err(why),
        };
        match started {
            Ok(export) => {
                lock(&self.running).insert(row, Running { item, export });
            }
            Err(why) => {
                let _ = self.tx.send(Event::Refused { row, why });
            }
        }
    }

    /// Reads every running export until the app is gone: its progress, then its end (recorded
    /// in the history first, so the row can name its history id).
    fn poll(&self) {
        loop {
            std::thread::sleep(POLL);
            let mut ended = Vec::new();
            let mut events = Vec::new();
            for (row, r) in lock(&self.running).iter() {
                let result = r.export.result();
                // Read after the result, so an export's last reading shows its final bytes.
                events.push(Event::Progress {
                    row: *row,
                    progress: r.export.progress(),
                });
                if let Some(res) = result {
                    let id = history::record(&r.item, &res).ok();
                    events.push(Event::Ended {
                        row: *row,
                        ended: Ended::of(&res, id),
                    });
                    ended.push(*row);
                }
            }
            for row in ended {
                lock(&self.running).remove(&row);
            }
            for e in events {
                if self.tx.send(e).is_err() {
                    return;
                }
            }
        }
    }
}
