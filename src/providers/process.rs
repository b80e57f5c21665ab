//! Child processes (PowerShell for Hyper-V, any helper a provider needs), run one safe way:
//! - arguments only, never a shell, so no name or path is ever parsed as code;
//! - input (and every secret) on stdin, never in argv or the environment, where `ps` and
//!   `/proc` would show it;
//! - stdout read as JSON lines (one value per line, bounded length), stderr kept (last 64 KiB)
//!   with every secret replaced by `***` before it reaches an error or a log;
//! - a deadline; and on cancel, timeout or drop the whole process group is killed, so
//!   grandchildren (a remote session, a copy) do not outlive the export.

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
    /// The process group the child leads (Unix). On Windows only the child itself is killed:
    /// a Job object would be the equivalent of the group, not done yet (DESIGN-NOTES).
    #[cfg_attr(not(unix), allow(dead_code))]
    pgid: Option<i32>,
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
        let mut child = cmd.spawn().map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => Error::NotFound(format!(
                "{} cannot be run: not found",
                spec.program.display()
            )),
            _ => Error::Io(format!("cannot run {}: {e}", spec.program.display())),
        })?;
        let pgid = child.id().map(|p| p as i32);
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
                        let cut = k.len() - STDERR_TAIL;
                        k.drain(..cut);
                    }
                }
            })
        });
        Ok(Running {
            name,
            child,
            pgid,
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
            s = self.child.wait() => {
                s.map_err(|e| Error::Io(format!("waiting for {}: {e}", self.name)))?
            }
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

    /// Kills the whole process group (idempotent).
    pub fn kill(&mut self) {
        #[cfg(unix)]
        if let Some(pgid) = self.pgid {
            // SAFETY: a plain syscall; the group is the one this child leads.
            unsafe {
                libc::kill(-pgid, libc::SIGKILL);
            }
        }
        let _ = self.child.start_kill();
    }

    /// The end of stderr so far, with secrets replaced.
    pub fn stderr_text(&self) -> String {
        let raw = String::from_utf8_lossy(&lock(&self.stderr)).into_owned();
        let start = raw.len().saturating_sub(STDERR_TAIL);
        let mut cut = start;
        while !raw.is_char_boundary(cut) {
            cut += 1;
        }
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

/// Runs `spec` to its end: every stdout line and the redacted stderr.
#[cfg_attr(not(test), allow(dead_code))]
pub(crate) async fn run(spec: ProcessSpec, cancel: &CancellationToken) -> Result<Finished> {
    Running::spawn(spec)?.finish(cancel).await
}

pub(crate) fn parse_line(line: &str, secrets: &[String]) -> Line {
    let line = line.trim_end_matches('\r');
    match serde_json::from_str::<serde_json::Value>(line) {
        Ok(v) if !line.trim().is_empty() => Line::Json(v),
        _ => Line::Text(redact(line, secrets)),
    }
}

/// Replaces every secret in `text` with `***`.
pub(crate) fn redact(text: &str, secrets: &[String]) -> String {
    let mut out = text.to_string();
    for s in secrets {
        if !s.is_empty() {
            out = out.replace(s.as_str(), "***");
        }
    }
    out
}

fn last_lines(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    lines[lines.len().saturating_sub(n)..].join(" | ")
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;

    fn sh(script: &str) -> ProcessSpec {
        ProcessSpec {
            program: "/bin/sh".into(),
            args: vec!["-c".into(), script.into()],
            timeout: Duration::from_secs(20),
            ..Default::default()
        }
    }

    /// Running or sleeping; a zombie (killed, not yet reaped by init) counts as gone.
    fn alive(pid: i32) -> bool {
        match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
            Ok(stat) => stat
                .rsplit(')')
                .next()
                .and_then(|rest| rest.split_whitespace().next())
                .is_some_and(|state| state != "Z" && state != "X"),
            Err(_) => false,
        }
    }

    #[tokio::test]
    async fn stdin_in_json_lines_out_secrets_redacted() {
        let mut spec = sh(r#"read -r secret; read -r name
            printf '{"got":"%s"}\n' "$name"
            echo "warning: plain text"
            echo "login with $secret failed" >&2
            exit 0"#);
        spec.stdin = b"hunter2-secret\na'b;c $(echo injected) `id`\n".to_vec();
        spec.secrets = vec!["hunter2-secret".into()];
        let out = run(spec, &CancellationToken::new()).await.unwrap();
        assert_eq!(
            out.lines,
            vec![
                Line::Json(serde_json::json!({"got": "a'b;c $(echo injected) `id`"})),
                Line::Text("warning: plain text".into())
            ]
        );
        assert!(
            out.stderr.contains("login with *** failed"),
            "{}",
            out.stderr
        );
        assert!(!out.stderr.contains("hunter2"));
    }

    #[tokio::test]
    async fn failure_carries_redacted_stderr() {
        let mut spec = sh("echo 'token tok-123 refused' >&2; exit 3");
        spec.secrets = vec!["tok-123".into()];
        let e = run(spec, &CancellationToken::new()).await.unwrap_err();
        let m = e.to_string();
        assert!(m.contains("exit status 3"), "{m}");
        assert!(m.contains("token *** refused"), "{m}");
        assert!(!m.contains("tok-123"), "{m}");
    }

    #[tokio::test]
    async fn missing_program_is_not_found() {
        let spec = ProcessSpec {
            program: "/nonexistent/pwsh".into(),
            timeout: Duration::from_secs(5),
            ..Default::default()
        };
        let e = run(spec, &CancellationToken::new()).await.unwrap_err();
        assert!(matches!(e, Error::NotFound(_)), "{e}");
    }

    /// A child that leaves a grandchild (`sleep 300`) in the background, and that grandchild's
    /// pid, once the child has said it started.
    async fn child_with_grandchild(
        cancel: &CancellationToken,
    ) -> (Running, i32, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let pidfile = dir.path().join("pid");
        let spec = sh(&format!(
            "sleep 300 & echo $! > {}; echo '{{\"started\":true}}'; wait",
            pidfile.display()
        ));
        let mut running = Running::spawn(spec).unwrap();
        let first = running.next_line(cancel).await.unwrap();
        assert_eq!(
            first,
            Some(Line::Json(serde_json::json!({"started": true})))
        );
        let pid: i32 = std::fs::read_to_string(&pidfile)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        assert!(alive(pid));
        (running, pid, dir)
    }

    async fn assert_dies(pid: i32, what: &str) {
        for _ in 0..100 {
            if !alive(pid) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("the grandchild {pid} outlived {what}");
    }

    /// A grandchild in the background must die with the cancelled child.
    #[tokio::test]
    async fn cancel_kills_the_process_group() {
        let cancel = CancellationToken::new();
        let (running, pid, _dir) = child_with_grandchild(&cancel).await;
        let c = cancel.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(100)).await;
            c.cancel();
        });
        assert!(running.finish(&cancel).await.is_err());
        assert_dies(pid, "its cancelled process group").await;
    }

    #[tokio::test]
    async fn a_child_that_closes_stdout_and_lingers_still_meets_the_deadline() {
        let mut spec = sh("exec >&-; sleep 30");
        spec.timeout = Duration::from_millis(300);
        let e = run(spec, &CancellationToken::new()).await.unwrap_err();
        assert!(matches!(e, Error::Timeout(_)), "{e}");
    }

    #[tokio::test]
    async fn deadline_kills_and_times_out() {
        let mut spec = sh("sleep 30");
        spec.timeout = Duration::from_millis(300);
        let e = run(spec, &CancellationToken::new()).await.unwrap_err();
        assert!(matches!(e, Error::Timeout(_)), "{e}");
    }

    #[tokio::test]
    async fn drop_kills_the_process_group() {
        let (running, pid, _dir) = child_with_grandchild(&CancellationToken::new()).await;
        drop(running);
        assert_dies(pid, "a dropped Running").await;
    }
}
