//! Text out of cloud answers: messages cut to one line (a cloud error can hold an HTML page or
//! a stack trace), text made safe for a terminal, and percent-decoding of URL parts.

use std::borrow::Cow;

/// Longest message kept from a cloud answer, in characters.
const MAX_MESSAGE: usize = 300;

/// `s` with every run of whitespace (newlines included) made one space, cut at 300 characters
/// with an ellipsis: error messages stay one readable line in logs and results.
/// Control characters are escaped ([`printable`]).
pub(crate) fn one_line(s: &str) -> String {
    let s = s.split_whitespace().collect::<Vec<_>>().join(" ");
    let s = printable(&s).into_owned();
    match s.char_indices().nth(MAX_MESSAGE) {
        Some((cut, _)) => format!("{}…", &s[..cut]),
        None => s,
    }
}

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

/// Percent-decodes a URL path segment or query value (`+` stays `+`: only a form decodes it
/// as a space); invalid UTF-8 becomes U+FFFD.
pub(crate) fn percent_decode(s: &str) -> String {
    percent_encoding::percent_decode_str(s)
        .decode_utf8_lossy()
        .into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_collapses_and_cuts_on_char_boundaries() {
        assert_eq!(one_line("  a\n\tb   c \r\n"), "a b c");
        let long = "é".repeat(400);
        let cut = one_line(&long);
        assert_eq!(cut.chars().count(), MAX_MESSAGE + 1);
        assert!(cut.ends_with('…'));
    }

    #[test]
    fn printable_escapes_c0_del_c1_and_bidi_only() {
        assert_eq!(printable("a\u{1b}[2Jb"), "a\\u{1b}[2Jb");
        assert_eq!(printable("\u{9b}31m\u{7f}"), "\\u{9b}31m\\u{7f}");
        assert_eq!(printable("x\ny\t"), "x\\u{a}y\\u{9}");
        assert_eq!(printable("evil\u{202e}gpj.exe"), "evil\\u{202e}gpj.exe");
        assert!(matches!(printable("disk-1 é 日本"), Cow::Borrowed(_)));
        assert_eq!(
            one_line("a\u{1b}]0;title\u{7} b"),
            "a\\u{1b}]0;title\\u{7} b"
        );
    }

    #[test]
    fn percent_decode_keeps_plus_and_bad_escapes() {
        assert_eq!(percent_decode("my%20disk+1.vhd"), "my disk+1.vhd");
        assert_eq!(percent_decode("100%"), "100%");
        assert_eq!(percent_decode("%zz%2"), "%zz%2");
        assert_eq!(percent_decode("%FF"), "\u{FFFD}");
    }
}
