//! The conformance suite (issue 24 point 6): the same checks, written once in
//! tests/support/conformance.rs, run for every provider against its own peer. Each provider
//! below implements [`Conformance`]: how to make a client, what its peer holds in a cloud wait,
//! what an export can leave or create there, its wrong credential and secrets, its unknown and
//! hostile sources, and how it meets a silent peer.
//!
//! Every (provider, check) pair is its own test, so the providers run in parallel; tests of one
//! provider share its peer (one moto, one Azurite, one fake-gcs-server per process) and keep
//! apart by a tag in every name and prefix they use.
//!
//! This suite has absorbed tests/secrets.rs: its recognisable secrets (HTTP headers, a signed
//! URL's query, an AWS secret key and session token, a vSphere password, secrets of the wrong
//! type in a config) are check 2's, and check 2 adds Azure, GCP and Hyper-V.

// A single-provider build leaves some of the providers' shared helpers unused.
#![cfg_attr(
    not(all(
        feature = "aws",
        feature = "azure",
        feature = "gcp",
        feature = "hyperv",
        feature = "vsphere"
    )),
    allow(dead_code, unused_imports)
)]

mod support;

use std::net::SocketAddr;
use std::path::Path;

use hypersdk::{Client, Phase};
use serde_json::{Value, json};
use support::conformance::{self as check, Conformance, Credential, Held, Probe, Silent, tag};

/// `base` with `extra`'s keys set over it.
fn merge(mut base: Value, extra: Value) -> Value {
    for (k, v) in extra.as_object().unwrap() {
        base[k] = v.clone();
    }
    base
}

/// Percent-encodes every byte but ASCII letters and digits (a path segment that is data).
fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// The ids the suite looks for at a peer in a source: the source itself, after a kind prefix
/// (`vm:`, `instance:`), and its last path segment.
fn names_of(sources: &[String]) -> Vec<String> {
    let mut out = Vec::new();
    for s in sources {
        let bare = s.split_once(':').map_or(s.as_str(), |(k, rest)| {
            if k.chars().all(|c| c.is_ascii_alphabetic()) && !rest.starts_with("//") {
                rest
            } else {
                s.as_str()
            }
        });
        for n in [s.as_str(), bare, bare.rsplit('/').next().unwrap_or(bare)] {
            if !n.is_empty() && !out.iter().any(|o| o == n) {
                out.push(n.to_string());
            }
        }
    }
    out
}

// ---- http: the test server (no cloud side) ---------------------------------------------------

mod http_peer {
    use super::*;
    use support::server::{Faults, TestServer, pattern};

    pub struct Http {
        server: TestServer,
        tag: String,
        _rt: tokio::runtime::Runtime,
    }

    impl Http {
        pub fn new() -> Http {
            let rt = support::peer_runtime();
            let server = rt.block_on(TestServer::start());
            Http {
                server,
                tag: tag(),
                _rt: rt,
            }
        }
    }

    impl Conformance for Http {
        fn provider(&self) -> &'static str {
            "http"
        }

        fn client(&self) -> Client {
            Client::new("http", "{}").unwrap()
        }

        /// No cloud side: the cancel lands mid-download, and what must not stay is the temp
        /// file (keep_partial is false), which the suite checks in the output folder.
        fn held(&self) -> Vec<Held> {
            let name = format!("held-{}.raw", self.tag);
            self.server.put(&name, pattern(8 << 20, 3));
            self.server.set_faults(Faults {
                bytes_per_sec: 1 << 20,
                ..Default::default()
            });
            vec![Held {
                what: "download",
                source: self.server.url(&name),
                options: json!({}),
                phase: Phase::Downloading,
                ready: Box::new(|p| p.bytes_done > 0),
                steps: Some(vec![]),
            }]
        }

        /// A web server keeps nothing of a GET: the output folder (the suite's own check) is
        /// all an export can leave.
        fn leftovers(&self, _: &[String]) -> Vec<String> {
            vec![]
        }

        fn created(&self, _: &[String]) -> Vec<String> {
            vec![]
        }

