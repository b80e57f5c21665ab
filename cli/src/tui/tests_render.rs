//! The views rendered into ratatui's `TestBackend` from a fake event stream, compared with the
//! text snapshots in cli/tests/tui_snapshots/ (`HS_UPDATE_SNAPSHOTS=1` rewrites them; review
//! the diff).

use crossterm::event::KeyCode;
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use ratatui::buffer::Buffer;
use ratatui::style::Color;

use super::app::{App, Event};
use super::render;
use super::tests::{code, demo_app, ended, key, source, watching};

fn draw(app: &App, w: u16, h: u16) -> Buffer {
    let mut t = Terminal::new(TestBackend::new(w, h)).unwrap();
    t.draw(|f| render::draw(f, app)).unwrap();
    t.backend().buffer().clone()
}

fn lines(b: &Buffer) -> Vec<String> {
    let w = b.area.width as usize;
    b.content
        .chunks(w)
        .map(|row| {
            row.iter()
                .map(|c| c.symbol())
                .collect::<String>()
                .trim_end()
                .to_string()
        })
        .collect()
}

fn text(b: &Buffer) -> String {
    lines(b).join("\n") + "\n"
}

fn snapshot(name: &str, b: &Buffer) {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/tui_snapshots")
        .join(format!("{name}.txt"));
    let got = text(b);
    if std::env::var_os("HS_UPDATE_SNAPSHOTS").is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, &got).unwrap();
        return;
    }
    let want = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (HS_UPDATE_SNAPSHOTS=1 writes it)", path.display()));
    assert!(
        got == want,
        "{name} differs from {}:\n--- got\n{got}--- want\n{want}",
        path.display()
    );
}

#[test]
fn sources_at_80x24_and_160x40() {
    let mut app = demo_app();
    app.update(key(' '));
    app.update(code(KeyCode::Enter));
    snapshot("sources_80x24", &draw(&app, 80, 24));
    app.update(Event::Resize(160, 40));
    snapshot("sources_160x40", &draw(&app, 160, 40));
}

#[test]
fn a_listing_shows_a_spinner_until_it_arrives() {
    let mut app = demo_app();
    app.update(key('r'));
    app.update(Event::Tick);
    app.update(Event::Tick);
    let l = lines(&draw(&app, 80, 24));
    assert!(l[1].contains(" vc ⠹ "), "{}", l[1]);
    assert!(l[2].contains("⠹ listing…"), "{}", l[2]);
    app.update(Event::Tick);
    assert!(lines(&draw(&app, 80, 24))[1].contains(" vc ⠸ "));
}

#[test]
fn the_form_and_its_dry_run() {
    let mut app = demo_app();
    app.update(key(' '));
    app.update(key(' '));
    app.update(key('e'));
    snapshot("form_80x24", &draw(&app, 80, 24));
    app.update(code(KeyCode::Enter));
    // Until the library answers, a spinner.
    assert!(text(&draw(&app, 80, 24)).contains("asking the library"));
    // What the vSphere provider's dry run says, one refused.
    let vm = |name: &str| hypersdk::DryRun {
        provider: "vsphere".into(),
        source: format!("/DC0/vm/{name}"),
        output_dir: "/backups/vsphere".into(),
        cloud: vec![
            format!(
                "if /DC0/vm/{name} is powered on or suspended: a snapshot without memory, \
                 removed on every outcome"
            ),
            "an export (NFC) lease on the VM or that snapshot: completed or aborted when done"
                .into(),
        ],
        files: vec![
            "<VM name>.ovf".into(),
            "<VM name>-<disk>.vmdk (one per disk)".into(),
            "<VM name>.mf".into(),
        ],
    };
    app.update(Event::DryRun {
        form: app.forms,
        plans: vec![
            Ok(vm("DC0_H0_VM0")),
            Err("unknown option \"fromat\" for vsphere".into()),
        ],
    });
    snapshot("form_dry_run_80x24", &draw(&app, 80, 24));
}

#[test]
fn watch_at_80x24_and_160x40_and_a_resize() {
    let mut app = watching();
    let small = draw(&app, 80, 24);
    snapshot("watch_80x24", &small);
    app.update(Event::Resize(160, 40));
    app.update(code(KeyCode::Enter));
    snapshot("watch_160x40", &draw(&app, 160, 40));
    // One terminal, resized back: the same screen as drawn at that size first.
    app.update(code(KeyCode::Enter));
    let mut t = Terminal::new(TestBackend::new(160, 40)).unwrap();
    t.draw(|f| render::draw(f, &app)).unwrap();
    t.backend_mut().resize(80, 24);
    app.update(Event::Resize(80, 24));
    t.draw(|f| render::draw(f, &app)).unwrap();
    assert_eq!(text(t.backend().buffer()), text(&small));
}

