//! Property tests (proptest) for the parsers that read what others wrote: the options JSON, the
//! resume journal on disk, `Content-Range` answers, source URLs, and the names servers give files.
//! These run in `cargo test` on stable, a few hundred generated cases each, shrunk to a minimal
//! input when one fails; coverage-guided fuzzing of the same parsers (and the clouds' answers)
//! is fuzz/ (cargo-fuzz, nightly; scripts/fuzz.sh).

use proptest::prelude::*;
use serde_json::{Map, Value};

use crate::error::Error;
use crate::paths::{sanitize_file_name, validate_file_name};
use crate::seam::options::CommonOptions;
use crate::transfer::journal::{Journal, Validator};

/// Any JSON value, a few levels deep, with the keys the parser knows mixed among others.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("JSON has no NaN", |f| f.is_finite())
            .prop_map(Value::from),
        ".{0,12}".prop_map(Value::String),
        Just(Value::String("0640".into())),
        Just(Value::String("/tmp".into())),
    ];
    leaf.prop_recursive(3, 24, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::vec((key(), inner), 0..6)
                .prop_map(|kv| Value::Object(kv.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(CommonOptions::FIELDS).prop_map(str::to_string),
        "[a-z_]{1,12}",
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    /// Any options document: parsed, or refused with INVALID_ARGUMENT and a message — never a
    /// panic, never another kind of error.
    #[test]
    fn options_parser_never_panics(v in json_value()) {
        match CommonOptions::parse(&v.to_string()) {
            Ok((opts, rest)) => {
                // What it accepted is within the documented bounds.
                prop_assert!((1..=16).contains(&opts.parallel_files));
                prop_assert!(opts.progress_interval_ms >= 1);
                prop_assert!(opts.file_mode().is_ok());
                for k in CommonOptions::FIELDS {
                    prop_assert!(!rest.contains_key(*k));
                }
            }
            Err(Error::InvalidArgument(m)) => prop_assert!(!m.is_empty()),
            Err(e) => prop_assert!(false, "not an invalid-argument error: {e:?}"),
        }
    }

    /// Any bytes at all as options text.
    #[test]
    fn options_text_never_panics(s in ".{0,64}") {
        let r = CommonOptions::parse(&s);
        prop_assert!(matches!(r, Ok(_) | Err(Error::InvalidArgument(_))));
    }

    /// Any bytes in a journal file: either refused (start over), or ranges that are sorted,
    /// disjoint, non-empty and within the object — never a claim outside it.
    #[test]
    fn journal_loader_never_accepts_wrong_ranges(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        check_journal_bytes(&bytes)?;
    }

    /// Journals that parse as JSON but whose ranges are arbitrary (overlapping, reversed, empty,
    /// past the end): only a consistent set is accepted.
    #[test]
    fn journal_loader_checks_structured_ranges(
        size in 0u64..10_000,
        ranges in prop::collection::vec((0u64..12_000, 0u64..12_000), 0..8),
    ) {
        let text = serde_json::json!({
            "version": 1,
            "validator": {"size": size, "etag": "\"e\"", "last_modified": null},
            "done": ranges,
        })
        .to_string();
        let accepted = check_journal_bytes(text.as_bytes())?;
        let consistent = ranges.iter().all(|(a, b)| a < b && *b <= size)
            && ranges.windows(2).all(|w| w[0].1 < w[1].0);
        prop_assert_eq!(accepted, consistent, "ranges {:?} size {}", ranges, size);
    }

    /// `Content-Range`: whatever the text, an accepted answer has start ≤ end < total, and a
    /// well-formed one is read back exactly.
    #[test]
    fn content_range_is_consistent_or_refused(s in "(bytes )?[0-9 ]{0,8}-?[0-9]{0,8}/?[0-9*]{0,8}") {
        if let Some((a, b, t)) = crate::transfer::http::content_range(&s) {
            prop_assert!(a <= b && b < t, "{s:?} gave {a}-{b}/{t}");
        }
    }

    #[test]
    fn content_range_round_trips(a in 0u64..u64::MAX / 2, len in 1u64..1 << 40, extra in 0u64..1 << 40) {
        let b = a + len - 1;
        let t = b + 1 + extra;
        prop_assert_eq!(crate::transfer::http::content_range(&format!("bytes {a}-{b}/{t}")), Some((a, b, t)));
        prop_assert_eq!(crate::transfer::http::content_range(&format!("bytes {b}-{a}/{t}")), (a == b).then_some((a, b, t)));
        prop_assert_eq!(crate::transfer::http::content_range(&format!("bytes {a}-{b}/{b}")), None);
    }

    /// ETags: only a strong one makes kept bytes trustworthy, and `If-Range` never carries a
    /// weak one.
    #[test]
    fn weak_etags_never_validate_a_resume(tag in "[ -~]{0,16}", weak in any::<bool>(), lm in proptest::option::of("[ -~]{1,16}")) {
        let etag = if weak { format!("W/\"{tag}\"") } else { format!("\"{tag}\"") };
        let v = Validator { size: 1, etag: Some(etag.clone()), last_modified: lm.clone() };
        prop_assert_eq!(v.is_usable(), !weak);
        match v.if_range() {
            Some(h) => prop_assert!(!h.starts_with("W/") && (h == etag || Some(h) == lm.as_deref())),
            // Weak, and no Last-Modified that is a date (the generator's text rarely is one).
            None => prop_assert!(weak && lm.as_deref().is_none_or(|d| httpdate::parse_http_date(d).is_err())),
        }
    }

    /// A name a server or URL gives is always turned into one that passes the user-name check:
    /// never empty, never a separator, never `.` or `..`, never one of the library's endings.
    #[test]
    fn sanitized_names_are_always_valid(raw in ".{0,300}") {
        let name = sanitize_file_name(&raw, "file");
        prop_assert!(validate_file_name(&name).is_ok(), "{raw:?} became {name:?}");
        prop_assert!(!name.contains(['/', '\\', '\0']));
        prop_assert!(name != "." && name != "..");
    }

    /// The same for names built from the pieces attacks use.
    #[test]
    fn sanitized_hostile_names_are_always_valid(parts in prop::collection::vec(prop::sample::select(vec![
        "..", ".", "/", "\\", "C:", "CON", "nul.txt", ".hspart", ".hspart.journal", ".hspart.lock",
        " ", "\u{202e}", "\n", "a", "\u{0}", "ü", "*", "?", "~",
    ]), 0..12)) {
        let raw: String = parts.concat();
        let name = sanitize_file_name(&raw, "file");
        prop_assert!(validate_file_name(&name).is_ok(), "{raw:?} became {name:?}");
    }
}

/// Loads `bytes` as a journal through the real loader (an output folder on disk) and checks
/// what it accepted; returns whether it did.
fn check_journal_bytes(bytes: &[u8]) -> Result<bool, TestCaseError> {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("x.hspart.journal"), bytes).unwrap();
    let out = crate::transfer::OutDir::open(dir.path(), 0o600).unwrap();
    match Journal::load(&out, "x.hspart.journal") {
        None => Ok(false),
        Some(j) => {
            let size = j.validator.size;
            let mut prev = None;
            for (a, b) in j.done.ranges() {
                prop_assert!(a < b && b <= size, "range {a}-{b} of {size}");
                if let Some(p) = prev {
                    prop_assert!(a > p, "ranges overlap or touch at {a}");
                }
                prev = Some(b);
            }
            prop_assert!(j.done.is_valid_for(size));
            Ok(true)
        }
    }
}