        fn wrong_credential(&self) -> Result<Credential, &'static str> {
            let t = &self.tag;
            self.server.put("d.vmdk", pattern(100_000, 1));
            self.server.set_faults(Faults {
                require_auth: Some(format!("Bearer the-right-one-{t}")),
                ..Default::default()
            });
            let config =
                json!({"headers": {"Authorization": format!("Bearer SECRET-HTTP-AUTH-{t}")}})
                    .to_string();
            let o = json!({"headers": {"x-api-key": format!("SECRET-HTTP-KEY-{t}")}, "max_attempts": 2});
            Ok(Credential {
                secrets: ["AUTH", "KEY", "SIG", "PORT", "CONN"]
                    .iter()
                    .map(|k| format!("SECRET-HTTP-{k}-{t}"))
                    .chain([format!("the-right-one-{t}"), "71234987".into()])
                    .collect(),
                // Refused (401), with a signature in the URL.
                logins: vec![(
                    config.clone(),
                    vec![(
                        format!(
                            "{}?X-Amz-Signature=SECRET-HTTP-SIG-{t}",
                            self.server.url("d.vmdk")
                        ),
                        o.clone(),
                    )],
                )],
                probes: vec![
                    // A URL that does not parse, and one whose host does not answer.
                    Probe::Export {
                        config: config.clone(),
                        source: format!("https://h:99999/d.vmdk?sig=SECRET-HTTP-PORT-{t}"),
                        options: o.clone(),
                    },
                    Probe::Export {
                        config: config.clone(),
                        source: format!("http://127.0.0.1:9/d.vmdk?sig=SECRET-HTTP-CONN-{t}"),
                        options: o,
                    },
                    // A header value of the wrong type in the client config.
                    Probe::Config(r#"{"headers": {"Authorization": 71234987}}"#.into()),
                ],
            })
        }

        fn unknown_sources(&self) -> Vec<(String, Value)> {
            vec![(
                self.server.url(&format!("nosuch-{}.vmdk", self.tag)),
                json!({}),
            )]
        }

        /// The id as the whole source (not a URL: refused), and as the last segment of a URL
        /// the server has (handled as data: the file name made of it stays in the folder).
        fn hostile_sources(&self, id: &str) -> Vec<(String, Value)> {
            let path = encode(id);
            self.server.put(&path, pattern(1000, 9));
            vec![
                (id.to_string(), json!({})),
                (self.server.url(&path), json!({})),
            ]
        }

        fn silent(&self, addr: SocketAddr) -> Vec<Silent> {
            vec![Silent {
                what: "the web server",
                config: json!({"api_timeout_ms": 300, "connect_timeout_ms": 300}).to_string(),
                source: format!("http://{addr}/d.vmdk"),
                options: json!({"stall_timeout_ms": 300, "max_attempts": 2}),
                connects: true,
            }]
        }
    }
}

// ---- aws: moto + the EC2 export-task stand-in -------------------------------------------------

#[cfg(feature = "aws")]
mod aws_peer {
    use super::*;
    use support::moto::moto;

    pub struct Aws {
        /// Every task of this value writes under it; under "slow/" the peer's tasks never
        /// finish.
        prefix: String,
    }

    impl Aws {
        pub fn new() -> Aws {
            Aws {
                prefix: format!("slow/conf-{}/", tag()),
            }
        }

        fn token_object(&self) -> String {
            format!("s3://exports/{}token.raw", self.prefix)
        }

        fn task_opts(&self) -> Value {
            json!({"s3_bucket": "exports", "s3_prefix": self.prefix, "poll_interval_ms": 50})
        }

        /// The peer's tasks writing under this value's prefix.
        fn tasks(&self) -> Vec<Value> {
            moto()
                .tasks()
                .into_iter()
                .filter(|t| t["key"].as_str().unwrap_or("").starts_with(&self.prefix))
                .collect()
        }
    }

    impl Conformance for Aws {
        fn provider(&self) -> &'static str {
            "aws"
        }

        fn client(&self) -> Client {
            Client::new("aws", &moto().config()).unwrap()
        }

        fn held(&self) -> Vec<Held> {
            let m = moto();
            [
                ("instance export task", "instance_id"),
                ("image export task", "image_id"),
            ]
            .into_iter()
            .map(|(what, k)| Held {
                what,
                source: m.s(k),
                options: self.task_opts(),
                phase: Phase::WaitingForCloud,
                ready: Box::new(|p| p.message.contains("never finishes")),
                steps: Some(vec!["cancelling export task export-".into()]),
            })
            .collect()
        }

        fn leftovers(&self, _: &[String]) -> Vec<String> {
            self.tasks()
                .into_iter()
                .filter(|t| matches!(t["state"].as_str(), Some("active" | "cancelling")))
                .map(|t| format!("export task {} {}", t["id"], t["state"]))
                .collect()
        }

        fn created(&self, _: &[String]) -> Vec<String> {
            self.tasks()
                .into_iter()
                .map(|t| format!("export task {} of {}", t["id"], t["resource"]))
                .collect()
        }

