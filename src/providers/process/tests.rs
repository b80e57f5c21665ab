//! The process runner against real children (/bin/sh): input, redaction, deadlines, and
//! which process groups are signalled when.

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
async fn child_with_grandchild(cancel: &CancellationToken) -> (Running, i32, tempfile::TempDir) {
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

/// Every group signal sent: (pgid, whether its leader had already been reaped then), as
/// the kernel says at that moment (`waitid` on a reaped child fails with ECHILD).
static GROUP_SIGNALS: std::sync::Mutex<Vec<(i32, bool)>> = std::sync::Mutex::new(Vec::new());

pub(super) fn record_group_signal(pgid: i32) {
    // SAFETY: waitid writes only into `info`.
    let r = unsafe {
        let mut info: libc::siginfo_t = std::mem::zeroed();
        libc::waitid(
            libc::P_PID,
            pgid as libc::id_t,
            &mut info,
            libc::WEXITED | libc::WNOHANG | libc::WNOWAIT,
        )
    };
    let reaped = r != 0 && std::io::Error::last_os_error().raw_os_error() == Some(libc::ECHILD);
    lock(&GROUP_SIGNALS).push((pgid, reaped));
}

fn signals_to(pgid: i32) -> Vec<bool> {
    lock(&GROUP_SIGNALS)
        .iter()
        .filter(|(g, _)| *g == pgid)
        .map(|(_, r)| *r)
        .collect()
}

/// Once the leader is reaped its pid, and so its group id, may be recycled: the runner must
/// not signal that group any more (not in finish, not in drop). What the child left in its
/// group is still killed, before the reap.
#[tokio::test]
async fn a_reaped_group_is_never_signalled() {
    let dir = tempfile::tempdir().unwrap();
    let pidfile = dir.path().join("pid");
    for status in [0, 3] {
        let spec = sh(&format!(
            "sleep 300 >/dev/null 2>&1 & echo $! > {}; echo '{{}}'; exit {status}",
            pidfile.display()
        ));
        let running = Running::spawn(spec).unwrap();
        let pgid = running.pgid.unwrap();
        let r = running.finish(&CancellationToken::new()).await;
        assert_eq!(r.is_ok(), status == 0, "{r:?}");
        let grandchild: i32 = std::fs::read_to_string(&pidfile)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        assert_dies(grandchild, "its parent's normal exit").await;
        let sent = signals_to(pgid);
        assert!(!sent.is_empty(), "the leftovers were never signalled");
        assert!(
            sent.iter().all(|reaped| !reaped),
            "group {pgid} was signalled after its leader was reaped: {sent:?}"
        );
    }
}

#[tokio::test]
async fn drop_kills_the_process_group() {
    let (running, pid, _dir) = child_with_grandchild(&CancellationToken::new()).await;
    drop(running);
    assert_dies(pid, "a dropped Running").await;
}

#[test]
fn secrets_in_json_lines_are_redacted_in_every_string() {
    let secrets = vec!["pa\"ss-1".to_string()];
    let line = r#"{"event":"error","message":"logon as x with pa\"ss-1 failed","detail":{"pa\"ss-1":["pa\"ss-1",3]}}"#;
    let Line::Json(v) = parse_line(line, &secrets) else {
        panic!("not JSON");
    };
    assert_eq!(v["message"], "logon as x with *** failed");
    assert_eq!(v["detail"]["***"][0], "***");
    assert_eq!(v["detail"]["***"][1], 3);
    assert!(!v.to_string().contains("ss-1"), "{v}");
}

#[test]
fn a_secret_that_begins_another_leaves_no_tail() {
    let secrets = ["pw".to_string(), "pw-longer-tail".to_string()];
    let out = redact("user pw-longer-tail and pw", &secrets);
    assert_eq!(out, "user *** and ***");
}

#[tokio::test]
async fn a_secret_cut_by_the_stderr_tail_leaves_no_part() {
    // The tail starts 9 bytes into the secret: its end would be kept, unredacted.
    let pad = STDERR_TAIL - 8;
    let mut spec = sh(&format!(
        "printf 'SECRETxyzTAILEND' >&2; head -c {pad} /dev/zero | tr '\\0' y >&2; echo >&2; exit 3"
    ));
    spec.secrets = vec!["SECRETxyzTAILEND".into()];
    let e = run(spec, &CancellationToken::new()).await.unwrap_err();
    let m = e.to_string();
    assert!(m.contains("exit status 3"), "{m}");
    assert!(!m.contains("TAILEND"), "{}", &m[..m.len().min(300)]);
}
