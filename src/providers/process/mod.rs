//! Child processes (PowerShell for Hyper-V, any helper a provider needs), run one safe way:
//! - arguments only, never a shell, so no name or path is ever parsed as code;
//! - input (and every secret) on stdin, never in argv or the environment, where `ps` and
//!   `/proc` would show it;
//! - stdout read as JSON lines (one value per line, bounded length), stderr kept (last 64 KiB)
//!   with every secret replaced by `***` before it reaches an error or a log;
//! - a deadline; and on cancel, timeout or drop the whole process group (Windows: the job
//!   object, `job.rs`) is killed, so grandchildren (a remote session, a copy) do not outlive
//!   the export.

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::StreamExt as _;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::sync::mpsc;
use tokio_util::codec::{FramedRead, LinesCodec};
use tokio_util::sync::CancellationToken;

use crate::error::{Error, Result};
use crate::sync::lock;

#[cfg(windows)]
mod job;

/// Longest stdout line accepted.
const MAX_LINE: usize = 1 << 20;
/// How much of stderr is kept (the end of it).
const STDERR_TAIL: usize = 64 << 10;

/// What to run.
#[derive(Default)]
pub(crate) struct ProcessSpec {
    pub program: PathBuf,
    pub args: Vec<OsString>,
    /// Written to stdin, which is then closed. Carries inputs and secrets.
    pub stdin: Vec<u8>,
    /// Texts that must never appear in what we report (passwords, tokens).
    pub secrets: Vec<String>,
    /// The whole run, from spawn to exit.
    pub timeout: Duration,
    pub current_dir: Option<PathBuf>,
    /// Extra environment (never secrets).
    pub env: Vec<(OsString, OsString)>,
}

impl std::fmt::Debug for ProcessSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProcessSpec")
            .field("program", &self.program)
            .field("args", &self.args)
            .field("stdin_bytes", &self.stdin.len())
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

/// One line of the child's stdout.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Line {
    Json(serde_json::Value),
    /// A line that is not JSON (a warning a tool printed), redacted.
    Text(String),
}

/// How a finished process ended (exit status 0).
#[derive(Debug)]
pub(crate) struct Finished {
    /// Lines not yet taken with `next_line`.
    #[cfg_attr(not(test), allow(dead_code))]
    pub lines: Vec<Line>,
    /// The end of stderr, redacted.
    #[cfg_attr(not(test), allow(dead_code))]
    pub stderr: String,
}

/// A running child. Dropping it kills its process group.
pub(crate) struct Running {
    name: String,
    child: tokio::process::Child,
    /// The process group the child leads (Unix; Windows has `job`).
    #[cfg_attr(not(unix), allow(dead_code))]
    pgid: Option<i32>,
    /// The child (the group's leader) was reaped: its pid, and so the group id, may belong to
    /// a stranger now; the group is never signalled again.
    #[cfg_attr(not(unix), allow(dead_code))]
    reaped: bool,
    /// The job object holding the child and what it starts (Windows).
    #[cfg(windows)]
    job: Option<job::Job>,
    lines: mpsc::Receiver<Result<Line>>,
    stderr: Arc<Mutex<Vec<u8>>>,
    stderr_done: Option<tokio::task::JoinHandle<()>>,
    secrets: Arc<Vec<String>>,
    deadline: tokio::time::Instant,
    timeout: Duration,
}