        fn wrong_credential(&self) -> Result<Credential, &'static str> {
            let m = moto();
            let t = tag();
            let cfg = |token: bool| {
                let mut c = json!({"region": "us-east-1", "endpoint_url": m.s("endpoint"),
                                   "access_key_id": m.s("access_key_id"),
                                   "secret_access_key": format!("SECRET-AWS-KEY-{t}")});
                if token {
                    c["session_token"] = format!("SECRET-AWS-TOKEN-{t}").into();
                }
                c.to_string()
            };
            Ok(Credential {
                secrets: vec![
                    format!("SECRET-AWS-KEY-{t}"),
                    format!("SECRET-AWS-TOKEN-{t}"),
                    "99887766".into(),
                    m.s("secret_access_key"),
                ],
                logins: vec![
                    // A wrong secret key: EC2 and S3 both sign.
                    (
                        cfg(false),
                        vec![
                            (m.s("instance_id"), self.task_opts()),
                            ("s3://exports/plain/disk.raw".into(), json!({})),
                        ],
                    ),
                    // With a session token as well (the AMI path and another object, so the
                    // known gaps name their case).
                    (
                        cfg(true),
                        vec![
                            (m.s("image_id"), self.task_opts()),
                            (self.token_object(), json!({})),
                        ],
                    ),
                ],
                probes: vec![Probe::Config(
                    json!({"region": "us-east-1", "access_key_id": "AK", "secret_access_key": 99887766})
                        .to_string(),
                )],
            })
        }

        /// A wrong session token reaches S3 first as a HEAD (HeadBucket before an export task,
        /// HeadObject for an object), and S3 refuses a bad token with a bare 400: a HEAD
        /// answer has no body to say InvalidToken in. Real S3 does the same.
        fn unknown_sources(&self) -> Vec<(String, Value)> {
            vec![
                ("i-0123456789abcdef0".into(), self.task_opts()),
                ("ami-0123456789abcdef0".into(), self.task_opts()),
                (
                    format!("s3://exports/{}missing.raw", self.prefix),
                    json!({}),
                ),
            ]
        }

        fn hostile_sources(&self, id: &str) -> Vec<(String, Value)> {
            vec![
                (id.to_string(), self.task_opts()),
                (format!("i-{id}"), self.task_opts()),
                (format!("ami-{id}"), self.task_opts()),
                (format!("s3://exports/{id}"), json!({})),
                (format!("s3://{id}/key"), json!({})),
            ]
        }

        fn silent(&self, addr: SocketAddr) -> Vec<Silent> {
            let m = moto();
            vec![Silent {
                what: "EC2 and S3",
                config: json!({"region": "us-east-1", "endpoint_url": format!("http://{addr}"),
                               "access_key_id": m.s("access_key_id"),
                               "secret_access_key": m.s("secret_access_key"),
                               "api_timeout_ms": 300, "connect_timeout_ms": 300})
                .to_string(),
                source: m.s("instance_id"),
                options: self.task_opts(),
                connects: true,
            }]
        }
    }
}

// ---- azure: Azurite behind the ARM and Entra ID stand-in --------------------------------------

#[cfg(feature = "azure")]
mod azure_peer {
    use super::*;
    use std::sync::OnceLock;
    use support::azure::azure;

