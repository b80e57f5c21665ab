//! The C contract kept honest by checks that fail on drift: every `extern "C"` function runs
//! under the panic guard, the header compiles as C and as C++, and the names the library gives
//! statuses and phases are the ones the header's enums imply.

use std::ffi::CStr;
use std::path::Path;
use std::process::Command;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Every `pub extern "C" fn` in src/ffi/ must start its body with `guard(`, `guard_void(` or
/// `guard_value(`: a body outside the guard could unwind into C, which is undefined behaviour.
#[test]
fn every_extern_fn_goes_through_the_panic_guard() {
    let mut checked = 0;
    let mut bad = Vec::new();
    for entry in std::fs::read_dir(root().join("src/ffi")).unwrap() {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        let mut rest = text.as_str();
        while let Some(i) = rest.find("pub extern \"C\" fn ") {
            rest = &rest[i..];
            let name: String = rest["pub extern \"C\" fn ".len()..]
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            // The body starts after the signature's `{` at the end of a line.
            let open = rest.find("{\n").expect("a function body");
            let body = rest[open + 1..].trim_start();
            let first = body
                .lines()
                .map(str::trim)
                .find(|l| !l.is_empty() && !l.starts_with("//"))
                .unwrap_or("");
            if !["guard(", "guard_void(", "guard_value("]
                .iter()
                .any(|g| first.starts_with(g))
            {
                bad.push(format!("{} in {}: {first}", name, path.display()));
            }
            checked += 1;
            rest = &rest[open..];
        }
    }
    assert!(checked >= 15, "found only {checked} extern functions");
    assert!(
        bad.is_empty(),
        "outside the panic guard:\n{}",
        bad.join("\n")
    );
}

/// The header compiles alone as C99 and as C++ (cbindgen's `cpp_compat`), warnings as errors.
#[test]
fn header_compiles_as_c_and_cpp() {
    let header = root().join("include/hypersdk.h");
    for (cc, args) in [
        ("gcc", &["-x", "c", "-std=c99", "-pedantic"][..]),
        ("g++", &["-x", "c++", "-std=c++11", "-pedantic"][..]),
    ] {
        let out = Command::new(cc)
            .args(args)
            .args(["-fsyntax-only", "-Wall", "-Wextra", "-Werror"])
            .arg(&header)
            .output()
            .unwrap_or_else(|e| panic!("{cc} cannot run: {e}"));
        assert!(
            out.status.success(),
            "{cc} rejects the header:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// `NAME = value` pairs of one enum of the header.
fn header_enum(prefix: &str) -> Vec<(String, i32)> {
    let text = std::fs::read_to_string(root().join("include/hypersdk.h")).unwrap();
    text.lines()
        .filter_map(|l| {
            let l = l.trim().trim_end_matches(',');
            let (name, value) = l.split_once(" = ")?;
            name.starts_with(prefix)
                .then(|| (name.to_string(), value.trim().parse().ok()))
                .and_then(|(n, v)| Some((n, v?)))
        })
        .collect()
}

fn name_of(p: *const std::ffi::c_char) -> String {
    // SAFETY: the library returns static NUL-terminated strings.
    unsafe { CStr::from_ptr(p) }.to_str().unwrap().to_string()
}

unsafe extern "C" {
    fn hs_status_name(status: i32) -> *const std::ffi::c_char;
    fn hs_phase_name(phase: i32) -> *const std::ffi::c_char;
}

#[test]
fn status_and_phase_names_follow_the_header() {
    let statuses = header_enum("HS_STATUS_");
    assert!(statuses.len() >= 16, "{statuses:?}");
    for (name, value) in &statuses {
        let want = name.trim_start_matches("HS_STATUS_").to_ascii_lowercase();
        // SAFETY: plain call with an integer.
        assert_eq!(name_of(unsafe { hs_status_name(*value) }), want, "{name}");
    }
    let phases = header_enum("HS_PHASE_");
    assert_eq!(phases.len(), 9, "{phases:?}");
    for (name, value) in &phases {
        let want = name
            .trim_start_matches("HS_PHASE_")
            .to_ascii_lowercase()
            .replace('_', "-");
        // SAFETY: plain call with an integer.
        assert_eq!(name_of(unsafe { hs_phase_name(*value) }), want, "{name}");
        let phase = hypersdk::Phase::from_repr((*value).into()).expect("a phase for the value");
        assert_eq!(phase.as_str(), want);
    }
    // SAFETY: plain calls with integers.
    unsafe {
        assert_eq!(name_of(hs_status_name(-1)), "unknown");
        assert_eq!(name_of(hs_phase_name(9)), "unknown");
    }
}

/// Error kinds in result JSON and status names in C are one vocabulary.
#[test]
fn error_kinds_name_their_status() {
    let statuses = header_enum("HS_STATUS_");
    for kind in hypersdk::ErrorKind::all() {
        let want = format!("HS_STATUS_{}", kind.as_str().to_ascii_uppercase());
        assert!(
            statuses.iter().any(|(n, _)| *n == want),
            "{kind:?} has no {want} in the header"
        );
    }
}