impl Running {
    /// Starts `spec`; its stdin is written in the background and closed.
    pub fn spawn(spec: ProcessSpec) -> Result<Running> {
        let name = spec
            .program
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| spec.program.display().to_string());
        let mut cmd = tokio::process::Command::new(&spec.program);
        cmd.args(&spec.args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        for (k, v) in &spec.env {
            cmd.env(k, v);
        }
        if let Some(d) = &spec.current_dir {
            cmd.current_dir(d);
        }
        #[cfg(unix)]
        cmd.process_group(0);
        // No console window pops up when the caller is a GUI program (CREATE_NO_WINDOW); the
        // pipes carry everything.
        #[cfg(windows)]
        cmd.creation_flags(0x0800_0000);
        let mut child = cmd.spawn().map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => Error::NotFound(format!(
                "{} cannot be run: not found",
                spec.program.display()
            )),
            _ => Error::Io(format!("cannot run {}: {e}", spec.program.display())),
        })?;
        let pgid = child.id().map(|p| p as i32);
        #[cfg(windows)]
        let job = child.raw_handle().and_then(|h| match job::Job::holding(h) {
            Ok(j) => Some(j),
            Err(e) => {
                // Still killed itself on cancel; only what it starts could stay.
                tracing::warn!(program = %name, error = %e, "cannot put the child in a job object");
                None
            }
        });
        let secrets = Arc::new(
            spec.secrets
                .into_iter()
                .filter(|s| !s.is_empty())
                .collect::<Vec<_>>(),
        );

        if let Some(mut stdin) = child.stdin.take() {
            let input = spec.stdin;
            tokio::spawn(async move {
                // A child that exits without reading its input is not an error here; its exit
                // status says what happened.
                let _ = stdin.write_all(&input).await;
                let _ = stdin.shutdown().await;
            });
        }
        let (tx, rx) = mpsc::channel(256);
        if let Some(stdout) = child.stdout.take() {
            let secrets = secrets.clone();
            let name = name.clone();
            tokio::spawn(async move {
                let mut framed = FramedRead::new(stdout, LinesCodec::new_with_max_length(MAX_LINE));
                while let Some(line) = framed.next().await {
                    let item = match line {
                        Ok(l) => Ok(parse_line(&l, &secrets)),
                        Err(e) => Err(Error::Remote(format!("{name} output: {e}"))),
                    };
                    let stop = item.is_err();
                    if tx.send(item).await.is_err() || stop {
                        return;
                    }
                }
            });
        }
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let stderr_done = child.stderr.take().map(|mut err| {
            let keep = stderr.clone();
            tokio::spawn(async move {
                let mut buf = [0u8; 8192];
                while let Ok(n) = err.read(&mut buf).await {
                    if n == 0 {
                        break;
                    }
                    let mut k = lock(&keep);
                    k.extend_from_slice(&buf[..n]);
                    if k.len() > 2 * STDERR_TAIL {
                        // Cut at a line's start: a secret cut in two would not be redacted.
                        let cut = k.len() - STDERR_TAIL;
                        let cut = k[cut..]
                            .iter()
                            .position(|b| *b == b'\n')
                            .map_or(k.len(), |p| cut + p + 1);
                        k.drain(..cut);
                    }
                }
            })
        });
        Ok(Running {
            name,
            child,
            pgid,
            reaped: false,
            #[cfg(windows)]
            job,
            lines: rx,
            stderr,
            stderr_done,
            secrets,
            deadline: tokio::time::Instant::now() + spec.timeout,
            timeout: spec.timeout,
        })
    }

    /// The next stdout line; `None` once stdout is closed. Cancel and the deadline kill the
    /// process group and end the wait.
    pub async fn next_line(&mut self, cancel: &CancellationToken) -> Result<Option<Line>> {
        let r = tokio::select! {
            biased;
            _ = cancel.cancelled() => Err(Error::Cancelled),
            _ = tokio::time::sleep_until(self.deadline) => Err(self.timed_out()),
            l = self.lines.recv() => Ok(l),
        };
        match r {
            Ok(l) => l.transpose(),
            Err(e) => {
                self.kill();
                Err(e)
            }
        }
    }

    /// Waits for the exit. Status 0 gives the remaining lines and stderr; any other status is
    /// an error carrying the (redacted) end of stderr.
    pub async fn finish(mut self, cancel: &CancellationToken) -> Result<Finished> {
        let mut lines = Vec::new();
        loop {
            tokio::select! {
                biased;
                _ = cancel.cancelled() => {
                    self.kill();
                    return Err(Error::Cancelled);
                }
                _ = tokio::time::sleep_until(self.deadline) => {
                    self.kill();
                    return Err(self.timed_out());
                }
                l = self.lines.recv() => match l {
                    Some(Ok(l)) => lines.push(l),
                    Some(Err(e)) => {
                        self.kill();
                        return Err(e);
                    }
                    // stdout closed: now the exit status (under the same cancel and deadline:
                    // a child may close stdout and go on running).
                    None => break,
                },
            }
        }
        let status = tokio::select! {
            biased;
            _ = cancel.cancelled() => {
                self.kill();
                return Err(Error::Cancelled);
            }
            _ = tokio::time::sleep_until(self.deadline) => {
                self.kill();
                return Err(self.timed_out());
            }
            s = self.reap() => s?,
        };
        if let Some(h) = self.stderr_done.take() {
            let _ = tokio::time::timeout(Duration::from_secs(5), h).await;
        }
        let stderr = self.stderr_text();
        if !status.success() {
            let how = match status.code() {
                Some(c) => format!("exit status {c}"),
                None => "a signal".to_string(),
            };
            let tail = last_lines(&stderr, 5);
            return Err(Error::Remote(if tail.is_empty() {
                format!("{} ended with {how}", self.name)
            } else {
                format!("{} ended with {how}: {tail}", self.name)
            }));
        }
        Ok(Finished { lines, stderr })
    }

    /// Kills the whole process group (idempotent), as long as its leader is not reaped; on
    /// Windows the whole job (its handle stays valid, whatever happened to the child's id).
    pub fn kill(&mut self) {
        #[cfg(unix)]
        if let Some(pgid) = self.pgid
            && !self.reaped
        {
            signal_group(pgid);
        }
        #[cfg(windows)]
        if let Some(j) = &self.job {
            j.kill();
        }
        let _ = self.child.start_kill();
    }

    /// Waits for the child's exit and reaps it. What it left in its group is killed first,
    /// while the unreaped leader still holds the group's id: after the reap that id may be
    /// recycled for someone else's group, so it is never signalled again.
    async fn reap(&mut self) -> Result<std::process::ExitStatus> {
        #[cfg(unix)]
        if let Some(pid) = self.pgid {
            let exited = tokio::task::spawn_blocking(move || wait_exited_unreaped(pid)).await;
            if matches!(exited, Ok(true)) {
                signal_group(pid);
            }
        }
        let s = self.child.wait().await;
        self.reaped = true;
        // What the child left running in its job goes too, as its group does on Unix.
        #[cfg(windows)]
        if let Some(j) = &self.job {
            j.kill();
        }
        s.map_err(|e| Error::Io(format!("waiting for {}: {e}", self.name)))
    }

    /// The end of stderr so far, with secrets replaced.
    pub fn stderr_text(&self) -> String {
        let raw = String::from_utf8_lossy(&lock(&self.stderr)).into_owned();
        let start = raw.len().saturating_sub(STDERR_TAIL);
        // From a line's start only: a secret cut in two would not be redacted.
        let cut = match start {
            0 => 0,
            s => raw[s..].find('\n').map_or(raw.len(), |p| s + p + 1),
        };
        redact(&raw[cut..], &self.secrets)
    }

    fn timed_out(&self) -> Error {
        Error::Timeout(format!(
            "{} did not finish within {} s",
            self.name,
            self.timeout.as_secs()
        ))
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        // Whatever it left running in its group goes with it: a cancelled export must not
        // leave a copy or a remote session behind.
        self.kill();
    }
}