    /// A 1 MiB page blob's worth of known bytes (nothing here is downloaded).
    fn fixture() -> &'static Path {
        static F: OnceLock<std::path::PathBuf> = OnceLock::new();
        F.get_or_init(|| {
            let p = azure().dir.path().join("conformance.raw");
            std::fs::write(&p, support::server::pattern(1 << 20, 17)).unwrap();
            p
        })
    }

    pub struct Azure {
        tag: String,
    }

    impl Azure {
        pub fn new() -> Azure {
            Azure { tag: tag() }
        }

        fn config_with(&self, extra: Value) -> String {
            merge(serde_json::from_str(&azure().config()).unwrap(), extra).to_string()
        }
    }

    impl Conformance for Azure {
        fn provider(&self) -> &'static str {
            "azure"
        }

        fn client(&self) -> Client {
            Client::new("azure", &azure().config()).unwrap()
        }

        fn options(&self, dir: &Path, extra: Value) -> String {
            support::opts(dir, merge(json!({"poll_interval_ms": 50}), extra))
        }

        fn held(&self) -> Vec<Held> {
            let az = azure();
            let (grant, snap) = (
                format!("held-{}", self.tag),
                format!("heldatt-{}", self.tag),
            );
            az.add("disks", &grant, fixture(), "Unattached", None);
            az.faults(&grant, json!({"hold": ["grant"]}));
            az.add("disks", &snap, fixture(), "Attached", None);
            az.faults(&snap, json!({"hold": ["snapshot"]}));
            vec![
                Held {
                    what: "grant held",
                    steps: Some(vec![format!("revoking read access to {grant}")]),
                    source: grant,
                    options: json!({}),
                    phase: Phase::WaitingForCloud,
                    ready: Box::new(|p| p.message.contains("read access")),
                },
                Held {
                    what: "snapshot of an attached disk held",
                    steps: Some(vec![format!("deleting snapshot {snap}-hs-")]),
                    source: snap,
                    options: json!({}),
                    phase: Phase::WaitingForCloud,
                    ready: Box::new(|p| p.message.contains("snapshotting")),
                },
            ]
        }

        fn leftovers(&self, sources: &[String]) -> Vec<String> {
            let mut out = Vec::new();
            for n in names_of(sources) {
                let s = azure().disk(&n);
                if s["active_policies"].as_u64().unwrap_or(0) > 0 {
                    out.push(format!("{n}: SAS policies {}", s["active_policies"]));
                }
                if s["state"] == "ActiveSAS" {
                    out.push(format!("{n}: still granted"));
                }
                if !s["snapshots_left"].as_array().is_none_or(|a| a.is_empty()) {
                    out.push(format!("{n}: snapshots {}", s["snapshots_left"]));
                }
            }
            out
        }

        fn created(&self, sources: &[String]) -> Vec<String> {
            let mut out = Vec::new();
            for n in names_of(sources) {
                let s = azure().disk(&n);
                for k in ["grants", "snapshots_made"] {
                    if s[k].as_u64().unwrap_or(0) > 0 {
                        out.push(format!("{n}: {k} {}", s[k]));
                    }
                }
            }
            out
        }

        fn wrong_credential(&self) -> Result<Credential, &'static str> {
            let az = azure();
            let wrong = format!("SECRET-AZ-{}", self.tag);
            Ok(Credential {
                secrets: vec![wrong.clone(), "66778899".into(), az.s("client_secret")],
                logins: vec![(
                    az.config_with_secret(&wrong),
                    vec![(format!("nosuch-{}", self.tag), json!({}))],
                )],
                probes: vec![Probe::Config(
                    self.config_with(json!({"client_secret": 66778899})),
                )],
            })
        }

        fn unknown_sources(&self) -> Vec<(String, Value)> {
            let t = &self.tag;
            vec![
                (format!("nosuch-{t}"), json!({})),
                (format!("vm:nosuchvm-{t}"), json!({})),
                (
                    format!(
                        "/subscriptions/{}/resourceGroups/rg1/providers/Microsoft.Compute/snapshots/nosuchsnap-{t}",
                        azure().s("subscription")
                    ),
                    json!({}),
                ),
            ]
        }

        fn hostile_sources(&self, id: &str) -> Vec<(String, Value)> {
            vec![
                (id.to_string(), json!({})),
                (format!("vm:{id}"), json!({})),
                (
                    format!(
                        "/subscriptions/{}/resourceGroups/rg1/providers/Microsoft.Compute/disks/{id}",
                        azure().s("subscription")
                    ),
                    json!({}),
                ),
            ]
        }

        /// Entra ID silent (the token comes first), then ARM silent behind a working Entra ID.
        fn silent(&self, addr: SocketAddr) -> Vec<Silent> {
            let at = format!("https://{addr}");
            let net = json!({"api_timeout_ms": 300, "connect_timeout_ms": 300});
            vec![
                Silent {
                    what: "Entra ID",
                    config: self.config_with(merge(json!({"authority_host": at}), net.clone())),
                    source: format!("silent-{}", self.tag),
                    options: json!({}),
                    connects: true,
                },
                Silent {
                    what: "ARM",
                    config: self.config_with(merge(json!({"arm_endpoint": at}), net)),
                    source: format!("silent-{}", self.tag),
                    options: json!({}),
                    connects: true,
                },
            ]
        }
    }
}

// ---- gcp: fake-gcs-server behind the Compute + Cloud Build stand-in ---------------------------

#[cfg(feature = "gcp")]
mod gcp_peer {
    use super::*;
    use support::gcp::{BUCKET, PROJECT, ZONE, gcp};

    pub struct Gcp {
        tag: String,
        /// The client's object prefix: every object this value's exports write is under it.
        prefix: String,
    }

    impl Gcp {
        pub fn new() -> Gcp {
            let tag = tag();
            Gcp {
                prefix: format!("conf-{tag}/"),
                tag,
            }
        }

