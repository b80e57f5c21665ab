//! The app as a state machine: a fake event stream in, the effects it asks for out.

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use serde_json::json;

use super::app::{App, Dialog, Effect, Event, Quitting, View};
use super::form::Schema;
use super::sources::{AccountView, ListError, Listing};
use super::watch::{Ended, queued};

pub(super) fn key(c: char) -> Event {
    Event::Key(KeyEvent::new(KeyCode::Char(c), KeyModifiers::NONE))
}

pub(super) fn code(k: KeyCode) -> Event {
    Event::Key(KeyEvent::new(k, KeyModifiers::NONE))
}

pub(super) fn ctrl_c() -> Event {
    Event::Key(KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL))
}

pub(super) fn typed(app: &mut App, text: &str) -> Vec<Effect> {
    text.chars().flat_map(|c| app.update(key(c))).collect()
}

pub(super) fn source(id: &str, kind: &'static str, name: &str, size: u64) -> hypersdk::SourceInfo {
    hypersdk::SourceInfo {
        id: id.into(),
        kind,
        name: name.into(),
        size_bytes: Some(size),
        state: Some("poweredOff".into()),
    }
}

/// A vCenter that lists four VMs and an http account that cannot list (its profile sources
/// stand in), as `hypersdk tui --profile demo.toml` starts.
pub(super) fn demo_app() -> App {
    let mut vc = AccountView::new("vc", "vsphere", vec![]);
    vc.output = Some("/backups/vsphere".into());
    let http = AccountView::new(
        "files",
        "http",
        vec![
            "http://127.0.0.1:8000/file0.bin".into(),
            "http://127.0.0.1:8000/file1.bin?sig=s3cret".into(),
        ],
    );
    let mut app = App::new(vec![vc, http], Schema::from_library(), true);
    let effects = app.start();
    assert_eq!(effects, [Effect::List(0), Effect::List(1)]);
    app.update(Event::Listed {
        account: 0,
        result: Ok(vec![
            source("/DC0/vm/DC0_H0_VM0", "vm", "DC0_H0_VM0", 3 << 20),
            source("/DC0/vm/DC0_H0_VM1", "vm", "DC0_H0_VM1", 64 << 20),
            source("/DC0/vm/DC0_C0_RP0_VM0", "vm", "DC0_C0_RP0_VM0", 64 << 20),
            source("/DC0/vm/web-01", "vm", "web-01", 40 << 30),
        ]),
    });
    app.update(Event::Listed {
        account: 1,
        result: Err(ListError::Unsupported(
            "the http provider has no source listing".into(),
        )),
    });
    app
}

pub(super) fn progress(done: u64, total: u64, message: &str) -> hypersdk::Progress {
    let mut p = queued();
    p.phase = hypersdk::Phase::Downloading;
    p.bytes_done = done;
    p.bytes_total = total;
    p.file_index = 1;
    p.file_count = 1;
    p.file_name = "disk-0.vmdk".into();
    p.file_bytes_done = done;
    p.file_bytes_total = total;
    p.rate_bytes_per_sec = 4.0 * 1048576.0;
    p.eta_seconds = 12.0;
    p.message = message.into();
    p
}

pub(super) fn ended(status: &str, error: Option<&str>, cleanup: &[&str]) -> Ended {
    Ended {
        status: status.into(),
        error: error.map(str::to_string),
        cleanup: cleanup
            .iter()
            .map(|s| (s.to_string(), true, None))
            .collect(),
        files: vec![],
        json: format!("{{\n  \"status\": \"{status}\"\n}}"),
        history_id: Some(7),
        code: if status == "done" { 0 } else { 9 },
    }
}

/// Marks the first two VMs and exports them through the form.
pub(super) fn start_two(app: &mut App) -> Vec<Effect> {
    app.update(key(' '));
    app.update(key(' '));
    app.update(key('e'));
    assert!(app.form.is_some(), "e opens the form");
    app.update(code(KeyCode::Enter)); // check: the dry run
    assert!(app.form.as_ref().unwrap().confirm.is_some());
    app.update(code(KeyCode::Enter)) // start
}

/// Three exports: one downloading, one done, one failed.
pub(super) fn watching() -> App {
    let mut app = demo_app();
    start_two(&mut app);
    app.update(key(':'));
    typed(&mut app, "s");
    app.update(code(KeyCode::Enter));
    app.update(code(KeyCode::Tab));
    app.update(key(' '));
    app.update(key('e'));
    app.update(code(KeyCode::Enter));
    app.update(code(KeyCode::Enter));
    app.update(Event::Progress {
        row: 0,
        progress: progress(3 << 19, 3 << 20, "NFC lease 50%"),
    });
    app.update(Event::Progress {
        row: 1,
        progress: progress(64 << 20, 64 << 20, ""),
    });
    app.update(Event::Ended {
        row: 1,
        ended: ended("done", None, &[]),
    });
    app.update(Event::Ended {
        row: 2,
        ended: ended(
            "failed",
            Some("GET http://127.0.0.1:8000/file0.bin: 404 Not Found"),
            &[],
        ),
    });
    app.status.clear();
    app
}