#[test]
fn failures_are_red_unless_no_color() {
    let mut app = watching();
    app.watch.selected = 0;
    let b = draw(&app, 80, 24);
    let failed_row = lines(&b)
        .iter()
        .position(|l| l.contains("files:file0.bin      failed"))
        .unwrap();
    let cell = &b.content[failed_row * 80 + 2];
    assert_eq!(cell.fg, Color::Red, "a failure stands out");
    app.color = false;
    let b = draw(&app, 80, 24);
    for c in &b.content {
        assert_eq!(
            (c.fg, c.bg),
            (Color::Reset, Color::Reset),
            "NO_COLOR: no colour at all"
        );
    }
    assert!(super::color_wanted(None));
    assert!(super::color_wanted(Some("".into())));
    assert!(!super::color_wanted(Some("1".into())));
}

#[test]
fn nothing_from_a_cloud_reaches_the_terminal_raw() {
    let hostile = "web\u{1b}]0;owned\u{7}\u{1b}[2J\u{202e}gpj.exe";
    let mut app = demo_app();
    app.update(Event::Listed {
        account: 0,
        result: Ok(vec![source(hostile, "vm", hostile, 1)]),
    });
    let b = draw(&app, 160, 40);
    let l = lines(&b);
    let want = "web\\u{1b}]0;owned\\u{7}\\u{1b}[2J\\u{202e}gpj.exe";
    // The name column, then the id column: both escaped.
    assert!(
        l[4].starts_with(&format!("│  vm       {want} ")),
        "the name, escaped: {}",
        l[4]
    );
    assert!(
        l[4].contains(&format!("poweredOff     {want}")),
        "the id: {}",
        l[4]
    );
    no_raw_control(&b);
    // The table cuts it at 80 columns, but escaped all the same.
    assert!(lines(&draw(&app, 80, 24))[4].contains("web\\u{1b}]0;"));
    // Progress messages and errors too.
    let mut app = watching();
    let mut p = app.watch.rows[0].progress.clone();
    p.message = format!("task {hostile}");
    app.update(Event::Progress {
        row: 0,
        progress: p,
    });
    app.update(Event::Ended {
        row: 2,
        ended: ended("failed", Some(hostile), &[hostile]),
    });
    app.update(Event::Resize(160, 40));
    let b = draw(&app, 160, 40);
    let all = text(&b);
    assert!(
        all.contains("task web\\u{1b}]0;owned\\u{7}\\u{1b}[2J"),
        "{all}"
    );
    assert!(
        all.contains(&format!("  {want}  ")),
        "the error, escaped: {all}"
    );
    no_raw_control(&b);
}

/// No cell holds a control character or a bidirectional override.
fn no_raw_control(b: &Buffer) {
    for c in &b.content {
        assert!(
            !c.symbol()
                .chars()
                .any(|ch| ch.is_control() || ch == '\u{202e}'),
            "raw {:?} drawn",
            c.symbol()
        );
    }
}

#[test]
fn help_lists_every_key() {
    let mut app = demo_app();
    app.update(key('?'));
    let all = text(&draw(&app, 80, 24));
    for (k, _) in super::keys::HELP {
        assert!(all.contains(k), "{k} missing:\n{all}");
    }
    app.update(key('x'));
    assert_eq!(app.dialog, None, "any key closes it");
}

#[test]
fn the_readme_shows_the_watch_view_as_rendered() {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md")).unwrap();
    let shot = text(&draw(&watching(), 80, 24));
    assert!(
        readme.contains(&format!("```text\n{shot}```")),
        "README's `hypersdk tui` screenshot is not the watch view as drawn now:\n{shot}"
    );
    for (k, _) in super::keys::HELP {
        assert!(
            readme.contains(&format!("| `{k}` |")),
            "README lacks the key {k}"
        );
    }
}

#[test]
fn thousands_of_sources_page_and_the_selection_stays_in_view() {
    let mut app = demo_app();
    let many: Vec<_> = (0..5000)
        .map(|i| source(&format!("vm-{i}"), "vm", &format!("host-{i:04}"), 1 << 30))
        .collect();
    app.update(Event::Listed {
        account: 0,
        result: Ok(many),
    });
    app.update(code(KeyCode::End));
    let l = lines(&draw(&app, 80, 24));
    assert!(l.iter().any(|x| x.contains("host-4999")), "{l:#?}");
    assert!(!l.iter().any(|x| x.contains("host-0000")));
    assert!(l[2].contains("5000 of 5000"), "{}", l[2]);
    app.update(code(KeyCode::PageUp));
    let l = lines(&draw(&app, 80, 24));
    assert!(l.iter().any(|x| x.contains("host-4987")), "{l:#?}");
    // The filter narrows the thousands as you type.
    app.update(key('/'));
    for c in "host-12".chars() {
        app.update(key(c));
    }
    let l = lines(&draw(&app, 80, 24));
    assert!(l[2].contains("100 of 5000"), "{}", l[2]);
}
