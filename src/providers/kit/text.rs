//! Text out of cloud answers: messages cut to one line (a cloud error can hold an HTML page or
//! a stack trace), text made safe for a terminal, and percent-decoding of URL parts.

pub(crate) use crate::printable::printable;

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
    fn one_line_escapes_control_characters() {
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