#[test]
fn typing_filters_and_space_marks() {
    let mut app = demo_app();
    assert_eq!(app.sources.visible().len(), 4);
    app.update(key('/'));
    typed(&mut app, "VM1");
    let names: Vec<_> = app
        .sources
        .visible()
        .iter()
        .map(|r| r.name.clone())
        .collect();
    assert_eq!(names, ["DC0_H0_VM1"], "any case, as you type");
    app.update(code(KeyCode::Enter));
    app.update(key(' '));
    assert!(app.sources.is_marked(0, "/DC0/vm/DC0_H0_VM1"));
    app.update(key('/'));
    app.update(code(KeyCode::Esc));
    assert_eq!(app.sources.visible().len(), 4, "Esc clears the filter");
    // http cannot list: the profile's sources stand in, shown without their secrets.
    app.update(code(KeyCode::Tab));
    let a = app.sources.account().unwrap();
    assert!(matches!(a.listing, Listing::FromProfile(_)));
    let ids: Vec<_> = a.rows.iter().map(|r| r.shown_id.clone()).collect();
    assert_eq!(ids[1], "http://127.0.0.1:8000/file1.bin");
    assert_eq!(a.rows[1].id, "http://127.0.0.1:8000/file1.bin?sig=s3cret");
}

#[test]
fn the_form_starts_the_marked_sources_in_one_batch() {
    let mut app = demo_app();
    let effects = start_two(&mut app);
    let [Effect::Start(starts)] = effects.as_slice() else {
        panic!("{effects:?}")
    };
    let ids: Vec<_> = starts.iter().map(|s| s.source.as_str()).collect();
    assert_eq!(ids, ["/DC0/vm/DC0_H0_VM0", "/DC0/vm/DC0_H0_VM1"]);
    assert_eq!(starts[0].options["output_dir"], "/backups/vsphere");
    assert_eq!(starts[0].options["priority"], 0);
    assert_eq!(app.view, View::Watch);
    assert_eq!(app.watch.rows.len(), 2);
    assert!(app.sources.marks.is_empty());
}

#[test]
fn the_form_refuses_keys_the_provider_does_not_take() {
    let mut app = demo_app();
    app.update(key(' '));
    app.update(key('e'));
    // To the options field: output, overwrite, priority, options.
    for _ in 0..3 {
        app.update(code(KeyCode::Tab));
    }
    typed(&mut app, "formatt=ova");
    app.update(code(KeyCode::Enter));
    let form = app.form.as_ref().unwrap();
    let err = form.error.as_deref().unwrap_or_default();
    assert!(
        err.contains("unknown option \"formatt\" for vsphere"),
        "{err}"
    );
    assert!(form.confirm.is_none(), "nothing starts");
    // A key vSphere takes, and a common one, pass; the priority must be a number.
    for _ in 0..5 {
        app.update(code(KeyCode::Backspace));
    }
    typed(&mut app, "=ova max_attempts=3");
    app.update(code(KeyCode::Enter));
    let plan = app
        .form
        .as_ref()
        .unwrap()
        .confirm
        .clone()
        .expect("accepted");
    assert_eq!(plan.options["format"], "ova");
    assert_eq!(plan.options["max_attempts"], 3);
}

#[test]
fn cancel_asks_first_and_cancels_one_or_all() {
    let mut app = watching();
    assert_eq!(app.watch.running(), 1);
    app.watch.selected = 0;
    assert!(app.update(key('c')).is_empty(), "asks first");
    assert_eq!(app.dialog, Some(Dialog::Cancel(Some(0))));
    assert!(app.update(key('n')).is_empty(), "any other key keeps it");
    app.update(key('c'));
    assert_eq!(app.update(key('y')), [Effect::Cancel(0)]);
    // A done export cannot be cancelled; C asks for every running one.
    app.watch.selected = 1;
    app.update(key('c'));
    assert_eq!(app.dialog, None);
    let mut app = watching();
    app.update(key('C'));
    assert_eq!(app.dialog, Some(Dialog::Cancel(None)));
    assert_eq!(app.update(code(KeyCode::Enter)), [Effect::Cancel(0)]);
}

