//! The sources view's state: one tab per account of the profile, the table of what its
//! provider lists (loaded in the background), the `/` filter and the marks. Everything shown
//! here is made printable when it arrives ([`crate::shown::text`]); the raw id is kept apart,
//! for the library.

use std::collections::BTreeSet;

use crate::shown;

/// A source as the table shows it, with the id the library is given.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct SourceRow {
    /// Exactly what the cloud said: what an export is started with.
    pub id: String,
    /// The id, printable and without a URL's secrets.
    pub shown_id: String,
    pub kind: String,
    pub name: String,
    pub size: Option<u64>,
    pub state: String,
}

impl SourceRow {
    pub(crate) fn of(s: &hypersdk::SourceInfo) -> SourceRow {
        SourceRow {
            id: s.id.clone(),
            shown_id: shown::source(&s.id),
            kind: shown::text(s.kind).into_owned(),
            name: shown::text(&s.name).into_owned(),
            size: s.size_bytes,
            state: shown::text(s.state.as_deref().unwrap_or("-")).into_owned(),
        }
    }

    /// A source the profile's `[[export]]` tables name (a provider without a listing: http).
    pub(crate) fn from_profile(id: &str) -> SourceRow {
        let shown_id = shown::source(id);
        let name = shown_id.rsplit('/').next().unwrap_or(&shown_id).to_string();
        SourceRow {
            id: id.to_string(),
            shown_id,
            kind: "profile".into(),
            name,
            size: None,
            state: "-".into(),
        }
    }
}

/// Where an account's listing stands.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Listing {
    NotAsked,
    Loading,
    Loaded,
    /// The provider cannot list (http): the rows are the profile's sources.
    FromProfile(String),
    Failed(String),
}

/// One `[providers.NAME]` entry: what the tabs and the sources table show of it.
#[derive(Clone, Debug)]
pub(crate) struct AccountView {
    pub name: String,
    pub provider: String,
    /// The sources its `[[export]]` tables name.
    pub profile_sources: Vec<String>,
    /// The first `[[export]]` output folder, the form's default.
    pub output: Option<String>,
    /// The first `[[export]]` options as `KEY=VALUE` pairs, the form's default.
    pub options: String,
    pub listing: Listing,
    pub rows: Vec<SourceRow>,
}

impl AccountView {
    pub(crate) fn new(name: &str, provider: &str, profile_sources: Vec<String>) -> AccountView {
        AccountView {
            name: shown::text(name).into_owned(),
            provider: provider.to_string(),
            profile_sources,
            output: None,
            options: String::new(),
            listing: Listing::NotAsked,
            rows: Vec::new(),
        }
    }
}

#[derive(Default)]
pub(crate) struct Sources {
    pub accounts: Vec<AccountView>,
    pub tab: usize,
    /// The selected row, an index into [`Sources::visible`].
    pub selected: usize,
    pub filter: String,
    /// Typing goes into the filter.
    pub filtering: bool,
    /// (account, source id) of the marked rows.
    pub marks: BTreeSet<(usize, String)>,
    /// The details pane of the selected row is open.
    pub details: bool,
}

impl Sources {
    pub(crate) fn account(&self) -> Option<&AccountView> {
        self.accounts.get(self.tab)
    }

    /// The rows of the current tab that pass the filter (any case, in name, id, kind or state).
    pub(crate) fn visible(&self) -> Vec<&SourceRow> {
        let Some(a) = self.account() else {
            return Vec::new();
        };
        let needle = self.filter.to_lowercase();
        a.rows
            .iter()
            .filter(|r| {
                needle.is_empty()
                    || [&r.name, &r.shown_id, &r.kind, &r.state]
                        .iter()
                        .any(|f| f.to_lowercase().contains(&needle))
            })
            .collect()
    }

    pub(crate) fn selected_row(&self) -> Option<&SourceRow> {
        self.visible().get(self.selected).copied()
    }

    pub(crate) fn is_marked(&self, account: usize, id: &str) -> bool {
        self.marks.contains(&(account, id.to_string()))
    }

    /// Space: marks or unmarks the selected row, then moves down.
    pub(crate) fn toggle_mark(&mut self) {
        let Some(id) = self.selected_row().map(|r| r.id.clone()) else {
            return;
        };
        let key = (self.tab, id);
        if !self.marks.remove(&key) {
            self.marks.insert(key);
        }
        self.move_by(1);
    }

    pub(crate) fn move_by(&mut self, delta: isize) {
        self.selected = super::render::moved(self.selected, delta, self.visible().len());
    }

    pub(crate) fn switch_tab(&mut self, delta: isize) {
        let n = self.accounts.len();
        if n == 0 {
            return;
        }
        self.tab = (self.tab as isize + delta).rem_euclid(n as isize) as usize;
        self.selected = 0;
        self.details = false;
    }

    /// A listing arrived: rows for the account (the profile's sources when it cannot list).
    pub(crate) fn listed(&mut self, account: usize, result: Result<Vec<SourceRow>, ListError>) {
        let Some(a) = self.accounts.get_mut(account) else {
            return;
        };
        match result {
            Ok(rows) => {
                a.rows = rows;
                a.listing = Listing::Loaded;
            }
            Err(ListError::Unsupported(why)) if !a.profile_sources.is_empty() => {
                a.rows = a
                    .profile_sources
                    .iter()
                    .map(|s| SourceRow::from_profile(s))
                    .collect();
                a.listing = Listing::FromProfile(shown::text(&why).into_owned());
            }
            Err(ListError::Unsupported(why)) | Err(ListError::Failed(why)) => {
                a.rows.clear();
                a.listing = Listing::Failed(shown::text(&why).into_owned());
            }
        }
        if account == self.tab {
            self.move_by(0);
        }
    }

    /// The marked rows, in account then table order: (account, row).
    pub(crate) fn marked(&self) -> Vec<(usize, SourceRow)> {
        let mut out = Vec::new();
        for (i, a) in self.accounts.iter().enumerate() {
            for r in &a.rows {
                if self.is_marked(i, &r.id) {
                    out.push((i, r.clone()));
                }
            }
        }
        out
    }
}

/// Why a listing has no rows.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum ListError {
    /// The provider has no listing (the library's `unsupported`).
    Unsupported(String),
    Failed(String),
}
