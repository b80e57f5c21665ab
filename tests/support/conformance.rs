//! The conformance suite's half in support (issue 24 point 6; the model is object_store's
//! `integration.rs` and rclone's `fstests`): a small trait each provider implements against its
//! own test peer, and the checks, written once, that tests/conformance.rs runs for every
//! provider:
//!
//! 1. [`cancel_in_the_cloud_wait`]: a cancel while the cloud works (phase waiting-for-cloud)
//!    leaves nothing in the cloud, checked at the peer; the status is "cancelled" and the
//!    result JSON's `cleanup` array lists the undo steps, each with ok = true (this is also
//!    point 6: the result lists the cleanup steps).
//! 2. [`wrong_credential`]: a wrong credential is `ErrorKind::Auth`, and no secret appears in
//!    an error, a result JSON, a progress message, or anything written to `tracing` at any
//!    level by any crate.
//! 3. [`unknown_source`]: an unknown source is `NotFound`, before anything is created.
//! 4. [`hostile_ids`]: hostile source ids are refused (`InvalidArgument`/`NotFound`) or
//!    handled as data: nothing created, nothing left, no file outside the output folder.
//! 5. [`silent_peer`]: a peer that accepts connections and never answers ends the export (or
//!    the login) with `Timeout`/`Network` within a bound.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use hypersdk::{Client, ErrorKind, ExportResult, Phase, Progress, ProgressCallback};
use serde_json::Value;

use super::{Recorder, wait_until};

/// An export the peer holds in its cloud wait (check 1).
pub struct Held {
    /// What the case is, for messages ("grant held", "build held").
    pub what: &'static str,
    pub source: String,
    /// The provider's options for it (on top of the test defaults; `keep_partial` is false).
    pub options: Value,
    /// The phase the export must be in when it is cancelled: waiting-for-cloud, or for a
    /// provider with no cloud side (http) downloading.
    pub phase: Phase,
    /// The moment to cancel, within that phase (the peer reached its hold).
    pub ready: Box<dyn Fn(&Progress) -> bool + Send + Sync>,
    /// The undo steps the result's `cleanup` must list with ok = true (by their start). `None`
    /// for a provider whose cleanup is its own, not ledger steps (Hyper-V): then the peer's
    /// state alone tells.
    pub steps: Option<Vec<String>>,
}

/// A wrong credential and everything that must stay hidden (check 2).
pub struct Credential {
    /// Texts that must appear nowhere.
    pub secrets: Vec<String>,
    /// Client configs with a wrong credential, each with its exports: the login
    /// (`Client::new`) or else every export must fail with `Auth`.
    pub logins: Vec<(String, Vec<(String, Value)>)>,
    /// Other failures that carry a secret: each must fail, of any kind, without showing it.
    pub probes: Vec<Probe>,
}

/// A case a provider is known to fail today, with why (rclone's fstests keep such a list per
/// backend). The check runs it all the same and asserts it still fails, so a fix shows as a
/// failure that asks for the entry to go.
pub struct Gap {
    /// The check's function name: "wrong_credential" or "unknown_source".
    pub check: &'static str,
    pub source: String,
    pub why: &'static str,
}

/// A failure that carries a secret (a secret of the wrong type, a signed URL that does not
/// parse, a host that does not answer).
pub enum Probe {
    /// `Client::new` with this config must fail.
    Config(String),
    /// This export must not succeed.
    Export {
        config: String,
        source: String,
        options: Value,
    },
}

/// How a provider meets a peer that never answers (check 5).
pub struct Silent {
    /// Which endpoint is the silent one.
    pub what: &'static str,
    pub config: String,
    pub source: String,
    pub options: Value,
    /// Whether the client must have connected to the silent listener (false for Hyper-V, whose
    /// silent peer is a PowerShell that never answers, not a socket).
    pub connects: bool,
}

/// What each provider gives the suite, against its own peer. A value is made per test: it owns
/// a tag that scopes what it creates (its names, its bucket prefix), because tests of one
/// provider run at the same time against one shared peer (moto, Azurite, fake-gcs-server).
pub trait Conformance {
    /// The provider's name, as `Client::new` takes it.
    fn provider(&self) -> &'static str;

    /// A client of the peer with the right credentials.
    fn client(&self) -> Client;

    /// Options of one export into `dir`: the test defaults, then the provider's `extra`.
    fn options(&self, dir: &Path, extra: Value) -> String {
        super::opts(dir, extra)
    }

    /// Exports the peer holds in its cloud wait, with the moment to cancel each (check 1).
    fn held(&self) -> Vec<Held>;