/// SIGKILL to process group `pgid`, whose leader must not have been reaped.
#[cfg(unix)]
fn signal_group(pgid: i32) {
    #[cfg(test)]
    tests::record_group_signal(pgid);
    // SAFETY: a plain syscall; the group is the one our unreaped child leads.
    unsafe {
        libc::kill(-pgid, libc::SIGKILL);
    }
}

/// Blocks until child `pid` has exited, without reaping it (`WNOWAIT`): true once it is a
/// zombie, false if it cannot be waited for (already reaped).
#[cfg(unix)]
fn wait_exited_unreaped(pid: i32) -> bool {
    loop {
        // SAFETY: waitid writes only into `info`, which lives for the call.
        let r = unsafe {
            let mut info: libc::siginfo_t = std::mem::zeroed();
            libc::waitid(
                libc::P_PID,
                pid as libc::id_t,
                &mut info,
                libc::WEXITED | libc::WNOWAIT,
            )
        };
        if r == 0 {
            return true;
        }
        if std::io::Error::last_os_error().kind() != std::io::ErrorKind::Interrupted {
            return false;
        }
    }
}

/// Runs `spec` to its end: every stdout line and the redacted stderr.
#[cfg_attr(not(test), allow(dead_code))]
pub(crate) async fn run(spec: ProcessSpec, cancel: &CancellationToken) -> Result<Finished> {
    Running::spawn(spec)?.finish(cancel).await
}

pub(crate) fn parse_line(line: &str, secrets: &[String]) -> Line {
    let line = line.trim_end_matches('\r');
    match serde_json::from_str::<serde_json::Value>(line) {
        Ok(mut v) if !line.trim().is_empty() => {
            redact_json(&mut v, secrets);
            Line::Json(v)
        }
        _ => Line::Text(redact(line, secrets)),
    }
}

/// Replaces every secret in every string of `v`, keys included: an error record's `message`
/// may quote what a remote session was opened with.
fn redact_json(v: &mut serde_json::Value, secrets: &[String]) {
    use serde_json::Value;
    if secrets.is_empty() {
        return;
    }
    match v {
        Value::String(s) if secrets.iter().any(|x| s.contains(x.as_str())) => {
            *s = redact(s, secrets);
        }
        Value::Array(a) => a.iter_mut().for_each(|x| redact_json(x, secrets)),
        Value::Object(m) => {
            if m.keys()
                .any(|k| secrets.iter().any(|x| k.contains(x.as_str())))
            {
                *m = std::mem::take(m)
                    .into_iter()
                    .map(|(k, x)| (redact(&k, secrets), x))
                    .collect();
            }
            m.values_mut().for_each(|x| redact_json(x, secrets));
        }
        _ => {}
    }
}

/// Replaces every secret in `text` with `***`.
pub(crate) fn redact(text: &str, secrets: &[String]) -> String {
    // Longest first: a secret that begins another (a password and the password with a domain)
    // must not leave the longer one's tail behind.
    let mut by_length: Vec<&String> = secrets.iter().filter(|s| !s.is_empty()).collect();
    by_length.sort_by_key(|s| std::cmp::Reverse(s.len()));
    let mut out = text.to_string();
    for s in by_length {
        out = out.replace(s.as_str(), "***");
    }
    out
}

fn last_lines(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    lines[lines.len().saturating_sub(n)..].join(" | ")
}

#[cfg(all(test, unix))]
mod tests;
