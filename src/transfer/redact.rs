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
        Err(_) => {
            // Not a URL, but it may still hold `user:password@` (a mistyped `http:/u:p@h`) and a
            // query with a signature: keep the scheme and what follows the last `@` only.
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
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn urls_lose_credentials_and_tickets() {
        let u = url::Url::parse("https://u:p@esx1/nfc/52a1-ticket-9f/disk-0.vmdk?sig=abc#frag")
            .unwrap();
        assert_eq!(super::redact_url(&u), "https://esx1/nfc/***/disk-0.vmdk");
    }
}