        fn config(&self, extra: Value) -> String {
            gcp().config(merge(json!({"prefix": self.prefix}), extra))
        }

        fn unknown_image(&self) -> String {
            format!("projects/{PROJECT}/global/images/nosuchimg-{}", self.tag)
        }

        /// Builds of images named after `n`, or writing under this value's prefix.
        fn builds(&self, n: &str) -> Vec<Value> {
            let dest = format!("-destination_uri=gs://{BUCKET}/{}", self.prefix);
            gcp().stats()["builds"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|b| {
                    b["image"]
                        .as_str()
                        .unwrap_or("")
                        .starts_with(&format!("hs-{n}-"))
                        || b["args"].as_array().is_some_and(|a| {
                            a.iter()
                                .any(|x| x.as_str().unwrap_or("").starts_with(&dest))
                        })
                })
                .cloned()
                .collect()
        }
    }

    impl Conformance for Gcp {
        fn provider(&self) -> &'static str {
            "gcp"
        }

        fn client(&self) -> Client {
            Client::new("gcp", &self.config(json!({}))).unwrap()
        }

        fn options(&self, dir: &Path, extra: Value) -> String {
            support::opts(dir, merge(json!({"poll_interval_ms": 50}), extra))
        }

        fn held(&self) -> Vec<Held> {
            let g = gcp();
            let (img, build) = (
                format!("hold-img-{}", self.tag),
                format!("hold-build-{}", self.tag),
            );
            g.disk(&img, 1 << 20, 47, &[]);
            g.faults(&img, json!({"hold_image": true}));
            g.disk(&build, 1 << 20, 47, &[]);
            g.faults(&build, json!({"hold_build": true}));
            vec![
                Held {
                    what: "image creation held",
                    steps: Some(vec![format!("deleting image hs-{img}-")]),
                    source: img,
                    options: json!({}),
                    phase: Phase::WaitingForCloud,
                    ready: Box::new(|p| p.message.contains("creating image")),
                },
                Held {
                    what: "export build held",
                    steps: Some(vec![
                        "cancelling export build ".into(),
                        // The object's name is unique per run: `{disk}-{tag}.vmdk`.
                        format!("deleting gs://{BUCKET}/{}{build}-", self.prefix),
                        format!("deleting image hs-{build}-"),
                    ]),
                    source: build,
                    options: json!({}),
                    phase: Phase::WaitingForCloud,
                    ready: Box::new(|p| p.message.contains("Cloud Build")),
                },
            ]
        }

        fn leftovers(&self, sources: &[String]) -> Vec<String> {
            let g = gcp();
            let mut out = Vec::new();
            for n in names_of(sources) {
                out.extend(
                    g.live_images_of(&n)
                        .into_iter()
                        .map(|i| format!("image {i}")),
                );
                for b in self.builds(&n) {
                    if matches!(b["status"].as_str(), Some("WORKING" | "QUEUED")) {
                        out.push(format!("build {} {}", b["id"], b["status"]));
                    }
                }
            }
            out.extend(
                g.objects_under(BUCKET, &self.prefix)
                    .into_iter()
                    .map(|o| format!("object {o}")),
            );
            out.dedup();
            out
        }

        fn created(&self, sources: &[String]) -> Vec<String> {
            let g = gcp();
            let mut out = Vec::new();
            for n in names_of(sources) {
                out.extend(
                    g.images_made_of(&n)
                        .into_iter()
                        .map(|i| format!("image {i}")),
                );
                out.extend(
                    self.builds(&n)
                        .into_iter()
                        .map(|b| format!("build {}", b["id"])),
                );
            }
            out.extend(
                g.objects_under(BUCKET, &self.prefix)
                    .into_iter()
                    .map(|o| format!("object {o}")),
            );
            out.dedup();
            out
        }

