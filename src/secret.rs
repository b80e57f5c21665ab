//! A text that must never be shown (password, secret key, header value): `Debug` prints `***`,
//! so a config struct can derive `Debug` and stay safe to log. Read from JSON as a plain string.

use serde::Deserialize;

#[derive(Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(transparent)]
pub(crate) struct Secret(String);

impl Secret {
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
    }
}
