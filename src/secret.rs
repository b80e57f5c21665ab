//! A text that must never be shown (password, secret key, header value): `Debug` prints `***`,
//! so a config struct can derive `Debug` and stay safe to log. Read from JSON as a plain string.

use serde::{Deserialize, Deserializer};

#[derive(Clone, Default, PartialEq, Eq)]
pub(crate) struct Secret(String);

/// Read as any JSON value first, so that a wrong type (a number given as a password) is an
/// error that does not quote the value, as serde's own "invalid type: integer `…`" would.
impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match serde_json::Value::deserialize(d)? {
            serde_json::Value::String(s) => Ok(Secret(s)),
            _ => Err(serde::de::Error::custom(
                "expected a string here (the value given is not shown: it may be a secret)",
            )),
        }
    }
}

impl Secret {
    #[cfg_attr(not(feature = "azure"), allow(dead_code))]
    pub fn new(s: String) -> Self {
        Secret(s)
    }

    /// The text itself, for the one place that must send it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("***")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_shown() {
        #[derive(Debug, Deserialize)]
        struct Config {
            #[allow(dead_code)]
            user: String,
            password: Secret,
        }
        let c: Config = serde_json::from_str(r#"{"user": "u", "password": "hunter2"}"#).unwrap();
        assert_eq!(c.password.expose(), "hunter2");
        let shown = format!("{c:?} {c:#?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("***"));
        let e = serde_json::from_str::<Config>(r#"{"user": "u", "password": 73198421}"#)
            .unwrap_err()
            .to_string();
        assert!(!e.contains("73198421"), "{e}");
        assert!(e.contains("not shown"), "{e}");
    }
}
