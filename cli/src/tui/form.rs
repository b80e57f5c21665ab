//! The export form: output folder, overwrite, priority and the provider's own options, checked
//! against what the library says each provider accepts (`hs_provider_info`) before anything
//! starts; then a dry run of what will be exported where.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value};

/// What the library accepts, from [`hypersdk::provider_info_json`]: the common option keys
/// with their defaults, and each provider's own option keys.
#[derive(Clone, Debug, Default)]
pub(crate) struct Schema {
    pub common: Vec<(String, Value)>,
    pub providers: BTreeMap<String, Vec<String>>,
}

impl Schema {
    pub(crate) fn from_library() -> Schema {
        Schema::parse(&hypersdk::provider_info_json())
    }

    pub(crate) fn parse(json: &str) -> Schema {
        let v: Value = serde_json::from_str(json).unwrap_or_default();
        let common = v["common_options"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|o| Some((o["key"].as_str()?.to_string(), o["default"].clone())))
            .collect();
        let providers = v["providers"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|p| {
                let keys = p["option_keys"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|k| k.as_str().map(str::to_string))
                    .collect();
                Some((p["name"].as_str()?.to_string(), keys))
            })
            .collect();
        Schema { common, providers }
    }

    /// Whether `provider` takes the option `key` (a common option or one of its own).
    pub(crate) fn accepts(&self, provider: &str, key: &str) -> bool {
        self.common.iter().any(|(k, _)| k == key)
            || self
                .providers
                .get(provider)
                .is_some_and(|keys| keys.iter().any(|k| k == key))
    }
}

/// The fields, in the order Tab walks them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Field {
    Output,
    Overwrite,
    Priority,
    Options,
}

pub(crate) const FIELDS: [Field; 4] = [
    Field::Output,
    Field::Overwrite,
    Field::Priority,
    Field::Options,
];

#[derive(Clone, Debug)]
pub(crate) struct Form {
    pub output: String,
    pub overwrite: bool,
    pub priority: String,
    /// `KEY=VALUE` pairs separated by spaces (VALUE as JSON when it parses, as `-o` reads it).
    pub options: String,
    pub focus: usize,
    /// The providers of the marked sources (their option keys are offered and checked).
    pub providers: BTreeSet<String>,
    /// How many sources the form exports.
    pub count: usize,
    pub error: Option<String>,
    /// The checked form, shown as a dry run, waiting for Enter.
    pub confirm: Option<Plan>,
    /// This form's number (see [`super::app::App::forms`]).
    pub number: u64,
    /// The library's dry run of each export, once it has answered (None: asked).
    pub dry: Option<Vec<Planned>>,
    /// The labels of the exports the dry run was asked for, in order.
    pub labels: Vec<String>,
}

/// One export's dry run as the form shows it, every string printable.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Planned {
    Plan {
        source: String,
        provider: String,
        output_dir: String,
        /// What it creates in the cloud, each with when it is undone (empty: nothing).
        cloud: Vec<String>,
        files: Vec<String>,
    },
    /// Why the library would refuse it.
    Refused { source: String, why: String },
}

/// What the confirmed form starts: the options every export gets.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Plan {
    pub options: Map<String, Value>,
    pub output: String,
}

impl Form {
    pub(crate) fn new(output: &str, providers: BTreeSet<String>, count: usize) -> Form {
        Form {
            output: output.to_string(),
            overwrite: false,
            priority: "0".into(),
            options: String::new(),
            focus: 0,
            providers,
            count,
            error: None,
            confirm: None,
            number: 0,
            dry: None,
            labels: Vec::new(),
        }
    }

    /// The library's dry run arrived: one per export, in the order of the starts.
    pub(crate) fn dry_ran(&mut self, plans: Vec<Result<hypersdk::DryRun, String>>) {
        let t = |s: &str| crate::shown::text(s).into_owned();
        let labels = self
            .labels
            .iter()
            .cloned()
            .chain(std::iter::repeat(String::new()));
        self.dry = Some(
            plans
                .into_iter()
                .zip(labels)
                .map(|(p, label)| match p {
                    Ok(d) => Planned::Plan {
                        source: label,
                        provider: t(&d.provider),
                        output_dir: t(&d.output_dir),
                        cloud: d.cloud.iter().map(|c| t(c)).collect(),
                        files: d.files.iter().map(|f| t(f)).collect(),
                    },
                    Err(why) => Planned::Refused {
                        source: label,
                        why: crate::shown::error(&why),
                    },
                })
                .collect(),
        );
    }

    pub(crate) fn field(&self) -> Field {
        FIELDS[self.focus % FIELDS.len()]
    }

    pub(crate) fn next(&mut self, delta: isize) {
        self.focus = (self.focus as isize + delta).rem_euclid(FIELDS.len() as isize) as usize;
    }

    pub(crate) fn type_char(&mut self, c: char) {
        match self.field() {
            Field::Output => self.output.push(c),
            Field::Priority if c.is_ascii_digit() || (c == '-' && self.priority.is_empty()) => {
                self.priority.push(c)
            }
            Field::Options => self.options.push(c),
            Field::Overwrite if c == ' ' => self.overwrite = !self.overwrite,
            _ => {}
        }
        self.error = None;
    }

    pub(crate) fn backspace(&mut self) {
        match self.field() {
            Field::Output => drop(self.output.pop()),
            Field::Priority => drop(self.priority.pop()),
            Field::Options => drop(self.options.pop()),
            Field::Overwrite => {}
        }
        self.error = None;
    }

    /// The option keys the marked providers take besides the form's own fields, for the hint.
    pub(crate) fn offered(&self, schema: &Schema) -> Vec<String> {
        let mut keys: BTreeSet<String> = BTreeSet::new();
        for p in &self.providers {
            keys.extend(schema.providers.get(p).into_iter().flatten().cloned());
        }
        keys.into_iter().collect()
    }

    /// The options every export gets, or what is wrong: a priority that is not a number, an
    /// option that is not KEY=VALUE, a key one of the marked providers does not take (the
    /// library would refuse it at start).
    pub(crate) fn check(&self, schema: &Schema) -> Result<Plan, String> {
        let output = self.output.trim();
        if output.is_empty() {
            return Err("the output folder is empty".into());
        }
        let priority: i32 = self
            .priority
            .trim()
            .parse()
            .map_err(|_| format!("priority {:?} is not a whole number", self.priority))?;
        let pairs: Vec<String> = self.options.split_whitespace().map(String::from).collect();
        let mut options = crate::input::parse_options(&pairs)?;
        for k in options.keys() {
            if ["output_dir", "priority", "overwrite"].contains(&k.as_str()) {
                return Err(format!("{k} is a field of this form, not an option"));
            }
            if let Some(p) = self.providers.iter().find(|p| !schema.accepts(p, k)) {
                let own = schema.providers.get(p).cloned().unwrap_or_default();
                return Err(format!(
                    "unknown option {k:?} for {p} (its own keys: {})",
                    if own.is_empty() {
                        "none".to_string()
                    } else {
                        own.join(", ")
                    }
                ));
            }
        }
        options.insert("output_dir".into(), output.into());
        options.insert("priority".into(), priority.into());
        if self.overwrite {
            options.insert("overwrite".into(), true.into());
        }
        Ok(Plan {
            options,
            output: output.to_string(),
        })
    }
}