        fn wrong_credential(&self) -> Result<Credential, &'static str> {
            let t = &self.tag;
            let g = gcp();
            // A login the token endpoint refuses (neither its refresh token nor its secret is
            // the stand-in's).
            let creds = json!({
                "type": "authorized_user", "client_id": "hs-test-client",
                "client_secret": format!("SECRET-GCP-CS-{t}"),
                "refresh_token": format!("SECRET-GCP-RT-{t}"),
                "token_uri": format!("{}/token", g.url()),
            });
            Ok(Credential {
                secrets: vec![
                    format!("SECRET-GCP-CS-{t}"),
                    format!("SECRET-GCP-RT-{t}"),
                    format!("SECRET-GCP-BADJSON-{t}"),
                    "cs-good".into(),
                    "rt-good".into(),
                ],
                logins: vec![(
                    self.config(json!({"credentials_json": creds.to_string()})),
                    vec![
                        (format!("nosuch-{t}"), json!({})),
                        (
                            format!("gs://{BUCKET}/{}missing.img", self.prefix),
                            json!({}),
                        ),
                    ],
                )],
                // Credentials that do not parse, with a secret in them.
                probes: vec![Probe::Config(self.config(json!({"credentials_json":
                    format!("{{\"type\": \"authorized_user\", \"client_secret\": \"SECRET-GCP-BADJSON-{t}\"")}))) ],
            })
        }

        fn unknown_sources(&self) -> Vec<(String, Value)> {
            let t = &self.tag;
            vec![
                (format!("nosuch-{t}"), json!({})),
                (format!("instance:nosuchvm-{t}"), json!({})),
                (
                    format!("gs://{BUCKET}/{}missing.img", self.prefix),
                    json!({}),
                ),
                (
                    format!("projects/no-such-proj/zones/{ZONE}/disks/nosuch-{t}"),
                    json!({}),
                ),
                (self.unknown_image(), json!({})),
            ]
        }

        /// An image is not looked up before its export build is made: an unknown one becomes a
        /// build (created in the cloud) that fails, a Remote error, not NotFound.
        fn hostile_sources(&self, id: &str) -> Vec<(String, Value)> {
            vec![
                (id.to_string(), json!({})),
                (format!("instance:{id}"), json!({})),
                (format!("gs://{BUCKET}/{id}"), json!({})),
                (
                    format!("projects/{PROJECT}/zones/{ZONE}/disks/{id}"),
                    json!({}),
                ),
                (format!("projects/{PROJECT}/global/images/{id}"), json!({})),
            ]
        }

        /// The APIs silent, then the OAuth token endpoint silent.
        fn silent(&self, addr: SocketAddr) -> Vec<Silent> {
            let at = format!("http://{addr}");
            let net = json!({"api_timeout_ms": 300, "connect_timeout_ms": 300});
            let creds = json!({
                "type": "authorized_user", "client_id": "hs-test-client",
                "client_secret": "cs-good", "refresh_token": "rt-good",
                "token_uri": format!("{at}/token"),
            });
            vec![
                Silent {
                    what: "Compute, Cloud Build, Storage, Resource Manager and Service Usage",
                    config: self.config(merge(
                        json!({"storage_endpoint": at, "compute_endpoint": at,
                               "cloudbuild_endpoint": at, "resourcemanager_endpoint": at,
                               "serviceusage_endpoint": at}),
                        net.clone(),
                    )),
                    source: format!("silent-{}", self.tag),
                    options: json!({}),
                    connects: true,
                },
                Silent {
                    what: "the token endpoint",
                    config: self.config(merge(json!({"credentials_json": creds.to_string()}), net)),
                    source: format!("silent-{}", self.tag),
                    options: json!({}),
                    connects: true,
                },
            ]
        }
    }
}

// ---- vsphere: vcsim (its own per test) --------------------------------------------------------

#[cfg(feature = "vsphere")]
mod vsphere_peer {
    use super::*;
    use support::vcsim::Peer;

    pub struct Vsphere {
        /// Every export lease stays initializing (the cloud wait that never ends).
        peer: Peer,
    }

    impl Vsphere {
        pub fn new() -> Vsphere {
            Vsphere {
                peer: Peer::start(&["-hold-lease"]),
            }
        }

        fn stat(&self, k: &str) -> i64 {
            self.peer.stats()[k].as_i64().unwrap()
        }
    }

    impl Conformance for Vsphere {
        fn provider(&self) -> &'static str {
            "vsphere"
        }

        fn client(&self) -> Client {
            Client::new("vsphere", &self.peer.config()).unwrap()
        }

        fn held(&self) -> Vec<Held> {
            vec![Held {
                what: "lease initializing",
                source: "/DC0/vm/DC0_H0_VM0".into(),
                options: json!({}),
                phase: Phase::WaitingForCloud,
                ready: Box::new(|p| p.message.contains("initializing")),
                steps: Some(vec!["aborting the export lease".into()]),
            }]
        }

        fn leftovers(&self, _: &[String]) -> Vec<String> {
            match self.stat("open_leases") {
                0 => vec![],
                n => vec![format!("{n} open export leases")],
            }
        }

        fn created(&self, _: &[String]) -> Vec<String> {
            match self.stat("exports") {
                0 => vec![],
                n => vec![format!("{n} export leases")],
            }
        }

