//! The form's dry run and `p`/`P` as effects the app asks for, and the driver carrying out a
//! dry run and a start with the library (an http account: nothing leaves the machine).

use std::sync::mpsc;
use std::time::Duration;

use crossterm::event::KeyCode;
use serde_json::{Value, json};

use super::app::{Effect, Event, Start};
use super::driver::Driver;
use super::form::Planned;
use super::tests::{code, demo_app, key, progress, start_two};
use crate::batch::Account;

#[test]
fn checking_the_form_asks_the_library_for_a_dry_run_of_each_export() {
    let mut app = demo_app();
    app.update(key(' '));
    app.update(key(' '));
    app.update(key('e'));
    let effects = app.update(code(KeyCode::Enter));
    let [Effect::DryRun { form, starts }] = &effects[..] else {
        panic!("{effects:?}")
    };
    let sources: Vec<_> = starts.iter().map(|s| s.source.as_str()).collect();
    assert_eq!(sources, ["/DC0/vm/DC0_H0_VM0", "/DC0/vm/DC0_H0_VM1"]);
    assert_eq!(starts[0].options["output_dir"], "/backups/vsphere");
    let plan = |source: &str| hypersdk::DryRun {
        provider: "vsphere".into(),
        source: source.into(),
        output_dir: "/backups/vsphere".into(),
        cloud: vec!["an export lease on the VM (released at the end, on every path)".into()],
        files: vec!["DC0_H0_VM0/disk-0.vmdk".into()],
    };
    // A dry run of an earlier form is not this one's.
    app.update(Event::DryRun {
        form: form - 1,
        plans: vec![Ok(plan("old"))],
    });
    assert_eq!(app.form.as_ref().unwrap().dry, None);
    app.update(Event::DryRun {
        form: *form,
        plans: vec![
            Ok(plan("/DC0/vm/DC0_H0_VM0")),
            Err("no VM\x1b[2J here".into()),
        ],
    });
    let dry = app.form.as_ref().unwrap().dry.clone().unwrap();
    assert!(matches!(&dry[0], Planned::Plan { source, .. } if source == "vc:DC0_H0_VM0"));
    let Planned::Refused { source, why } = &dry[1] else {
        panic!("{dry:?}")
    };
    assert_eq!(source, "vc:DC0_H0_VM1");
    assert!(!why.contains('\x1b'), "{why:?}");
    // Enter starts both.
    let effects = app.update(code(KeyCode::Enter));
    assert!(matches!(&effects[..], [Effect::Start(s)] if s.len() == 2));
}

/// A form checked twice (edited in between) takes only the second check's dry run: the first
/// one's late answer describes other options.
#[test]
fn a_late_dry_run_of_an_earlier_check_is_dropped() {
    let mut app = demo_app();
    app.update(key(' '));
    app.update(key('e'));
    let effects = app.update(code(KeyCode::Enter));
    let [Effect::DryRun { form: first, .. }] = &effects[..] else {
        panic!("{effects:?}")
    };
    let first = *first;
    // Back to the form (any key leaves the confirm), then checked again.
    app.update(key('x'));
    let effects = app.update(code(KeyCode::Enter));
    let [Effect::DryRun { form: second, .. }] = &effects[..] else {
        panic!("{effects:?}")
    };
    assert_ne!(first, *second);
    let plan = |source: &str| hypersdk::DryRun {
        provider: "vsphere".into(),
        source: source.into(),
        output_dir: "/backups/vsphere".into(),
        cloud: Vec::new(),
        files: Vec::new(),
    };
    app.update(Event::DryRun {
        form: first,
        plans: vec![Ok(plan("stale"))],
    });
    assert_eq!(app.form.as_ref().unwrap().dry, None);
}

