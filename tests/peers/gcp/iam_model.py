"""The GCP stand-in's IAM roles: what each role the export needs permits (no emulator serves IAM).

Serves IAM v1 `roles.get` (`v1/roles/X`, `v1/projects/P/roles/X`; held to iam.v1's discovery
document by contract.py) with each role's `includedPermissions`. The predefined roles carry the
permissions of Google's published lists that the export touches (a subset of each real list:
the model needs only what the exporter and gcloud's check look at); custom roles are made per
project through /_admin/project (`custom_role`). `covers` tells whether an account's roles hold
a role's permissions: the exporter model (project_model.export_failure) judges by permissions,
as IAM does, so a custom role with the right permissions works and one without does not.
"""

_STORAGE_OBJECTS = {"storage.objects.create", "storage.objects.delete", "storage.objects.get",
                    "storage.objects.list", "storage.objects.update"}
_STORAGE_BUCKETS = {"storage.buckets.create", "storage.buckets.delete", "storage.buckets.get",
                    "storage.buckets.list", "storage.buckets.update"}
_COMPUTE_STORAGE = {"compute.disks.create", "compute.disks.delete", "compute.disks.get", "compute.disks.list",
                    "compute.disks.use", "compute.images.create", "compute.images.delete", "compute.images.get",
                    "compute.images.list", "compute.images.useReadOnly", "compute.snapshots.create",
                    "compute.snapshots.delete", "compute.snapshots.get"}
_COMPUTE_ADMIN = _COMPUTE_STORAGE | {"compute.instances.create", "compute.instances.delete", "compute.instances.get",
                                     "compute.instances.setMetadata", "compute.instances.setServiceAccount",
                                     "compute.networks.get", "compute.networks.use", "compute.subnetworks.use",
                                     "compute.zoneOperations.get", "compute.globalOperations.get"}

PREDEFINED = {
    "roles/compute.admin": _COMPUTE_ADMIN,
    "roles/compute.storageAdmin": _COMPUTE_STORAGE,
    "roles/iam.serviceAccountUser": {"iam.serviceAccounts.actAs", "iam.serviceAccounts.get",
                                     "iam.serviceAccounts.list"},
    "roles/iam.serviceAccountTokenCreator": {"iam.serviceAccounts.getAccessToken", "iam.serviceAccounts.signBlob",
                                             "iam.serviceAccounts.signJwt", "iam.serviceAccounts.getOpenIdToken",
                                             "iam.serviceAccounts.implicitDelegation"},
    "roles/storage.admin": _STORAGE_OBJECTS | _STORAGE_BUCKETS,
    "roles/storage.objectAdmin": _STORAGE_OBJECTS,
    "roles/storage.objectViewer": {"storage.objects.get", "storage.objects.list"},
}
PREDEFINED["roles/editor"] = set().union(*(p for r, p in PREDEFINED.items() if r != "roles/iam.serviceAccountTokenCreator"))
PREDEFINED["roles/owner"] = PREDEFINED["roles/editor"] | {"resourcemanager.projects.setIamPolicy"}

CUSTOM = {}  # "projects/P/roles/X" -> set of permissions


def permissions(role):
    return PREDEFINED.get(role) if role in PREDEFINED else CUSTOM.get(role)


def covers(held, role):
    """Whether roles `held` together hold every permission of `role`."""
    have = set().union(*(permissions(r) or set() for r in held)) if held else set()
    return (permissions(role) or {role}) <= have


def roles_get(method, parts):
    """v1/roles/X | v1/projects/P/roles/X (GET)."""
    name = "/".join(parts[1:])
    perms = permissions(name) if method == "GET" else None
    if perms is None:
        return 404, {"error": {"code": 404, "message": f"The role named {name} was not found.",
                               "status": "NOT_FOUND"}}
    return 200, {"name": name, "title": name.rsplit("/", 1)[-1], "includedPermissions": sorted(perms),
                 "stage": "GA", "etag": "BwX="}
