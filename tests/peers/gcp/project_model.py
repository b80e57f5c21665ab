"""The GCP stand-in's projects: number, enabled services, IAM bindings, VPC networks.

Serves Cloud Resource Manager v1 (projects.get, projects.getIamPolicy) and Service Usage v1
(services.get) as their discovery documents write them, and judges an export build the way the
real exporter would fail it: a disabled service, a Cloud Build or Compute service account without
the roles gcloud grants them (googlecloudsdk api_lib/compute/daisy_utils.py), a network that
does not exist (the exporter's VM goes on `default` unless told otherwise).
"""

import hashlib
import json

import iam_model

PROJECTS = {}  # project id -> {number, services, bindings: {role: set(members)}, networks, iam_denied}

DEFAULT_SERVICES = {"cloudbuild.googleapis.com", "compute.googleapis.com", "logging.googleapis.com",
                    "storage.googleapis.com", "iam.googleapis.com"}
BUILD_ROLES = ("roles/compute.admin", "roles/iam.serviceAccountUser",
               "roles/iam.serviceAccountTokenCreator", "roles/storage.admin")
COMPUTE_ROLES = ("roles/compute.storageAdmin", "roles/storage.objectAdmin")
# daisy_utils CLOUD_BUILD_STORAGE_PERMISSIONS: what the Cloud Build account needs of storage.
BUILD_STORAGE_PERMISSIONS = {"storage.buckets.get", "storage.buckets.list", "storage.objects.create",
                             "storage.objects.delete", "storage.objects.get"}


def build_account(p):
    return f"serviceAccount:{PROJECTS[p]['number']}@cloudbuild.gserviceaccount.com"


def compute_account(p):
    return f"serviceAccount:{PROJECTS[p]['number']}-compute@developer.gserviceaccount.com"


def add_project(project, number):
    """A project as `gcloud projects create` + enabling the export's services leaves it, with
    the roles gcloud's export grants (the Compute default account as such: roles/editor)."""
    bindings = {r: {f"serviceAccount:{number}@cloudbuild.gserviceaccount.com"} for r in BUILD_ROLES}
    bindings["roles/editor"] = {f"serviceAccount:{number}-compute@developer.gserviceaccount.com"}
    PROJECTS[project] = {"number": str(number), "services": set(DEFAULT_SERVICES), "bindings": bindings,
                         "networks": {"default"}, "iam_denied": False, "services_denied": False,
                         "conditional": []}


def admin(body):
    """Edits one project: {project, disable_service, enable_service, remove_role: {member, role},
    add_role: {...}, add_conditional_role: {member, role, condition: {title, expression}},
    custom_role: {name, permissions},
    remove_network, add_network, iam_denied, services_denied}; a new project needs `number`."""
    p = body["project"]
    if p not in PROJECTS:
        add_project(p, body["number"])
    pr = PROJECTS[p]
    if "disable_service" in body:
        pr["services"].discard(body["disable_service"])
    if "enable_service" in body:
        pr["services"].add(body["enable_service"])
    for key, op in (("remove_role", "discard"), ("add_role", "add")):
        if key in body:
            member = body[key]["member"].replace("{number}", pr["number"])
            getattr(pr["bindings"].setdefault(body[key]["role"], set()), op)(member)
    if "add_conditional_role" in body:
        c = body["add_conditional_role"]
        pr["conditional"].append((c["role"], c["member"].replace("{number}", pr["number"]), c["condition"]))
    if "custom_role" in body:
        # {name: "projects/P/roles/X", permissions: [...]}, as `gcloud iam roles create` makes it.
        iam_model.CUSTOM[body["custom_role"]["name"]] = set(body["custom_role"]["permissions"])
    if "remove_network" in body:
        pr["networks"].discard(body["remove_network"])
    if "add_network" in body:
        pr["networks"].add(body["add_network"])
    if "iam_denied" in body:
        pr["iam_denied"] = bool(body["iam_denied"])
    if "services_denied" in body:
        pr["services_denied"] = bool(body["services_denied"])


def roles_of(p, member):
    """The member's roles; a conditional binding's too (the stand-in's conditions all hold)."""
    return {r for r, m in PROJECTS[p]["bindings"].items() if member in m} | \
        {r for r, m, _ in PROJECTS[p]["conditional"] if m == member}


def denied(message):
    return 403, {"error": {"code": 403, "message": message, "status": "PERMISSION_DENIED",
                           "errors": [{"message": message, "domain": "global", "reason": "forbidden"}]}}


