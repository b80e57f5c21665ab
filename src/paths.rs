//! File names that come from users, URLs or servers: they must never leave the output folder.

use crate::error::{Error, Result};

const MAX_NAME_BYTES: usize = 200;

/// Checks a file name given by the user: one plain component, no separators, no `..`.
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
    Ok(())
}

/// Turns a name from a URL or a server into a safe plain file name: separators and control
/// characters become `_`, leading dots are dropped (no `..`, no hidden files), and an empty
/// result becomes `fallback`.
pub fn sanitize_file_name(raw: &str, fallback: &str) -> String {
    let mut out: String = raw
        .chars()
        .map(|c| {
            if c == '/' || c == '\\' || c == ':' || c.is_control() {
                '_'
            } else {
                c
            }
        })
        .collect();
    let trimmed = out.trim_start_matches('.').trim().to_string();
    out = trimmed;
    if out.len() > MAX_NAME_BYTES {
        let mut cut = MAX_NAME_BYTES;
        while !out.is_char_boundary(cut) {
            cut -= 1;
        }
        out.truncate(cut);
    }
    if out.is_empty() {
        fallback.to_string()
    } else {
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_escapes() {
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
        ] {
            assert!(validate_file_name(bad).is_err(), "{bad:?} accepted");
        }
        validate_file_name("disk-1.vmdk").unwrap();
    }

    #[test]
    fn sanitizes() {
        assert_eq!(
            sanitize_file_name("../../etc/passwd", "f"),
            "_.._etc_passwd"
        );
        assert_eq!(sanitize_file_name("..", "f"), "f");
        assert_eq!(sanitize_file_name(".hidden", "f"), "hidden");
        assert_eq!(sanitize_file_name("disk.vmdk", "f"), "disk.vmdk");
        assert_eq!(sanitize_file_name("a\nb", "f"), "a_b");
        let long = "é".repeat(300);
        assert!(sanitize_file_name(&long, "f").len() <= MAX_NAME_BYTES);
    }
}