        /// The login is where a wrong password shows.
        fn wrong_credential(&self) -> Result<Credential, &'static str> {
            let t = tag();
            let cfg = |pw: Value| {
                json!({"url": self.peer.url(), "username": "admin", "password": pw,
                       "ca_bundle_path": self.peer.ca_file()})
                .to_string()
            };
            Ok(Credential {
                secrets: vec![
                    format!("SECRET-VS-PASS-{t}"),
                    "55443322".into(),
                    "s3cret-pass".into(),
                ],
                logins: vec![(cfg(json!(format!("SECRET-VS-PASS-{t}"))), vec![])],
                probes: vec![Probe::Config(cfg(json!(55443322)))],
            })
        }

        fn unknown_sources(&self) -> Vec<(String, Value)> {
            ["/DC0/vm/nope", "no-such-vm", "vm-99999"]
                .iter()
                .map(|s| (s.to_string(), json!({})))
                .collect()
        }

        fn hostile_sources(&self, id: &str) -> Vec<(String, Value)> {
            vec![
                (id.to_string(), json!({})),
                (format!("/DC0/vm/{id}"), json!({})),
                (format!("vm-{id}"), json!({})),
            ]
        }

        fn silent(&self, addr: SocketAddr) -> Vec<Silent> {
            vec![Silent {
                what: "the vCenter",
                config: json!({"url": format!("https://{addr}/sdk"), "username": "admin",
                               "password": "s3cret-pass", "ca_bundle_path": self.peer.ca_file(),
                               "api_timeout_ms": 300, "connect_timeout_ms": 300})
                .to_string(),
                source: "DC0_H0_VM0".into(),
                options: json!({}),
                connects: true,
            }]
        }
    }
}

// ---- hyperv: the PowerShell + Hyper-V stand-in (its own per test) -----------------------------

#[cfg(feature = "hyperv")]
mod hyperv_peer {
    use super::*;
    use support::hyperv::{HyperV as Standin, alive, vm};

    const HELD: &str = "6f1c2a3b-0d4e-4f5a-8b9c-0d1e2f3a4b51";
    const STUCK: &str = "6f1c2a3b-0d4e-4f5a-8b9c-0d1e2f3a4b52";
    const REMOTE: &str = "6f1c2a3b-0d4e-4f5a-8b9c-0d1e2f3a4b53";
    const RIGHT: &str = "R1ght-'Pa55\"$x";

    pub struct HyperV {
        hv: Standin,
        _share: tempfile::TempDir,
        tag: String,
    }

    impl HyperV {
        pub fn new() -> HyperV {
            let share = tempfile::tempdir().unwrap();
            let hv = Standin::new(json!({
                "vms": [
                    // Checkpoint made, then Hyper-V "prepares" forever: the cloud wait.
                    vm("held", HELD, json!({"hold_after_checkpoint": true})),
                    // A PowerShell that never answers: Hyper-V's silent peer.
                    vm("stuck", STUCK, json!({"hang_inventory": true})),
                    vm("remote-vm", REMOTE, json!({})),
                ],
                "remote": {"transport": "winrm", "host": "hv1.example", "username": "CORP\\ops", "password": RIGHT},
                "share": {"host": "\\\\nas\\exports", "local": share.path()},
            }));
            HyperV {
                hv,
                _share: share,
                tag: tag(),
            }
        }
    }

    impl Conformance for HyperV {
        fn provider(&self) -> &'static str {
            "hyperv"
        }

        fn client(&self) -> Client {
            Client::new("hyperv", &self.hv.config(json!({}))).unwrap()
        }

        fn options(&self, dir: &Path, extra: Value) -> String {
            support::opts(dir, merge(json!({"poll_file_interval_ms": 20}), extra))
        }

        /// Hyper-V's cleanup is the provider's own (cleanup.ps1), not ledger steps: the
        /// stand-in's state tells whether it ran.
        fn held(&self) -> Vec<Held> {
            vec![Held {
                what: "checkpoint made, export not started",
                source: "held".into(),
                options: json!({}),
                phase: Phase::WaitingForCloud,
                ready: Box::new(|p| p.message.contains("checkpoint made")),
                steps: None,
            }]
        }

        fn leftovers(&self, _: &[String]) -> Vec<String> {
            let s = self.hv.state();
            let mut out: Vec<String> = s["checkpoints"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| format!("checkpoint {c}"))
                .collect();
            // Jobs with a process are the stand-in's export and conversion jobs; the others are
            // the host's own (a checkpoint's merge) or other parties'.
            for j in s["jobs"].as_array().unwrap() {
                if j["pid"].as_i64().is_some_and(alive) {
                    out.push(format!("running export job {j}"));
                }
            }
            for c in self.hv.calls() {
                if c["script"] == "export" && alive(c["pid"].as_i64().unwrap()) {
                    out.push(format!("PowerShell {} still runs", c["pid"]));
                }
            }
            out
        }

