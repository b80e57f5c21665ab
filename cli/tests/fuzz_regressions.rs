//! What fuzzing the command's parsers found (fuzz/, scripts/fuzz.sh), as tests of the binary
//! against the project's HTTP peer (examples/serve, built by `cargo build --examples`).

mod common;

use common::{env, json_lines, serve, text};

/// A record cut short inside a character (a crash while appending a source named `ü…`) is not
/// UTF-8. It is skipped like any torn line: the history still lists the other records, and the
/// next export is still recorded (reading the whole file as one string failed on it, so
/// `history` failed and every later record was silently lost).
#[test]
fn a_record_cut_inside_a_character_is_skipped() {
    let e = env();
    let good =
        r#"{"id":1,"time":0,"provider":"http","source":"http://h/a","status":"failed","files":[]}"#;
    let mut torn = br#"{"id":2,"time":0,"provider":"http","source":"http://h/"#.to_vec();
    torn.push(0xc3); // the first byte of `ü`, and the crash
    let mut file = format!("{good}\n").into_bytes();
    file.extend_from_slice(&torn);
    file.push(b'\n');
    std::fs::write(e.state.path().join("history.jsonl"), &file).unwrap();

    let o = e.run(&["history", "--json"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let before = json_lines(&o);
    assert_eq!(before.len(), 1, "{before:?}");
    assert_eq!(before[0]["id"], 1);

    let peer = serve(1, 4096, 0);
    let out = e.out().display().to_string();
    let src = format!("{}/file0.bin", peer.url);
    let o = e.run(&["export", "http", &src, "--output", &out]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let after = json_lines(&e.run(&["history", "--json"]));
    assert_eq!(after.len(), 2, "the export was not recorded: {after:?}");
    assert_eq!(after[0]["status"], "done");
    assert_eq!(after[0]["id"], 2);
}
