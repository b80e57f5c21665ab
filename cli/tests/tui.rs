//! `hypersdk tui` before it takes the terminal: what it refuses, with a clear error. (Its views
//! are tested in cli/src/tui/tests*.rs; the whole command in a terminal by scripts/tui-e2e.py.)

mod common;

use common::{env, text};

#[test]
fn tui_refuses_what_would_break_the_screen_or_cannot_be_browsed() {
    let e = env();
    // No --profile and no accounts file.
    let o = e.run(&["tui"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("give --profile FILE"), "{}", text(&o));
    // A profile that does not parse names itself.
    let p = e.out().join("bad.toml");
    std::fs::write(&p, "max_concurrent = \"x\"\n").unwrap();
    let o = e.run(&["tui", "--profile", p.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("bad.toml"), "{}", text(&o));
    // Without a terminal: said, not a panic.
    std::fs::write(&p, "").unwrap();
    let o = e.run(&["tui", "--profile", p.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("needs a terminal"), "{}", text(&o));
    // A log on stderr would draw over the screen: -v or RUST_LOG need --log-file.
    std::fs::write(&p, "").unwrap();
    for (args, rust_log) in [(&["tui", "-v"][..], None), (&["tui"][..], Some("debug"))] {
        let mut c = e.cmd();
        c.args(args).args(["--profile", p.to_str().unwrap()]);
        if let Some(v) = rust_log {
            c.env("RUST_LOG", v);
        }
        let o = c.output().unwrap();
        assert_eq!(o.status.code(), Some(2), "{}", text(&o));
        assert!(text(&o).contains("--log-file"), "{}", text(&o));
    }
}