        /// An export script run (it makes the checkpoint) for a VM named in `sources` or for
        /// no VM of the host; any checkpoint.
        fn created(&self, sources: &[String]) -> Vec<String> {
            let s = self.hv.state();
            let vms = s["vms"].as_array().unwrap();
            let id_of = |name: &str| {
                vms.iter()
                    .find(|v| v["name"].as_str().unwrap().eq_ignore_ascii_case(name))
                    .map(|v| v["id"].as_str().unwrap().to_string())
            };
            let ours: Vec<String> = sources.iter().filter_map(|n| id_of(n)).collect();
            let mut out: Vec<String> = s["checkpoints"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| format!("checkpoint {c}"))
                .collect();
            for c in self.hv.calls() {
                let id = c["input"]["id"].as_str().unwrap_or("").to_string();
                let known = vms.iter().any(|v| v["id"] == id.as_str());
                if c["script"] == "export" && (ours.contains(&id) || !known) {
                    out.push(format!("export of {id}"));
                }
            }
            out
        }

        /// The WinRM password of a remote host (a local host takes no credential).
        fn wrong_credential(&self) -> Result<Credential, &'static str> {
            let wrong = format!("SECRET-HV-{}-'\"$x", self.tag);
            let cfg = |pw: Value| {
                self.hv
                    .config(json!({"host": "hv1.example", "username": "CORP\\ops", "password": pw}))
            };
            Ok(Credential {
                secrets: vec![wrong.clone(), RIGHT.into(), "44332211".into()],
                logins: vec![(
                    cfg(json!(wrong)),
                    vec![(
                        "remote-vm".into(),
                        json!({"export_type": "vhd-only", "host_output_dir": "\\\\nas\\exports"}),
                    )],
                )],
                probes: vec![Probe::Config(cfg(json!(44332211)))],
            })
        }

        fn unknown_sources(&self) -> Vec<(String, Value)> {
            vec![
                (format!("nope-{}", self.tag), json!({})),
                ("00000000-0000-4000-8000-00000000ffff".into(), json!({})),
            ]
        }

        /// A VM name reaches PowerShell as data (on stdin): a hostile one is a name the host
        /// does not have.
        fn hostile_sources(&self, id: &str) -> Vec<(String, Value)> {
            vec![(id.to_string(), json!({}))]
        }

        /// No socket: Hyper-V's silent peer is a PowerShell that never answers, ended by the
        /// client's `timeout_secs`.
        fn silent(&self, _: SocketAddr) -> Vec<Silent> {
            vec![Silent {
                what: "PowerShell",
                config: self.hv.config(json!({"timeout_secs": 2})),
                source: "stuck".into(),
                options: json!({}),
                connects: false,
            }]
        }
    }
}

/// The suite's checks, one test each, for one provider.
macro_rules! conformance {
    ($(#[$m:meta])* $provider:ident, $make:expr) => {
        $(#[$m])*
        mod $provider {
            use super::*;

            #[test]
            fn cancel_in_the_cloud_wait_leaves_nothing_and_lists_the_cleanup() {
                check::cancel_in_the_cloud_wait(&$make);
            }

            #[test]
            fn wrong_credential_is_auth_and_no_secret_shows() {
                check::wrong_credential(&$make);
            }

            #[test]
            fn unknown_source_is_not_found_before_anything_is_created() {
                check::unknown_source(&$make);
            }

            #[test]
            fn hostile_ids_are_refused_or_data_and_stay_in_the_folder() {
                check::hostile_ids(&$make);
            }

            #[test]
            fn a_silent_peer_ends_by_the_deadline() {
                check::silent_peer(&$make);
            }
        }
    };
}

conformance!(http, http_peer::Http::new());
conformance!(
    #[cfg(feature = "aws")]
    aws,
    aws_peer::Aws::new()
);
conformance!(
    #[cfg(feature = "azure")]
    azure,
    azure_peer::Azure::new()
);
conformance!(
    #[cfg(feature = "gcp")]
    gcp,
    gcp_peer::Gcp::new()
);
conformance!(
    #[cfg(feature = "vsphere")]
    vsphere,
    vsphere_peer::Vsphere::new()
);
conformance!(
    #[cfg(feature = "hyperv")]
    hyperv,
    hyperv_peer::HyperV::new()
);
