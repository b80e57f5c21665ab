//! A small XML tree for API answers (vSphere's SOAP, EC2's Query API, S3's listings): element
//! local names, attributes, text, children. The answers are small (a lease, a page of
//! instances), so a tree is simpler than streaming.

use quick_xml::events::Event;

use crate::error::{Error, Result};

#[derive(Debug, Default, Clone)]
pub struct Node {
    pub name: String,
    pub attrs: Vec<(String, String)>,
    pub text: String,
    pub children: Vec<Node>,
}

impl Node {
    pub fn child(&self, name: &str) -> Option<&Node> {
        self.children.iter().find(|c| c.name == name)
    }

    pub fn children_named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Node> + 'a {
        self.children.iter().filter(move |c| c.name == name)
    }

    /// First descendant (depth first, self included) with this name.
    pub fn find(&self, name: &str) -> Option<&Node> {
        if self.name == name {
            return Some(self);
        }
        self.children.iter().find_map(|c| c.find(name))
    }

    #[cfg_attr(not(feature = "vsphere"), allow(dead_code))]
    pub fn attr(&self, name: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn child_text(&self, name: &str) -> Option<&str> {
        self.child(name).map(|c| c.text.as_str())
    }
}

fn local(name: &[u8]) -> String {
    let s = String::from_utf8_lossy(name);
    match s.rsplit_once(':') {
        Some((_, l)) => l.to_string(),
        None => s.into_owned(),
    }
}

fn bad(e: impl std::fmt::Display) -> Error {
    Error::Remote(format!("the server sent XML that cannot be read: {e}"))
}

/// Deepest nesting accepted. vim25 answers nest a dozen levels; the tree's users recurse, so a
/// hostile 200 000-deep document must be refused here rather than overflow a stack later.
const MAX_DEPTH: usize = 256;

pub fn parse(xml: &str) -> Result<Node> {
    let mut reader = quick_xml::Reader::from_str(xml);
    let mut stack: Vec<Node> = vec![Node::default()];
    loop {
        match reader.read_event().map_err(bad)? {
            Event::Start(e) => {
                if stack.len() > MAX_DEPTH {
                    return Err(bad(format!("nesting deeper than {MAX_DEPTH} levels")));
                }
                let node = start_node(&e)?;
                stack.push(node);
            }
            Event::Empty(e) => {
                let node = start_node(&e)?;
                stack.last_mut().expect("root").children.push(node);
            }
            Event::End(_) => {
                let node = stack.pop().expect("balanced");
                match stack.last_mut() {
                    Some(parent) => parent.children.push(node),
                    None => return Err(bad("unbalanced end tag")),
                }
            }
            Event::Text(t) => stack
                .last_mut()
                .expect("root")
                .text
                .push_str(&t.decode().map_err(bad)?),
            Event::CData(t) => stack
                .last_mut()
                .expect("root")
                .text
                .push_str(&String::from_utf8_lossy(&t)),
            Event::GeneralRef(r) => {
                let text = match r.resolve_char_ref().map_err(bad)? {
                    Some(c) => c.to_string(),
                    None => match r.decode().map_err(bad)?.as_ref() {
                        "lt" => "<".into(),
                        "gt" => ">".into(),
                        "amp" => "&".into(),
                        "apos" => "'".into(),
                        "quot" => "\"".into(),
                        other => return Err(bad(format!("unknown entity &{other};"))),
                    },
                };
                stack.last_mut().expect("root").text.push_str(&text);
            }
            Event::Eof => break,
            _ => {}
        }
    }
    if stack.len() != 1 {
        return Err(bad("unexpected end of document"));
    }
    let mut root = stack.pop().expect("root");
    root.children.pop().ok_or_else(|| bad("empty document"))
}

fn start_node(e: &quick_xml::events::BytesStart<'_>) -> Result<Node> {
    let mut node = Node {
        name: local(e.name().as_ref()),
        ..Default::default()
    };
    for a in e.attributes() {
        let a = a.map_err(bad)?;
        node.attrs.push((
            local(a.key.as_ref()),
            a.unescape_value().map_err(bad)?.into_owned(),
        ));
    }
    Ok(node)
}

/// Escapes text for an element or attribute.
#[cfg_attr(not(feature = "vsphere"), allow(dead_code))]
pub fn esc(s: &str) -> std::borrow::Cow<'_, str> {
    quick_xml::escape::escape(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_soap_with_entities() {
        let x = r#"<?xml version="1.0"?><soapenv:Envelope xmlns:soapenv="s"><soapenv:Body>
            <R xmlns="urn:vim25"><returnval type="HttpNfcLease">lease-1</returnval>
            <d>&lt;Envelope a=&quot;1&quot;&gt;&#233;&amp;</d><e/></R></soapenv:Body></soapenv:Envelope>"#;
        let n = parse(x).unwrap();
        let r = n.find("R").unwrap();
        assert_eq!(
            r.child("returnval").unwrap().attr("type"),
            Some("HttpNfcLease")
        );
        assert_eq!(r.child_text("returnval"), Some("lease-1"));
        assert_eq!(r.child_text("d"), Some("<Envelope a=\"1\">é&"));
        assert!(r.child("e").is_some());
        assert!(parse("<a><b></a>").is_err());
    }
}