    /// What is still alive at the peer after exports of `sources` (and of this value's
    /// prefix): a running export task, a grant or SAS policy, a temporary image, a running
    /// build, an open lease, a checkpoint, a running job. Empty when clean.
    fn leftovers(&self, sources: &[String]) -> Vec<String>;

    /// What exports of `sources` (and of this value's prefix) ever created at the peer, alive
    /// or not. Empty when nothing was (checks 3 and 4).
    fn created(&self, sources: &[String]) -> Vec<String>;

    /// A wrong credential (check 2); `Err(why)` for a provider that takes none.
    fn wrong_credential(&self) -> Result<Credential, &'static str>;

    /// Sources the peer does not have, each with its options (check 3).
    fn unknown_sources(&self) -> Vec<(String, Value)>;

    /// `id` in each source form the provider takes, each with its options (check 4).
    fn hostile_sources(&self, id: &str) -> Vec<(String, Value)>;

    /// Clients and exports that meet the silent peer at `addr`, one per endpoint (check 5).
    fn silent(&self, addr: SocketAddr) -> Vec<Silent>;

    /// What this provider is known to fail today.
    fn known_gaps(&self) -> Vec<Gap> {
        vec![]
    }
}

/// The known gap of `p` for `source` in `check`.
fn gap(p: &dyn Conformance, check: &str, source: &str) -> Option<&'static str> {
    p.known_gaps()
        .into_iter()
        .find(|g| g.check == check && g.source == source)
        .map(|g| g.why)
}

/// A known gap that no longer fails: the entry must go.
fn gap_still_open(p: &dyn Conformance, source: &str, why: &str, fails: bool, text: &str) {
    assert!(
        fails,
        "{}: {}: the known gap ({why}) is fixed; remove it from known_gaps: {text}",
        p.provider(),
        short(source)
    );
    eprintln!("{}: known gap, {}: {why}", p.provider(), short(source));
}

/// A tag unique in this run (names and prefixes of one test).
pub fn tag() -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!(
        "{:x}{:x}{}",
        std::process::id() % 4096,
        nanos % 65536,
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// The hostile ids of check 4: shell and quote characters, a parent path, a NUL byte, 10 KB.
pub fn hostile() -> Vec<String> {
    vec![
        "a'b\"c; rm -rf /".to_string(),
        "../x".to_string(),
        "nul\0byte".to_string(),
        "a".repeat(10 * 1024),
    ]
}

/// How one export attempt ended: refused at start, or ended with a result.
pub enum Outcome {
    Refused(hypersdk::Error),
    Ended(Box<ExportResult>),
}

impl Outcome {
    pub fn kind(&self) -> Option<ErrorKind> {
        match self {
            Outcome::Refused(e) => Some(e.kind()),
            Outcome::Ended(r) => r.error().map(|e| e.kind),
        }
    }

    pub fn done(&self) -> bool {
        matches!(self, Outcome::Ended(r) if r.status == "done")
    }

    /// Everything it shows a caller: the error (Display and Debug), the result JSON.
    pub fn text(&self) -> String {
        match self {
            Outcome::Refused(e) => format!("{e} {e:?}"),
            Outcome::Ended(r) => match r.error() {
                Some(e) => format!("{} {e} {e:?}", r.to_json()),
                None => r.to_json(),
            },
        }
    }
}

/// Starts an export and waits for its end (`limit` at most).
pub fn run(
    client: &Client,
    source: &str,
    options: &str,
    callback: Option<ProgressCallback>,
    limit: Duration,
) -> Outcome {
    match client.start_export(source, options, callback) {
        Err(e) => Outcome::Refused(e),
        Ok(e) => Outcome::Ended(Box::new(e.wait(Some(limit)).unwrap().unwrap_or_else(
            || panic!("the export of {source:?} did not end within {limit:?}"),
        ))),
    }
}

/// A source id short enough for a message.
pub fn short(s: &str) -> String {
    let mut t: String = s.escape_debug().take(60).collect();
    if s.len() > 60 {
        t.push_str(&format!("…({} bytes)", s.len()));
    }
    t
}

/// Names in `dir` (not recursive).
pub fn names_in(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// Every file and folder under `root`, recursively.
fn tree(root: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut todo = vec![root.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                todo.push(p.clone());
            }
            out.push(p);
        }
    }
    out.sort();
    out
}

// ---- Check 1 -------------------------------------------------------------------------------

