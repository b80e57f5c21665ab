//! The vim25 version our requests name in `SOAPAction`: read from the server's
//! `/sdk/vimServiceVersions.xml` at login, as govc does (govmomi `vim25/soap/client.go`,
//! `UseServiceVersion`), so an older vCenter that refuses request versions it does not know
//! (`InvalidRequest: Unsupported version URI`) is still spoken to in its own version.

use super::xml::{Node, parse};

/// Used when the server has no (readable) version file, and the newest version whose
/// element order this client is written against (govmomi's vim25 types of vSphere 8.0 U3).
pub const FALLBACK: &str = "8.0";
const NEWEST_KNOWN: &str = "8.0.3.0";

/// `a < b` on dotted version numbers (missing parts are 0; non-numbers sort lowest).
fn older(a: &str, b: &str) -> bool {
    let parts = |v: &str| -> Vec<u64> { v.split('.').map(|p| p.parse().unwrap_or(0)).collect() };
    let (mut a, mut b) = (parts(a), parts(b));
    let n = a.len().max(b.len());
    a.resize(n, 0);
    b.resize(n, 0);
    a < b
}

fn plausible(v: &str) -> bool {
    !v.is_empty()
        && v.len() <= 16
        && v.split('.')
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
}

/// The version to use, from the text of `vimServiceVersions.xml`: the newest of the
/// `urn:vim25` namespace's version and prior versions that is not newer than what this
/// client knows (that newest one for a newer server); [`FALLBACK`] when the file says nothing
/// usable.
pub fn choose(xml_text: &str) -> String {
    let Ok(doc) = parse(xml_text) else {
        return FALLBACK.into();
    };
    fn namespaces<'a>(n: &'a Node, out: &mut Vec<&'a Node>) {
        if n.name == "namespace" {
            out.push(n);
        }
        for c in &n.children {
            namespaces(c, out);
        }
    }
    let mut all = Vec::new();
    namespaces(&doc, &mut all);
    let Some(ns) = all
        .into_iter()
        .find(|n| n.child_text("name").map(str::trim) == Some("urn:vim25"))
    else {
        return FALLBACK.into();
    };
    let current = ns.child_text("version").map(str::trim).unwrap_or("");
    // A server newer than this client accepts the older versions it grew from: speak the
    // newest we know (vcsim, for one, lists only 6.0 and 5.5 as prior versions of 9.0).
    if plausible(current) && older(NEWEST_KNOWN, current) {
        return NEWEST_KNOWN.into();
    }
    let mut candidates: Vec<&str> = ns
        .children_named("version")
        .map(|v| v.text.trim())
        .collect();
    if let Some(p) = ns.child("priorVersions") {
        candidates.extend(p.children_named("version").map(|v| v.text.trim()));
    }
    candidates
        .into_iter()
        .filter(|v| plausible(v) && !older(NEWEST_KNOWN, v))
        .fold(None::<&str>, |best, v| match best {
            Some(b) if !older(b, v) => Some(b),
            _ => Some(v),
        })
        .map(str::to_string)
        .unwrap_or_else(|| FALLBACK.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(v: &str, prior: &[&str]) -> String {
        let p: String = prior
            .iter()
            .map(|v| format!("<version>{v}</version>"))
            .collect();
        format!(
            "<?xml version=\"1.0\"?><namespaces version=\"1.0\"><namespace><name>urn:vim25</name><version>{v}</version><priorVersions>{p}</priorVersions></namespace></namespaces>"
        )
    }

    #[test]
    fn the_servers_version_or_the_newest_we_know() {
        assert_eq!(choose(&file("7.0.3.0", &["7.0", "6.7"])), "7.0.3.0");
        assert_eq!(choose(&file("8.0.3.0", &["8.0.2.0"])), "8.0.3.0");
        // A newer server: the newest version we know.
        assert_eq!(choose(&file("9.0.0.0", &["8.0.3.0", "8.0"])), "8.0.3.0");
        assert_eq!(choose(&file("9.0.0.0", &["6.0", "5.5"])), "8.0.3.0");
        assert_eq!(choose("not xml <"), FALLBACK);
        assert_eq!(choose(&file("7.0\"/x", &[])), FALLBACK);
        assert!(older("7.0.3.0", "8.0") && !older("8.0", "8.0.0.0"));
    }
}
