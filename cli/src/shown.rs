//! What the command prints of text that came from outside it — source ids, names and states
//! from a cloud's listings, error and progress messages, file names, history records: control
//! characters (C0, DEL, C1) and bidirectional overrides never reach the terminal raw, so a
//! hostile name cannot clear the screen, set the title or write the clipboard (OSC 52); and a
//! source is shown without the secrets a URL may carry (a pre-signed query, user info).

use std::borrow::Cow;

use serde_json::Value;

/// `s` with every control character escaped (`\u{1b}`); see [`hypersdk::printable`].
pub(crate) fn text(s: &str) -> Cow<'_, str> {
    hypersdk::printable(s)
}

/// An error message from the library as the command shows it: printable, and where it tells
/// the user to set an option, with the flag that does it here.
pub(crate) fn error(s: &str) -> String {
    let t = text(s);
    if t.contains("set overwrite to replace it") {
        format!("{t} (-o overwrite=true)")
    } else {
        t.into_owned()
    }
}

/// A source id as shown and stored: without secrets, then printable.
pub(crate) fn source(s: &str) -> String {
    text(&hypersdk::redact_source(s)).into_owned()
}

/// One JSON value on one line, with what would be unprintable written as a JSON `\uXXXX`
/// escape: serde_json escapes C0 itself but leaves DEL, C1 and bidi characters raw. Such
/// characters can only stand inside strings, so the line still means the same JSON.
pub(crate) fn json_line(v: &Value) -> String {
    let line = v.to_string();
    if matches!(text(&line), Cow::Borrowed(_)) {
        return line;
    }
    let mut out = String::with_capacity(line.len() + 16);
    let mut buf = [0u8; 4];
    for c in line.chars() {
        if matches!(text(c.encode_utf8(&mut buf)), Cow::Owned(_)) {
            // Every such character is in the Basic Multilingual Plane: one \u escape.
            out.push_str(&format!("\\u{:04x}", c as u32));
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_lines_escape_what_serde_leaves_raw_and_mean_the_same() {
        let v = serde_json::json!({"name": "a\u{1b}]52;c;eA==\u{7}\u{7f}\u{9b}2J\u{202e}z é"});
        let line = json_line(&v);
        assert!(
            !line.chars().any(|c| c.is_control() || c == '\u{202e}'),
            "{line:?}"
        );
        assert_eq!(serde_json::from_str::<Value>(&line).unwrap(), v);
        assert!(line.contains(" é"));
    }

    #[test]
    fn sources_are_shown_without_secrets_or_escapes() {
        assert_eq!(source("https://h/d.img?sig=s3cret"), "https://h/d.img");
        assert_eq!(source("vm\u{1b}[2J"), "vm\\u{1b}[2J");
    }
}