/// A cancel at the peer's hold leaves nothing at the peer, nothing in the output folder, the
/// status "cancelled", and every undo step in the result's `cleanup`, done.
pub fn cancel_in_the_cloud_wait(p: &dyn Conformance) {
    let held = p.held();
    assert!(!held.is_empty(), "{}: no held export", p.provider());
    for h in held {
        let what = format!("{} ({})", p.provider(), h.what);
        let out = tempfile::tempdir().unwrap();
        let mut extra = h.options.clone();
        extra["keep_partial"] = false.into();
        let rec = Recorder::default();
        let e = p
            .client()
            .start_export(
                &h.source,
                &p.options(out.path(), extra),
                Some(rec.callback()),
            )
            .unwrap_or_else(|e| panic!("{what}: refused: {e}"));
        let phase = h.phase;
        wait_until(&e, &format!("{what}: the hold"), |pr| {
            pr.phase == phase && (h.ready)(pr)
        });
        let at = e.progress();
        e.cancel();
        let r = super::wait_export(&e);
        assert_eq!(
            r.status,
            "cancelled",
            "{what}: cancelled at {at:?}: {}",
            r.to_json()
        );
        rec.check();
        let left = p.leftovers(std::slice::from_ref(&h.source));
        assert!(
            left.is_empty(),
            "{what}: the cancel left at the peer: {left:?}\nresult: {}",
            r.to_json()
        );
        let left = names_in(out.path());
        assert!(
            left.is_empty(),
            "{what}: the cancel (keep_partial false) left files: {left:?}"
        );
        // The result JSON lists every undo step that ran, each done.
        let json: Value = serde_json::from_str(&r.to_json()).unwrap();
        let steps = json["cleanup"]
            .as_array()
            .unwrap_or_else(|| panic!("{what}: no cleanup array: {json}"));
        for s in steps {
            assert!(
                s["step"].is_string() && s["ok"] == true && s.get("error").is_none(),
                "{what}: a cleanup step failed: {s}\nresult: {json}"
            );
        }
        eprintln!("{what}: cancelled; cleanup {}", json["cleanup"]);
        if let Some(want) = &h.steps {
            for w in want {
                assert!(
                    steps
                        .iter()
                        .any(|s| s["step"].as_str().unwrap_or("").starts_with(w.as_str())),
                    "{what}: the result does not list the undo step {w:?}: {}",
                    json["cleanup"]
                );
            }
        }
    }
}

// ---- Check 2 -------------------------------------------------------------------------------

/// Everything written to tracing, at TRACE level, by every crate, from the first call on.
pub fn log() -> &'static Arc<Mutex<Vec<u8>>> {
    static LOG: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    LOG.get_or_init(|| {
        let buf = Arc::new(Mutex::new(Vec::new()));
        let w = buf.clone();
        let make = move || Sink(w.clone());
        tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_writer(make)
            .with_ansi(false)
            .init();
        buf
    })
}

