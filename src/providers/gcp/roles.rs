//! Roles compared by their permissions, as gcloud compares them when an account does not hold a
//! needed role by name (googlecloudsdk `api_lib/compute/daisy_utils.py`: `_FindMissingRoles`,
//! `_FindMissingStoragePermissions`): IAM v1 `roles.get` (`GET v1/{name}`, `roles/X` or
//! `projects/P/roles/X` / `organizations/O/roles/X` for a custom role) gives each role's
//! `includedPermissions`; a needed role counts as held when the account's roles together hold
//! all of its permissions. A caller that may not read a role (403) falls back to the names, as
//! gcloud's `except HttpForbiddenError` does; a role that no longer exists (404) grants nothing.

use std::collections::{BTreeSet, HashMap};

use super::api::{Gce, url};
use crate::error::{Error, Result};

/// The permissions gcloud asks of the Cloud Build account for the exporter's buckets
/// (daisy_utils `CLOUD_BUILD_STORAGE_PERMISSIONS`).
pub(crate) const BUILD_STORAGE_PERMISSIONS: [&str; 5] = [
    "storage.buckets.get",
    "storage.buckets.list",
    "storage.objects.create",
    "storage.objects.delete",
    "storage.objects.get",
];

/// `roles.get` answers of one check, by role name (`None`: the caller may not read it).
#[derive(Default)]
pub(crate) struct RoleBook {
    seen: HashMap<String, Option<BTreeSet<String>>>,
}

impl RoleBook {
    async fn permissions(&mut self, gce: &Gce, role: &str) -> Result<Option<BTreeSet<String>>> {
        if let Some(p) = self.seen.get(role) {
            return Ok(p.clone());
        }
        let mut segments = vec!["v1"];
        segments.extend(role.split('/'));
        let got = match gce
            .get(&format!("IAM role {role}"), url(&gce.iam, &segments))
            .await
        {
            Ok(r) => Some(
                r["includedPermissions"]
                    .as_array()
                    .map(Vec::as_slice)
                    .unwrap_or_default()
                    .iter()
                    .filter_map(|p| p.as_str().map(str::to_string))
                    .collect(),
            ),
            Err(Error::Auth(_)) => None,
            Err(Error::NotFound(_)) => Some(BTreeSet::new()),
            Err(e) => return Err(e),
        };
        self.seen.insert(role.to_string(), got.clone());
        Ok(got)
    }

    /// The permissions of all `roles` together; `None` when one may not be read.
    async fn all(&mut self, gce: &Gce, roles: &[String]) -> Result<Option<BTreeSet<String>>> {
        let mut out = BTreeSet::new();
        for r in roles {
            match self.permissions(gce, r).await? {
                Some(p) => out.extend(p),
                None => return Ok(None),
            }
        }
        Ok(Some(out))
    }

    /// `_FindMissingRoles`: the needed roles the account's roles do not cover.
    pub async fn missing_roles(
        &mut self,
        gce: &Gce,
        held: &[String],
        needed: &[&str],
    ) -> Result<Vec<String>> {
        let by_name: Vec<String> = needed
            .iter()
            .filter(|r| !held.iter().any(|h| h == *r))
            .map(|r| r.to_string())
            .collect();
        if by_name.is_empty() {
            return Ok(by_name);
        }
        let Some(have) = self.all(gce, held).await? else {
            return Ok(by_name);
        };
        let mut out = Vec::new();
        for r in &by_name {
            match self.permissions(gce, r).await? {
                Some(p) if p.is_subset(&have) => {}
                Some(_) => out.push(r.clone()),
                // A needed role the caller may not read: all by name, as gcloud falls back.
                None => return Ok(by_name),
            }
        }
        Ok(out)
    }

    /// `_FindMissingStoragePermissions`: the storage permissions the account's roles lack (all
    /// of them when a role may not be read, as in gcloud).
    pub async fn missing_storage(
        &mut self,
        gce: &Gce,
        held: &[String],
    ) -> Result<Vec<&'static str>> {
        let have = self.all(gce, held).await?.unwrap_or_default();
        Ok(BUILD_STORAGE_PERMISSIONS
            .into_iter()
            .filter(|p| !have.contains(*p))
            .collect())
    }
}
