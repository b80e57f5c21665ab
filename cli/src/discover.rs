//! What the platforms' own command-line tools read from the environment, read the same way for
//! keys the `--config` leaves out (the config always wins): govc's `GOVC_URL` (which may carry
//! `user:password@`), `GOVC_USERNAME`, `GOVC_PASSWORD`, `GOVC_INSECURE`, `GOVC_TLS_CA_CERTS`;
//! the AWS CLI's `AWS_REGION` / `AWS_DEFAULT_REGION`; the Azure CLI's and azure_identity's
//! `AZURE_SUBSCRIPTION_ID`; gcloud's `CLOUDSDK_CORE_PROJECT` and the client libraries'
//! `GOOGLE_CLOUD_PROJECT`. And `--secret KEY=env:NAME` / `KEY=file:PATH`, as batch profiles
//! have: a secret that `ps` never shows. The library itself reads no such variable: a program
//! that links it says what it means.

use serde_json::{Map, Value};

/// Fills what `config` leaves out from `env` (a lookup, so tests need not touch the process
/// environment). Returns the keys it filled, for the log.
pub(crate) fn from_environment(
    provider: &str,
    config: &mut Map<String, Value>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Vec<String> {
    let var = |k: &str| env(k).filter(|v| !v.trim().is_empty());
    let mut filled = Vec::new();
    let mut fill = |config: &mut Map<String, Value>, key: &str, value: Option<Value>| {
        if let Some(v) = value
            && !config.contains_key(key)
        {
            config.insert(key.to_string(), v);
            filled.push(key.to_string());
        }
    };
    match provider {
        "vsphere" => {
            // govc: the URL's user info is the fallback of GOVC_USERNAME / GOVC_PASSWORD.
            let (url, user, pass) = match var("GOVC_URL") {
                Some(u) => split_user_info(&u),
                None => (None, None, None),
            };
            fill(config, "url", url.map(Value::from));
            fill(
                config,
                "username",
                var("GOVC_USERNAME").or(user).map(Value::from),
            );
            fill(
                config,
                "password",
                var("GOVC_PASSWORD").or(pass).map(Value::from),
            );
            let insecure =
                var("GOVC_INSECURE").map(|v| matches!(v.trim(), "1" | "true" | "TRUE" | "True"));
            fill(
                config,
                "insecure_skip_verify",
                insecure.filter(|i| *i).map(Value::from),
            );
            fill(
                config,
                "ca_bundle_path",
                var("GOVC_TLS_CA_CERTS").map(Value::from),
            );
        }
        "aws" => {
            fill(
                config,
                "region",
                var("AWS_REGION")
                    .or_else(|| var("AWS_DEFAULT_REGION"))
                    .map(Value::from),
            );
        }
        "azure" => fill(
            config,
            "subscription_id",
            var("AZURE_SUBSCRIPTION_ID").map(Value::from),
        ),
        "gcp" => fill(
            config,
            "project",
            var("CLOUDSDK_CORE_PROJECT")
                .or_else(|| var("GOOGLE_CLOUD_PROJECT"))
                .map(Value::from),
        ),
        _ => {}
    }
    filled
}

/// `https://user:pass@host/sdk` → (`https://host/sdk`, user, pass), percent-decoded as govc
/// does (url.UserPassword). A URL without user info comes back as it is.
fn split_user_info(raw: &str) -> (Option<String>, Option<String>, Option<String>) {
    let (scheme, rest) = match raw.split_once("://") {
        Some((s, r)) => (format!("{s}://"), r),
        None => (String::new(), raw),
    };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let (authority, path) = rest.split_at(authority_end);
    let Some((info, host)) = authority.rsplit_once('@') else {
        return (Some(raw.to_string()), None, None);
    };
    let (user, pass) = match info.split_once(':') {
        Some((u, p)) => (u, Some(p)),
        None => (info, None),
    };
    (
        Some(format!("{scheme}{host}{path}")),
        Some(percent_decode(user)).filter(|u| !u.is_empty()),
        pass.map(percent_decode),
    )
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && i + 2 < b.len()
            && let Ok(v) = u8::from_str_radix(s.get(i + 1..i + 3).unwrap_or(""), 16)
        {
            out.push(v);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A config (JSON text) with `--secret` values and what the environment fills in, and the keys
/// the environment filled. A config that is not a JSON object is passed on as it is, for the
/// library to name what is wrong.
pub(crate) fn complete(
    provider: &str,
    text: &str,
    secrets_given: &[String],
) -> Result<(String, Vec<String>), String> {
    let Ok(Value::Object(mut m)) = serde_json::from_str::<Value>(text) else {
        return Ok((text.to_string(), Vec::new()));
    };
    secrets(&mut m, secrets_given)?;
    let filled = from_environment(provider, &mut m, &|k| std::env::var(k).ok());
    Ok((Value::Object(m).to_string(), filled))
}

/// `--secret KEY=env:NAME` or `KEY=file:PATH` into `config` (over what it had).
pub(crate) fn secrets(config: &mut Map<String, Value>, given: &[String]) -> Result<(), String> {
    for s in given {
        let (key, how) = s
            .split_once('=')
            .ok_or_else(|| format!("--secret {s:?} is not KEY=env:NAME or KEY=file:PATH"))?;
        let value = if let Some(var) = how.strip_prefix("env:") {
            std::env::var(var)
                .map_err(|_| format!("--secret {key}: environment variable {var} is not set"))?
        } else if let Some(path) = how.strip_prefix("file:") {
            std::fs::read_to_string(path)
                .map_err(|e| format!("--secret {key}: {path}: {e}"))?
                .trim_end_matches(['\n', '\r'])
                .to_string()
        } else {
            return Err(format!(
                "--secret {key}: give env:NAME or file:PATH (the value itself would show in ps)"
            ));
        };
        config.insert(key.to_string(), Value::from(value));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env_of(pairs: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |k| {
            pairs
                .iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| v.to_string())
        }
    }

    #[test]
    fn govc_variables_fill_what_the_config_leaves_out() {
        let env = env_of(&[
            (
                "GOVC_URL",
                "https://admin%40vsphere.local:p%3Ass@vc.example.com/sdk",
            ),
            ("GOVC_INSECURE", "1"),
        ]);
        let mut c = Map::new();
        let filled = from_environment("vsphere", &mut c, &env);
        assert_eq!(c["url"], "https://vc.example.com/sdk");
        assert_eq!(c["username"], "admin@vsphere.local");
        assert_eq!(c["password"], "p:ss");
        assert_eq!(c["insecure_skip_verify"], true);
        assert_eq!(filled.len(), 4, "{filled:?}");
        // GOVC_USERNAME wins over the URL's user; the config wins over both.
        let env = env_of(&[("GOVC_URL", "u:x@vc"), ("GOVC_USERNAME", "other")]);
        let mut c = Map::new();
        c.insert("password".into(), "given".into());
        from_environment("vsphere", &mut c, &env);
        assert_eq!(c["url"], "vc");
        assert_eq!(c["username"], "other");
        assert_eq!(c["password"], "given");
    }

    #[test]
    fn region_subscription_and_project_come_from_the_tools_variables() {
        let env = env_of(&[
            ("AWS_DEFAULT_REGION", "eu-west-1"),
            (
                "AZURE_SUBSCRIPTION_ID",
                "00000000-0000-0000-0000-000000000001",
            ),
            ("GOOGLE_CLOUD_PROJECT", "lib-project"),
            ("CLOUDSDK_CORE_PROJECT", "gcloud-project"),
        ]);
        let mut c = Map::new();
        from_environment("aws", &mut c, &env);
        assert_eq!(c["region"], "eu-west-1");
        let mut c = Map::new();
        c.insert("region".into(), "us-east-2".into());
        from_environment("aws", &mut c, &env);
        assert_eq!(c["region"], "us-east-2", "the config wins");
        let mut c = Map::new();
        from_environment("azure", &mut c, &env);
        assert_eq!(c["subscription_id"], "00000000-0000-0000-0000-000000000001");
        let mut c = Map::new();
        from_environment("gcp", &mut c, &env);
        assert_eq!(c["project"], "gcloud-project");
        let mut c = Map::new();
        assert!(from_environment("http", &mut c, &env).is_empty());
    }

    #[test]
    fn secrets_come_from_variables_and_files_never_inline() {
        let dir = std::env::temp_dir().join(format!("hs-secret-{}", std::process::id()));
        std::fs::write(&dir, "s3cret\n").unwrap();
        let mut c = Map::new();
        secrets(&mut c, &[format!("password=file:{}", dir.display())]).unwrap();
        assert_eq!(c["password"], "s3cret");
        std::fs::remove_file(&dir).unwrap();
        let e = secrets(&mut c, &["password=hunter2".to_string()]).unwrap_err();
        assert!(
            e.contains("env:NAME or file:PATH") && !e.contains("hunter2"),
            "{e}"
        );
        let e = secrets(&mut c, &["password=env:HS_SURELY_UNSET_VAR".into()]).unwrap_err();
        assert!(e.contains("HS_SURELY_UNSET_VAR"), "{e}");
    }
}