struct Sink(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Sink {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// What a run let out: errors, result JSON, progress messages.
#[derive(Default, Clone)]
pub struct Seen(Arc<Mutex<Vec<String>>>);

impl Seen {
    pub fn push(&self, s: impl Into<String>) {
        self.0.lock().unwrap().push(s.into());
    }

    pub fn callback(&self) -> ProgressCallback {
        let s = self.clone();
        Box::new(move |p: &Progress| s.push(format!("{} {}", p.file_name, p.message)))
    }

    /// Runs one export, keeping everything it showed.
    pub fn export(&self, client: &Client, source: &str, options: &str) -> Outcome {
        let o = run(
            client,
            source,
            options,
            Some(self.callback()),
            Duration::from_secs(120),
        );
        self.push(o.text());
        o
    }
}

/// None of `secrets` in what `seen` kept nor in the tracing output.
pub fn assert_hidden(what: &str, seen: &Seen, secrets: &[String]) {
    let mut all = seen.0.lock().unwrap().join("\n");
    let traced = String::from_utf8_lossy(&log().lock().unwrap()).into_owned();
    assert!(
        traced.len() > 1000,
        "{what}: tracing captured almost nothing: {traced}"
    );
    all.push_str(&traced);
    for s in secrets {
        if let Some(at) = all.find(s.as_str()) {
            let from = all[..at]
                .char_indices()
                .rev()
                .nth(200)
                .map_or(0, |(i, _)| i);
            panic!(
                "{what}: {s:?} leaked: …{}…",
                &all[from..(at + s.len() + 200).min(all.len())]
            );
        }
    }
}

/// A wrong credential gives `Auth` (at the login or at each export), and no secret shows
/// anywhere, the probes' failures included.
pub fn wrong_credential(p: &dyn Conformance) {
    let what = p.provider();
    let cred = match p.wrong_credential() {
        Ok(c) => c,
        Err(why) => {
            eprintln!("{what}: no credential check: {why}");
            return;
        }
    };
    assert!(!cred.logins.is_empty());
    log();
    let seen = Seen::default();
    let out = tempfile::tempdir().unwrap();
    for (config, exports) in &cred.logins {
        match Client::new(what, config) {
            Err(e) => {
                seen.push(format!("{e} {e:?}"));
                assert_eq!(e.kind(), ErrorKind::Auth, "{what}: the login: {e}");
            }
            Ok(c) => {
                assert!(
                    !exports.is_empty(),
                    "{what}: the wrong credential logged in and there is no export to try"
                );
                for (source, o) in exports {
                    let r = seen.export(&c, source, &p.options(out.path(), o.clone()));
                    let auth = r.kind() == Some(ErrorKind::Auth);
                    match gap(p, "wrong_credential", source) {
                        Some(why) => gap_still_open(p, source, why, !auth, &r.text()),
                        None => assert!(auth, "{what}: {}: not Auth: {}", short(source), r.text()),
                    }
                }
            }
        }
    }
    for probe in &cred.probes {
        match probe {
            Probe::Config(c) => match Client::new(what, c) {
                Err(e) => seen.push(format!("{e} {e:?}")),
                Ok(_) => panic!("{what}: a config meant to be refused was taken"),
            },
            Probe::Export {
                config,
                source,
                options,
            } => match Client::new(what, config) {
                Err(e) => seen.push(format!("{e} {e:?}")),
                Ok(c) => {
                    let r = seen.export(&c, source, &p.options(out.path(), options.clone()));
                    assert!(!r.done(), "{what}: {} was meant to fail", short(source));
                }
            },
        }
    }
    assert_hidden(what, &seen, &cred.secrets);
}

// ---- Check 3 -------------------------------------------------------------------------------

/// Every unknown source is `NotFound`, and nothing was created at the peer nor in the output
/// folder. (Known gaps run last, after the peer was checked: what they create is theirs.)
pub fn unknown_source(p: &dyn Conformance) {
    let what = p.provider();
    let out = tempfile::tempdir().unwrap();
    let client = p.client();
    let (gaps, sources): (Vec<_>, Vec<_>) = p
        .unknown_sources()
        .into_iter()
        .partition(|(s, _)| gap(p, "unknown_source", s).is_some());
    assert!(!sources.is_empty());
    let attempt = |source: &str, o: &Value| {
        run(
            &client,
            source,
            &p.options(out.path(), o.clone()),
            None,
            Duration::from_secs(120),
        )
    };
    for (source, o) in &sources {
        let r = attempt(source, o);
        assert_eq!(
            r.kind(),
            Some(ErrorKind::NotFound),
            "{what}: {source}: {}",
            r.text()
        );
    }
    let ids: Vec<String> = sources.into_iter().map(|(s, _)| s).collect();
    let made = p.created(&ids);
    assert!(
        made.is_empty(),
        "{what}: unknown sources created at the peer: {made:?}"
    );
    let left = names_in(out.path());
    assert!(
        left.is_empty(),
        "{what}: files for unknown sources: {left:?}"
    );
    for (source, o) in &gaps {
        let r = attempt(source, o);
        let made = p.created(std::slice::from_ref(source));
        let fails = r.kind() != Some(ErrorKind::NotFound) || !made.is_empty();
        let why = gap(p, "unknown_source", source).unwrap();
        gap_still_open(p, source, why, fails, &format!("{} {made:?}", r.text()));
    }
}

// ---- Check 4 -------------------------------------------------------------------------------

/// Each hostile id, in each source form, is refused (`InvalidArgument`/`NotFound`) or handled
/// as data (a done export whose files are all in the output folder); refused ones create
/// nothing at the peer, none leaves anything alive, and nothing appears outside the output
/// folder (a nested folder, so a `..` has somewhere to land, and the working directory).
pub fn hostile_ids(p: &dyn Conformance) {
    let what = p.provider();
    let root = tempfile::tempdir().unwrap();
    let out = root.path().join("a/b/out");
    std::fs::create_dir_all(&out).unwrap();
    let cwd = std::env::current_dir().unwrap();
    let near: Vec<PathBuf> = ["x", "../x", "out", "nul"]
        .iter()
        .map(|n| cwd.join(n))
        .filter(|p| !p.exists())
        .collect();
    let client = p.client();
    let (mut refused, mut all) = (Vec::new(), Vec::new());
    for id in hostile() {
        for (source, o) in p.hostile_sources(&id) {
            let before = tree(&out);
            let r = run(
                &client,
                &source,
                &p.options(&out, o),
                None,
                Duration::from_secs(120),
            );
            eprintln!(
                "{what}: {}: {}",
                short(&source),
                if r.done() {
                    "handled as data (done)".to_string()
                } else {
                    format!("refused ({:?})", r.kind())
                }
            );
            if r.done() {
                let Outcome::Ended(res) = &r else {
                    unreachable!()
                };
                for f in &res.files {
                    let inside = f.path.strip_prefix(&out).is_ok_and(|rest| {
                        rest.components()
                            .all(|c| matches!(c, std::path::Component::Normal(_)))
                    });
                    assert!(
                        inside && f.path.is_file(),
                        "{what}: {}: a file outside the output folder: {}",
                        short(&source),
                        f.path.display()
                    );
                }
            } else {
                assert!(
                    matches!(
                        r.kind(),
                        Some(ErrorKind::InvalidArgument | ErrorKind::NotFound)
                    ),
                    "{what}: {}: neither refused nor handled as data: {}",
                    short(&source),
                    r.text()
                );
                assert_eq!(
                    tree(&out),
                    before,
                    "{what}: {}: a refused export left files",
                    short(&source)
                );
                refused.push(source.clone());
            }
            all.push(source);
        }
    }
    let made = p.created(&refused);
    assert!(
        made.is_empty(),
        "{what}: refused hostile sources created at the peer: {made:?}"
    );
    let left = p.leftovers(&all);
    assert!(
        left.is_empty(),
        "{what}: hostile sources left at the peer: {left:?}"
    );
    for f in tree(root.path()) {
        assert!(
            f.starts_with(&out) || out.starts_with(&f),
            "{what}: a file outside the output folder: {}",
            f.display()
        );
    }
    for n in near {
        assert!(
            !n.exists(),
            "{what}: made {} next to the tests",
            n.display()
        );
    }
}

// ---- Check 5 -------------------------------------------------------------------------------

/// How long a silent peer may hold an export or a login: the library tries an API call 8
/// times with a backoff capped at 5 s (about 25 s with a 300 ms attempt deadline); 60 s is
/// generous for a loaded 2-core machine, and far from "never".
pub const SILENT_BOUND: Duration = Duration::from_secs(60);

/// A TCP listener on 127.0.0.1 that accepts every connection, reads nothing, answers nothing
/// and closes nothing (until dropped).
pub struct SilentPeer {
    pub addr: SocketAddr,
    accepted: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
}

impl SilentPeer {
    pub fn start() -> SilentPeer {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.set_nonblocking(true).unwrap();
        let addr = l.local_addr().unwrap();
        let (accepted, stop) = (
            Arc::new(AtomicUsize::new(0)),
            Arc::new(AtomicBool::new(false)),
        );
        let (a, s) = (accepted.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut held: Vec<TcpStream> = Vec::new();
            while !s.load(Ordering::SeqCst) {
                match l.accept() {
                    Ok((c, _)) => {
                        a.fetch_add(1, Ordering::SeqCst);
                        held.push(c);
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(10)),
                }
            }
        });
        SilentPeer {
            addr,
            accepted,
            stop,
        }
    }

    /// Connections accepted so far.
    pub fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }
}