def resource_manager(method, parts, body=None):
    """v1/projects/{id} (GET), v1/projects/{id}:getIamPolicy (POST)."""
    if len(parts) != 3 or parts[1] != "projects":
        return 404, {"error": {"code": 404, "message": "not found", "status": "NOT_FOUND"}}
    pid, _, verb = parts[2].partition(":")
    pr = PROJECTS.get(pid)
    if pr is None:
        # Resource Manager does not tell a missing project from one the caller cannot see.
        return denied(f"The caller does not have permission")
    if method == "GET" and not verb:
        return 200, {"projectNumber": pr["number"], "projectId": pid, "lifecycleState": "ACTIVE", "name": pid}
    if method == "POST" and verb == "getIamPolicy":
        if pr["iam_denied"]:
            return denied(f"The caller does not have permission resourcemanager.projects.getIamPolicy on project {pid}")
        bindings = [{"role": r, "members": sorted(m)} for r, m in sorted(pr["bindings"].items()) if m]
        asked = int(((body or {}).get("options") or {}).get("requestedPolicyVersion") or 0)
        for role, member, cond in pr["conditional"]:
            if asked >= 3:
                bindings.append({"role": role, "members": [member], "condition": cond})
            else:
                # A policy with conditions read at version 1: IAM names the role of each
                # conditional binding `{role}_withcond_{hash}` and leaves the condition out.
                h = hashlib.sha256(json.dumps(cond, sort_keys=True).encode()).hexdigest()[:16]
                bindings.append({"role": f"{role}_withcond_{h}", "members": [member]})
        version = 3 if asked >= 3 and pr["conditional"] else 1
        return 200, {"version": version, "etag": "BwX=", "bindings": bindings}
    return 404, {"error": {"code": 404, "message": "not found", "status": "NOT_FOUND"}}


def service_usage(method, parts):
    """v1/projects/{id or number}/services/{service} (GET)."""
    if method != "GET" or len(parts) != 5 or parts[1] != "projects" or parts[3] != "services":
        return 404, {"error": {"code": 404, "message": "not found", "status": "NOT_FOUND"}}
    pid = next((k for k, v in PROJECTS.items() if parts[2] in (k, v["number"])), None)
    if pid is None:
        return denied("Permission denied to get service")
    pr = PROJECTS[pid]
    svc = parts[4]
    if pr["services_denied"]:
        # Service Usage's answer to a caller without serviceusage.services.get.
        return denied(f"Permission denied to get service [{svc}]")
    return 200, {"name": f"projects/{pr['number']}/services/{svc}", "parent": f"projects/{pr['number']}",
                 "state": "ENABLED" if svc in pr["services"] else "DISABLED"}


def build_refused(project):
    """Cloud Build's answer to builds.create in a project without its API, else None."""
    pr = PROJECTS.get(project)
    if pr is not None and "cloudbuild.googleapis.com" not in pr["services"]:
        return denied(f"Cloud Build API has not been used in project {pr['number']} before or it is disabled.")
    return None


def export_failure(project, opt):
    """Why the exporter would fail in this project with these flags (None: it would not)."""
    pr = PROJECTS.get(project)
    if pr is None:
        return None
    for s in ("compute.googleapis.com", "logging.googleapis.com"):
        if s not in pr["services"]:
            return f"step exited with non-zero status: 1 (googleapi: Error 403: {s} is disabled)"
    # By permissions, as IAM grants them: a custom role with the right ones works too.
    have = roles_of(project, build_account(project))
    for r in BUILD_ROLES[:3]:
        if not iam_model.covers(have, r):
            return f"step exited with non-zero status: 1 (googleapi: Error 403: the build's account lacks {r})"
    perms = set().union(*(iam_model.permissions(r) or set() for r in have)) if have else set()
    if not BUILD_STORAGE_PERMISSIONS <= perms:
        return ("step exited with non-zero status: 1 (googleapi: Error 403: the build's account lacks "
                f"{sorted(BUILD_STORAGE_PERMISSIONS - perms)[0]})")
    csa = opt.get("-compute_service_account")
    member = f"serviceAccount:{csa}" if csa else compute_account(project)
    have = roles_of(project, member)
    if "roles/editor" not in have:
        for r in COMPUTE_ROLES:
            if not iam_model.covers(have, r):
                return f"step exited with non-zero status: 1 (the exporter VM's account lacks {r})"
    net = opt.get("-network", "default").rsplit("/", 1)[-1]
    if net not in pr["networks"]:
        return (f"step exited with non-zero status: 1 (googleapi: Error 404: The resource "
                f"'projects/{project}/global/networks/{net}' was not found)")
    return None
