//! GCP source ids (`disk:N`, `projects/P/zones/Z/disks/N`, regional disks, instances, images,
//! `gs://` objects), the names Google accepts (resources, projects, buckets, networks, service
//! accounts), and the build's time limits.

use crate::error::{Error, Result};

/// Cloud Build's longest build: 24 hours.
pub(crate) const MAX_BUILD_SECS: u64 = 86_400;

/// The default timeout of each cloud-side stage for a disk of `gib` GiB: Google's maintainers
/// quote about 12 hours per TB for an image export, so 12 h / 1024 GiB per GiB, never under
/// the 2 hours gcloud defaults to, never over Cloud Build's 24 hours.
pub(crate) fn stage_timeout(gib: u64) -> u64 {
    const FLOOR: u64 = 7_200;
    (gib.saturating_mul(12 * 3_600) / 1_024).clamp(FLOOR, MAX_BUILD_SECS)
}

/// A network or subnetwork as `-network`/`-subnet` take it: a name, or a
/// `projects/P/global/networks/N` / `projects/P/regions/R/subnetworks/N` path (a full
/// `https://…/compute/v1/` URL too).
pub(crate) fn is_network_ref(s: &str) -> bool {
    let path = s.split_once("/compute/v1/").map(|(_, p)| p).unwrap_or(s);
    let parts: Vec<&str> = path.split('/').collect();
    match parts.as_slice() {
        [n] => is_name(n),
        ["projects", p, "global", "networks", n] => is_project(p) && is_name(n),
        ["projects", p, "regions", r, "subnetworks", n] => {
            is_project(p) && is_name(r) && is_name(n)
        }
        _ => false,
    }
}

/// `name@project.iam.gserviceaccount.com`, `N-compute@developer.gserviceaccount.com`, …
pub(crate) fn is_service_account(s: &str) -> bool {
    match s.split_once('@') {
        Some((user, domain)) => {
            (1..=100).contains(&user.len())
                && user
                    .bytes()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-')
                && domain.ends_with(".gserviceaccount.com")
                && domain
                    .bytes()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || b".-:".contains(&c))
        }
        None => false,
    }
}

/// The region of a zone (`europe-west1-b` → `europe-west1`).
pub(crate) fn zone_region(zone: &str) -> &str {
    zone.rsplit_once('-').map(|(r, _)| r).unwrap_or(zone)
}

/// What to export.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Source {
    Disk {
        project: String,
        /// `zones/Z` (a zonal persistent disk) or `regions/R` (a regional one).
        location: String,
        name: String,
    },
    Instance {
        project: String,
        zone: String,
        name: String,
    },
    Image {
        project: String,
        name: String,
    },
    Object {
        bucket: String,
        name: String,
    },
}

/// `projects/P/zones/Z/disks/N`, `projects/P/regions/R/disks/N` (a regional disk), `disk:N`,
/// `N`; `projects/P/zones/Z/instances/N`,
/// `instance:N`; `projects/P/global/images/N`, `image:N`; `gs://BUCKET/OBJECT`. A full
/// `https://…/compute/v1/` URL is read as its path.
pub(crate) fn parse_source(src: &str, project: Option<&str>, zone: Option<&str>) -> Result<Source> {
    let bad = |why: &str| Error::InvalidArgument(format!("gcp source {src:?}: {why}"));
    if let Some(rest) = src.strip_prefix("gs://") {
        let (bucket, name) = rest
            .split_once('/')
            .ok_or_else(|| bad("gs://BUCKET/OBJECT"))?;
        if !is_bucket(bucket) {
            return Err(bad("not a bucket name"));
        }
        if name.is_empty() || name.len() > 1024 || name.chars().any(char::is_control) {
            return Err(bad("not an object name"));
        }
        return Ok(Source::Object {
            bucket: bucket.into(),
            name: name.into(),
        });
    }
    let path = src
        .split_once("/compute/v1/")
        .map(|(_, p)| p)
        .unwrap_or(src);
    let need_project = || {
        project
            .map(str::to_string)
            .ok_or_else(|| bad("no project: set project in the config or options"))
    };
    let need_zone = || {
        zone.map(str::to_string)
            .ok_or_else(|| bad("no zone: set zone in the config or options"))
    };
    let parts: Vec<&str> = path.split('/').collect();
    let mut regional = false;
    let (kind, project, zone, name) = match parts.as_slice() {
        ["projects", p, "zones", z, kind @ ("disks" | "instances"), n] => {
            (*kind, p.to_string(), Some(z.to_string()), *n)
        }
        ["projects", p, "regions", r, "disks", n] => {
            regional = true;
            ("disks", p.to_string(), Some(r.to_string()), *n)
        }
        ["projects", p, "global", "images", n] => ("images", p.to_string(), None, *n),
        [one] => match one.split_once(':') {
            Some(("disk", n)) => ("disks", need_project()?, Some(need_zone()?), n),
            Some(("instance", n)) => ("instances", need_project()?, Some(need_zone()?), n),
            Some(("image", n)) => ("images", need_project()?, None, n),
            None => ("disks", need_project()?, Some(need_zone()?), *one),
            Some(_) => return Err(bad("unknown kind (disk:, instance:, image:, gs://)")),
        },
        _ => return Err(bad("not a disk, instance, image or gs:// object")),
    };
    if !is_project(&project) {
        return Err(bad("not a project id"));
    }
    if zone.as_deref().is_some_and(|z| !is_name(z)) {
        return Err(bad(if regional {
            "not a region name"
        } else {
            "not a zone name"
        }));
    }
    if !is_name(name) {
        return Err(bad("not a resource name (lowercase letters, digits, -)"));
    }
    let name = name.to_string();
    Ok(match kind {
        "disks" => Source::Disk {
            project,
            location: format!(
                "{}/{}",
                if regional { "regions" } else { "zones" },
                zone.expect("zone")
            ),
            name,
        },
        "instances" => Source::Instance {
            project,
            zone: zone.expect("zone"),
            name,
        },
        _ => Source::Image { project, name },
    })
}

