//! Text made safe for a terminal. Names and messages that came from a cloud, a host or a
//! server reach terminals through the command's bars, C and Go callers' logs and progress
//! lines: an escape sequence in them could clear the screen, set the title or write the
//! clipboard (OSC 52). Kept at the bottom of the crate beside `error`, which uses it.

use std::borrow::Cow;

/// Whether `c` must not reach a terminal raw: C0 controls (ESC starts every escape sequence;
/// BEL ends an OSC such as a title or an OSC 52 clipboard write), DEL, C1 controls (U+009B is a
/// one-character CSI for some terminals) and the bidirectional overrides and isolates that make
/// text show in an order other than its own.
fn unprintable(c: char) -> bool {
    c.is_control() || matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

/// `s` safe to print on a terminal: every control character (C0 — newline and tab too —, DEL,
/// C1) and bidirectional override is written as a `\u{..}` escape, so that a name or a message
/// that came from a cloud cannot clear the screen, set the title or write the clipboard. Text
/// without any is returned as it is.
///
/// ```
/// assert_eq!(hypersdk::printable("disk\u{1b}]52;c;aGk=\u{7}"), "disk\\u{1b}]52;c;aGk=\\u{7}");
/// assert_eq!(hypersdk::printable("plain é"), "plain é");
/// ```
pub fn printable(s: &str) -> Cow<'_, str> {
    if !s.chars().any(unprintable) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if unprintable(c) {
            out.push_str(&format!("\\u{{{:x}}}", c as u32));
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn printable_escapes_c0_del_c1_and_bidi_only() {
        assert_eq!(printable("a\u{1b}[2Jb"), "a\\u{1b}[2Jb");
        assert_eq!(printable("\u{9b}31m\u{7f}"), "\\u{9b}31m\\u{7f}");
        assert_eq!(printable("x\ny\t"), "x\\u{a}y\\u{9}");
        assert_eq!(printable("evil\u{202e}gpj.exe"), "evil\\u{202e}gpj.exe");
        assert!(matches!(printable("disk-1 é 日本"), Cow::Borrowed(_)));
    }
}