#[test]
fn p_raises_and_big_p_lowers_a_queued_export_only() {
    let mut app = demo_app();
    start_two(&mut app);
    // Row 0 queued (as started), selected.
    assert_eq!(
        app.update(key('p')),
        [Effect::SetPriority {
            row: 0,
            priority: 1
        }]
    );
    assert_eq!(
        app.update(key('p')),
        [Effect::SetPriority {
            row: 0,
            priority: 2
        }]
    );
    app.update(Event::Priority {
        row: 0,
        priority: 2,
        applied: true,
    });
    assert!(app.status.contains("priority 2"), "{}", app.status);
    // A change the library did not take (the export started meanwhile): the row shows the
    // priority it has again, and the next press builds on that.
    app.update(key('p'));
    assert_eq!(app.watch.rows[0].priority, 3);
    app.update(Event::Priority {
        row: 0,
        priority: 3,
        applied: false,
    });
    assert_eq!(app.watch.rows[0].priority, 2);
    assert!(app.status.contains("stays 2"), "{}", app.status);
    app.update(key('j'));
    assert_eq!(
        app.update(key('P')),
        [Effect::SetPriority {
            row: 1,
            priority: -1
        }]
    );
    // Running: nothing to reorder.
    app.update(Event::Progress {
        row: 1,
        progress: progress(1 << 20, 3 << 20, ""),
    });
    assert!(app.update(key('p')).is_empty());
    assert!(app.status.contains("not queued"), "{}", app.status);
    app.read_only = true;
    app.update(key('k'));
    assert!(app.update(key('p')).is_empty(), "read-only");
}

fn http_driver(history: fn() -> Result<Vec<Value>, String>) -> (Driver, mpsc::Receiver<Event>) {
    let (tx, rx) = mpsc::channel();
    let account = Account {
        name: "files".into(),
        provider: "http".into(),
        config: Ok("{}".into()),
        sources: vec![],
        output: None,
        options: Default::default(),
    };
    let mut d = Driver::new(tx, vec![account], None);
    d.history = history;
    (d, rx)
}

/// The first event that `pick` takes, skipping the poller's others.
fn next<T>(rx: &mpsc::Receiver<Event>, pick: impl Fn(Event) -> Option<T>) -> T {
    loop {
        let e = rx
            .recv_timeout(Duration::from_secs(60))
            .expect("the driver answers");
        if let Some(t) = pick(e) {
            return t;
        }
    }
}

fn start(options: Value) -> Start {
    Start {
        row: 0,
        account: 0,
        source: "http://127.0.0.1:9/disk.img".into(),
        options: options.as_object().unwrap().clone(),
    }
}

#[test]
fn the_driver_asks_the_library_for_the_dry_run() {
    let (d, rx) = http_driver(|| Ok(vec![]));
    let out = std::env::temp_dir().join("hypersdk-tui-dry-run-not-made");
    d.apply(Effect::DryRun {
        form: 3,
        starts: vec![
            start(json!({"output_dir": out.display().to_string()})),
            start(json!({"output_dir": "/tmp", "no_such_option": 1})),
        ],
    });
    let (form, plans) = next(&rx, |e| match e {
        Event::DryRun { form, plans } => Some((form, plans)),
        _ => None,
    });
    assert_eq!(form, 3);
    let p = plans[0].as_ref().unwrap();
    assert_eq!(p.output_dir, out.display().to_string());
    assert_eq!(p.files, ["disk.img"], "{p:?}");
    assert!(p.cloud.is_empty(), "http makes nothing in a cloud");
    assert!(!out.exists(), "a dry run writes nothing");
    let why = plans[1].as_ref().unwrap_err();
    assert!(why.contains("no_such_option"), "{why}");
}

#[test]
fn incremental_from_a_history_id_is_that_exports_record() {
    // Export 5 of the history has no base (only a block-level export records one).
    let (d, rx) = http_driver(|| {
        Ok(vec![
            json!({"id": 5, "provider": "http", "status": "done", "source": "x"}),
        ])
    });
    let out = std::env::temp_dir().join("hypersdk-tui-incremental");
    for (id, want) in [
        (5, "incremental_from: export 5 recorded no base"),
        (6, "incremental_from: no export 6 in the history"),
    ] {
        d.apply(Effect::DryRun {
            form: id,
            starts: vec![start(
                json!({"output_dir": out.display().to_string(), "incremental_from": id}),
            )],
        });
        let plans = next(&rx, |e| match e {
            Event::DryRun { plans, .. } => Some(plans),
            _ => None,
        });
        let why = plans[0].as_ref().unwrap_err();
        assert!(why.starts_with(want), "{why}");
        d.apply(Effect::Start(vec![start(
            json!({"output_dir": out.display().to_string(), "incremental_from": id}),
        )]));
        let why = next(&rx, |e| match e {
            Event::Refused { why, .. } => Some(why),
            _ => None,
        });
        assert!(why.starts_with(want), "{why}");
    }
    let _ = std::fs::remove_dir_all(&out);
}
