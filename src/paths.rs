//! File names that come from users, URLs or servers: they must never leave the output folder,
//! never collide with the library's own files (`.hspart`, its journal and lock), and a file
//! made here must be copyable to Windows.

use crate::error::{Error, Result};

const MAX_NAME_BYTES: usize = 200;

/// Endings the library's own files use beside a destination.
const RESERVED_ENDINGS: &[&str] = &[".hspart", ".journal", ".lock"];

/// Names Windows will not create, with or without an extension.
const WINDOWS_RESERVED: &[&str] = &[
    "CON", "PRN", "AUX", "NUL", "COM1", "COM2", "COM3", "COM4", "COM5", "COM6", "COM7", "COM8",
    "COM9", "LPT1", "LPT2", "LPT3", "LPT4", "LPT5", "LPT6", "LPT7", "LPT8", "LPT9",
];

fn windows_reserved(name: &str) -> bool {
    let stem = name.split('.').next().unwrap_or("").trim_end();
    WINDOWS_RESERVED
        .iter()
        .any(|r| r.eq_ignore_ascii_case(stem))
}

/// The library's own files are `<name>.hspart`, `<name>.hspart.journal` (and its `.tmp`) and
/// `<name>.hspart.lock`: a name ending like one, or holding `.hspart`, could be one of them.
fn reserved_ending(name: &str) -> Option<&'static str> {
    let lower = name.to_ascii_lowercase();
    if lower.contains(".hspart") {
        return Some(".hspart");
    }
    RESERVED_ENDINGS
        .iter()
        .copied()
        .find(|e| lower.ends_with(e))
}

/// Checks a file name given by the user: one plain component, no separators, no `..`, not one
/// of the library's own endings, nothing Windows refuses.
pub fn validate_file_name(name: &str) -> Result<()> {
    let bad = name.is_empty()
        || name == "."
        || name == ".."
        || name.contains(['/', '\\', '\0'])
        || name.chars().any(char::is_control)
        || (name.len() >= 2 && name.as_bytes()[1] == b':')
        || name.len() > MAX_NAME_BYTES;
    if bad {
        return Err(Error::InvalidArgument(format!(
            "file name {name:?} is not a plain file name (no separators, no \"..\", no drive, at most {MAX_NAME_BYTES} bytes)"
        )));
    }
    if let Some(e) = reserved_ending(name) {
        return Err(Error::InvalidArgument(format!(
            "file name {name:?} ends in {e:?}, which the library uses for its own files"
        )));
    }
    if windows_reserved(name) || name.ends_with(['.', ' ']) {
        return Err(Error::InvalidArgument(format!(
            "file name {name:?} cannot exist on Windows (a reserved device name, or a trailing dot or space)"
        )));
    }
    Ok(())
}

/// Turns a name from a URL or a server into a safe plain file name: separators, control
/// characters and characters Windows forbids become `_`, leading dots and trailing dots and
/// spaces are dropped, a Windows device name gets a `_` in front, the library's own `.hspart`
/// becomes `_hspart` and its other endings get a `_` after them, and an empty result becomes
/// `fallback`.
pub fn sanitize_file_name(raw: &str, fallback: &str) -> String {
    let mapped: String = raw
        .chars()
        .map(|c| {
            if c.is_control() || matches!(c, '/' | '\\' | ':' | '*' | '?' | '"' | '<' | '>' | '|') {
                '_'
            } else {
                c
            }
        })
        .collect();
    let mut out = mapped
        .trim_start_matches('.')
        .trim()
        .trim_end_matches(['.', ' '])
        .to_string();
    if out.len() > MAX_NAME_BYTES {
        let mut cut = MAX_NAME_BYTES;
        while !out.is_char_boundary(cut) {
            cut -= 1;
        }
        out.truncate(cut);
        out = out.trim_end_matches(['.', ' ']).to_string();
    }
    if out.is_empty() {
        return fallback.to_string();
    }
    if windows_reserved(&out) {
        out.insert(0, '_');
    }
    while let Some(e) = reserved_ending(&out) {
        match out.to_ascii_lowercase().find(".hspart") {
            Some(i) if e == ".hspart" => out.replace_range(i..i + 1, "_"),
            _ => out.push('_'),
        }
    }
    out
}

/// The output folder as the platform writes paths, for opening and for every path a result or
/// an error shows. On Windows: absolute, with `\` only (`GetFullPathNameW`, through
/// `std::path::absolute`: `Z:/out` becomes `Z:\out`, `.` and `..` go), so a file's path reads
/// `Z:\out\file.bin`, not `Z:/out\file.bin`; std adds the `\\?\` prefix itself when a path
/// is longer than `MAX_PATH`, and a path given with it stays as given. Elsewhere: unchanged.
pub(crate) fn native_dir(dir: &std::path::Path) -> std::path::PathBuf {
    #[cfg(windows)]
    {
        std::path::absolute(dir).unwrap_or_else(|_| dir.to_path_buf())
    }
    #[cfg(not(windows))]
    {
        dir.to_path_buf()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_escapes_and_reserved_names() {
        for bad in [
            "",
            ".",
            "..",
            "../x",
            "a/b",
            "a\\b",
            "/etc/passwd",
            "C:x",
            "a\0b",
            "disk.vmdk.hspart",
            "a.hspart.journal.tmp",
            "x.JOURNAL",
            "d.lock",
            "CON",
            "nul.vmdk",
            "disk.",
            "disk ",
        ] {
            assert!(validate_file_name(bad).is_err(), "{bad:?} accepted");
        }
        validate_file_name("disk-1.vmdk").unwrap();
        validate_file_name("console.vmdk").unwrap();
    }

    #[test]
    fn sanitizes() {
        assert_eq!(
            sanitize_file_name("../../etc/passwd", "f"),
            "_.._etc_passwd"
        );
        assert_eq!(sanitize_file_name("..", "f"), "f");
        assert_eq!(sanitize_file_name(". .", "f"), "f");
        assert_eq!(sanitize_file_name(".hidden", "f"), "hidden");
        assert_eq!(sanitize_file_name("disk.vmdk", "f"), "disk.vmdk");
        assert_eq!(sanitize_file_name("a\nb", "f"), "a_b");
        assert_eq!(sanitize_file_name("a<b>|c?.vmdk", "f"), "a_b__c_.vmdk");
        assert_eq!(sanitize_file_name("aux.vmdk", "f"), "_aux.vmdk");
        assert_eq!(sanitize_file_name("disk. . ", "f"), "disk");
        assert_eq!(sanitize_file_name("x.hspart", "f"), "x_hspart");
        assert_eq!(sanitize_file_name("x.HSPART.lock", "f"), "x_HSPART.lock_");
        let long = "é".repeat(300);
        assert!(sanitize_file_name(&long, "f").len() <= MAX_NAME_BYTES);
        for raw in ["..", "CON", "a.lock", "x. ", "é".repeat(150).as_str()] {
            let s = sanitize_file_name(raw, "fallback.img");
            validate_file_name(&s).unwrap_or_else(|e| panic!("{raw:?} → {s:?}: {e}"));
        }
    }
}