/// A Compute resource name: `[a-z]([-a-z0-9]{0,61}[a-z0-9])?`.
pub(crate) fn is_name(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b[0].is_ascii_lowercase()
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        && !s.ends_with('-')
}

/// A project id (`my-proj-123`, or domain-scoped `example.com:proj`).
pub(crate) fn is_project(s: &str) -> bool {
    let id = s.rsplit(':').next().unwrap_or(s);
    let domain_ok = match s.rsplit_once(':') {
        Some((d, _)) => {
            !d.is_empty()
                && d.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '.' || c == '-')
        }
        None => true,
    };
    domain_ok && (6..=30).contains(&id.len()) && is_name(id)
}

/// A bucket name (3–222 chars of `a-z0-9._-`, starting and ending with a letter or digit).
pub(crate) fn is_bucket(s: &str) -> bool {
    let b = s.as_bytes();
    (3..=222).contains(&b.len())
        && b.iter().all(|c| {
            c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, b'.' | b'_' | b'-')
        })
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_parse_and_hostile_names_are_refused() {
        let s = |x: &str| parse_source(x, Some("proj-123"), Some("europe-west1-b"));
        assert_eq!(
            s("web-1").unwrap(),
            Source::Disk {
                project: "proj-123".into(),
                location: "zones/europe-west1-b".into(),
                name: "web-1".into()
            }
        );
        assert_eq!(
            s("projects/proj-123/regions/europe-west1/disks/shared-1").unwrap(),
            Source::Disk {
                project: "proj-123".into(),
                location: "regions/europe-west1".into(),
                name: "shared-1".into()
            }
        );
        assert_eq!(
            s("https://www.googleapis.com/compute/v1/projects/other-proj/zones/us-east1-c/instances/vm-a").unwrap(),
            Source::Instance {
                project: "other-proj".into(),
                zone: "us-east1-c".into(),
                name: "vm-a".into()
            }
        );
        assert_eq!(
            s("projects/proj-123/global/images/img-1").unwrap(),
            Source::Image {
                project: "proj-123".into(),
                name: "img-1".into()
            }
        );
        assert_eq!(
            s("gs://b-1/dir/x y.vmdk").unwrap(),
            Source::Object {
                bucket: "b-1".into(),
                name: "dir/x y.vmdk".into()
            }
        );
        for bad in [
            "a'b\"c; rm -rf /",
            "../x",
            "disk:UPPER",
            "projects/p/zones/z/disks/../../x",
            "projects/proj-123/zones/z1/snapshots/s",
            "projects/proj-123/regions/r1/instances/i",
            "projects/proj-123/regions/R1/disks/d",
            "gs://B/x",
            "gs://bucket",
            "gs://bucket/a\nb",
            "",
            "web%2F1",
        ] {
            let e = s(bad).unwrap_err();
            assert!(matches!(e, Error::InvalidArgument(_)), "{bad}: {e}");
        }
        let e = parse_source("web-1", None, None).unwrap_err();
        assert!(e.to_string().contains("no project"), "{e}");
    }

    #[test]
    fn networks_accounts_and_timeouts() {
        assert!(is_network_ref("prod-net"));
        assert!(is_network_ref("projects/proj-123/global/networks/prod-net"));
        assert!(is_network_ref(
            "projects/proj-123/regions/europe-west1/subnetworks/sub-1"
        ));
        assert!(!is_network_ref("a b"));
        assert!(!is_network_ref("projects/proj-123/global/networks/../x"));
        assert!(is_service_account(
            "exporter@proj-123.iam.gserviceaccount.com"
        ));
        assert!(is_service_account(
            "123-compute@developer.gserviceaccount.com"
        ));
        assert!(!is_service_account("someone@example.com"));
        assert!(!is_service_account("x y@proj.iam.gserviceaccount.com"));
        assert_eq!(stage_timeout(0), 7_200);
        assert_eq!(stage_timeout(1_024), 43_200);
        assert_eq!(stage_timeout(100_000), MAX_BUILD_SECS);
        assert_eq!(zone_region("europe-west1-b"), "europe-west1");
    }
}
