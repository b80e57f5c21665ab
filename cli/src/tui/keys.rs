//! The keys, as `?` lists them (and the README).

pub(crate) const HELP: &[(&str, &str)] = &[
    ("?", "this help (any key closes it)"),
    (
        ":",
        "switch view: :sources, :watch, :history (a prefix is enough)",
    ),
    ("q", "quit (asks first while exports run)"),
    (
        "Ctrl+C",
        "cancel every export and quit after cleanup; twice: at once",
    ),
    ("↑ ↓ j k", "move; PgUp PgDn Home End page"),
    ("Tab ←→", "sources: next or previous account"),
    (
        "/",
        "sources: filter as you type (Enter keeps it, Esc clears)",
    ),
    ("Space", "sources: mark or unmark"),
    ("Enter", "sources, watch: details of the selected row"),
    ("e", "sources: export the marked sources (the form)"),
    (
        "r",
        "sources: list again; watch: result JSON; history: reload",
    ),
    ("s", "watch: sort by start, provider, phase, progress"),
    (
        "c / C",
        "watch: cancel the selected export / all (asks first)",
    ),
    (
        "R",
        "history: resume the selected failed or cancelled export",
    ),
];