impl Drop for SilentPeer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

/// A client pointed at a silent peer fails with `Timeout` or `Network` within
/// [`SILENT_BOUND`], at the login or at the export, for each of the provider's endpoints.
pub fn silent_peer(p: &dyn Conformance) {
    let peer = SilentPeer::start();
    let cases = p.silent(peer.addr);
    assert!(!cases.is_empty());
    for s in cases {
        let what = format!("{} ({})", p.provider(), s.what);
        let reached = peer.accepted();
        let out = tempfile::tempdir().unwrap();
        let t = Instant::now();
        let r = match Client::new(p.provider(), &s.config) {
            Err(e) => Outcome::Refused(e),
            Ok(c) => run(
                &c,
                &s.source,
                &p.options(out.path(), s.options.clone()),
                None,
                SILENT_BOUND + Duration::from_secs(30),
            ),
        };
        let took = t.elapsed();
        assert!(
            matches!(r.kind(), Some(ErrorKind::Timeout | ErrorKind::Network)),
            "{what}: a silent peer gave {:?}: {}",
            r.kind(),
            r.text()
        );
        assert!(
            took < SILENT_BOUND,
            "{what}: a silent peer held the export {took:?}: {}",
            r.text()
        );
        if s.connects {
            assert!(
                peer.accepted() > reached,
                "{what}: the client never reached the silent peer: {}",
                r.text()
            );
        }
        eprintln!(
            "{what}: a silent peer ended the export in {took:?}: {}",
            r.text()
        );
    }
}
