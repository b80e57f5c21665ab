//! URLs fit for messages and logs: every provider's URLs can carry credentials (user info,
//! signatures and SAS tokens in the query, NFC tickets in the path), so one rule strips them all.

use url::Url;

/// A URL as it may appear in messages: no user info, no query (signatures, SAS tokens), and
/// no NFC ticket (the path segment after `/nfc/`, which authorizes the download by itself).
pub(crate) fn redact_url(url: &Url) -> String {
    let mut u = url.clone();
    let _ = u.set_username("");
    let _ = u.set_password(None);
    u.set_query(None);
    u.set_fragment(None);
    if let Some(segments) = url.path_segments() {
        let mut out: Vec<&str> = Vec::new();
        let mut after_nfc = false;
        for s in segments {
            out.push(if after_nfc { "***" } else { s });
            after_nfc = s.eq_ignore_ascii_case("nfc");
        }
        u.set_path(&out.join("/"));
    }
    u.to_string()
}

/// [`redact_url`] for a text that may or may not parse as a URL (a source id as given): what
/// follows `?` or `#` is dropped either way.
#[cfg_attr(not(feature = "azure"), allow(dead_code))]
pub(crate) fn redact_url_text(text: &str) -> String {
    match Url::parse(text) {
        Ok(u) => redact_url(&u),
        Err(_) => redact_not_url(text),
    }
}

/// Text that is not a URL, but may still hold `user:password@` (a mistyped `http:/u:p@h`) and a
/// query with a signature: keeps the scheme and what follows the last `@` only.
fn redact_not_url(text: &str) -> String {
    let no_query = text.split(['?', '#']).next().unwrap_or("");
    match no_query.rsplit_once('@') {
        Some((before, host)) => match before.split_once(':') {
            Some((scheme, _))
                if !scheme.is_empty()
                    && scheme
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c)) =>
            {
                format!("{scheme}://{host}")
            }
            _ => host.to_string(),
        },
        None => no_query.to_string(),
    }
}

/// A source id as it may be shown and stored (a history, a log line): a URL loses its user
/// info, query, fragment and NFC ticket ([`redact_url`]); other text with a `user:password@`
/// keeps only what follows the `@`; any other id (`i-0abc`,
/// `/DC1/vm/db01`, `vm:web-1`) is returned as it is. When the result differs from `source`, the
/// source held something that may be a secret and cannot be rebuilt from the result.
///
/// ```
/// assert_eq!(
///     hypersdk::redact_source("https://b.s3.amazonaws.com/d.vmdk?X-Amz-Signature=abc"),
///     "https://b.s3.amazonaws.com/d.vmdk"
/// );
/// assert_eq!(hypersdk::redact_source("/DC1/vm/db?01"), "/DC1/vm/db?01");
/// ```
pub fn redact_source(source: &str) -> String {
    match Url::parse(source) {
        Ok(u) if u.has_host() || u.query().is_some() || u.fragment().is_some() => redact_url(&u),
        // `scheme:/user:password@host` (one slash) parses without a host.
        _ if source
            .rsplit_once('@')
            .is_some_and(|(b, _)| b.contains(':')) =>
        {
            redact_not_url(source)
        }
        _ => source.to_string(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn sources_lose_secrets_and_keep_plain_ids() {
        use super::redact_source as r;
        assert_eq!(r("i-0abc"), "i-0abc");
        assert_eq!(r("vm:web-1"), "vm:web-1");
        assert_eq!(r("/DC1/vm/a b?c"), "/DC1/vm/a b?c");
        assert_eq!(r("https://u:pw@h/x.img?sig=1"), "https://h/x.img");
        assert_eq!(r("gs://bucket/o?token=1"), "gs://bucket/o");
        assert_eq!(r("host:/u:pw@h"), "host://h");
        assert_eq!(r("/DC1/vm/ops@corp"), "/DC1/vm/ops@corp");
    }

    #[test]
    fn urls_lose_credentials_and_tickets() {
        let u = url::Url::parse("https://u:p@esx1/nfc/52a1-ticket-9f/disk-0.vmdk?sig=abc#frag")
            .unwrap();
        assert_eq!(super::redact_url(&u), "https://esx1/nfc/***/disk-0.vmdk");
    }
}