#[test]
fn quitting_while_exports_run_asks_then_waits_for_cleanup() {
    let mut app = watching();
    assert!(app.update(key('q')).is_empty());
    assert_eq!(app.dialog, Some(Dialog::Quit));
    assert_eq!(app.update(key('c')), [Effect::Cancel(0)]);
    assert_eq!(app.quitting, Some(Quitting::AfterCancel));
    let mut p = progress(3 << 19, 3 << 20, "abort NFC lease session[1]");
    p.phase = hypersdk::Phase::Finalizing;
    app.update(Event::Progress {
        row: 0,
        progress: p,
    });
    let effects = app.update(Event::Ended {
        row: 0,
        ended: ended(
            "cancelled",
            Some("cancelled"),
            &["abort NFC lease session[1]"],
        ),
    });
    assert_eq!(effects, [Effect::Exit], "leaves once the cleanup is done");
    assert_eq!(
        app.watch.rows[0].steps,
        [
            "abort NFC lease session[1]",
            "undone: abort NFC lease session[1]"
        ]
    );
    // Nothing running: q leaves at once.
    assert_eq!(demo_app().update(key('q')), [Effect::Exit]);
    // "Let them finish": leaves when the last one ends, without cancelling.
    let mut app = watching();
    app.update(key('q'));
    assert!(app.update(key('w')).is_empty());
    let effects = app.update(Event::Ended {
        row: 0,
        ended: ended("done", None, &[]),
    });
    assert_eq!(effects, [Effect::Exit]);
}

#[test]
fn ctrl_c_cancels_and_twice_exits_at_once() {
    let mut app = watching();
    assert_eq!(app.update(ctrl_c()), [Effect::Cancel(0)]);
    assert_eq!(app.update(ctrl_c()), [Effect::ExitNow]);
    assert_eq!(app.exit_code(), 130);
}

/// Signals and a lost terminal cancel and wait, however many arrive (a closed terminal can
/// send SIGHUP twice): they never turn into the exit that skips cleanup.
#[test]
fn signals_cancel_and_wait_however_many_arrive() {
    let mut app = watching();
    assert_eq!(app.update(Event::Stop), [Effect::Cancel(0)]);
    for _ in 0..3 {
        assert!(!app.update(Event::Stop).contains(&Effect::ExitNow));
    }
    assert_eq!(app.quitting, Some(Quitting::AfterCancel));
    // The keyboard's second Ctrl+C still exits at once.
    assert_eq!(app.update(ctrl_c()), [Effect::ExitNow]);
}

#[test]
fn read_only_starts_and_cancels_nothing() {
    let mut app = watching();
    app.read_only = true;
    app.view = View::Sources;
    app.update(key(' '));
    app.update(key('e'));
    assert!(app.form.is_none());
    assert!(app.status.contains("read-only"), "{}", app.status);
    app.view = View::Watch;
    app.watch.selected = 0;
    app.update(key('c'));
    app.update(key('C'));
    assert_eq!(app.dialog, None);
}

#[test]
fn views_switch_with_colon_and_history_resumes_what_did_not_finish() {
    let mut app = demo_app();
    app.update(key(':'));
    let effects = typed(&mut app, "hi");
    assert!(effects.is_empty());
    assert_eq!(app.update(code(KeyCode::Enter)), [Effect::LoadHistory]);
    assert_eq!(app.view, View::History);
    app.update(Event::History(Ok(vec![
        json!({"id": 1, "time": 0, "provider": "http", "source": "http://h/a.img",
               "status": "done", "files": [{"path": "/b/a.img"}], "bytes_total": 10}),
        json!({"id": 2, "time": 0, "provider": "vsphere", "source": "/DC0/vm/x",
               "status": "cancelled", "files": [], "error": {"message": "cancelled"}}),
    ])));
    // Newest first.
    assert_eq!(app.history.records[0].id, 2);
    let effects = app.update(key('R'));
    assert_eq!(effects, [Effect::Resume { row: 0, id: 2 }]);
    assert_eq!(app.view, View::Watch);
    assert_eq!(app.watch.rows[0].label, "/DC0/vm/x (resume of 2)");
    app.update(key(':'));
    typed(&mut app, "h");
    app.update(code(KeyCode::Enter));
    app.update(key('j'));
    assert!(
        app.update(key('R')).is_empty(),
        "a done export is not resumed"
    );
    assert!(matches!(app.dialog, Some(Dialog::Message(_))));
    // A refused resume shows why on its row.
    app.update(Event::Refused {
        row: 0,
        why: "export 2's source held a secret".into(),
    });
    assert!(app.watch.rows[0].failed());
}
