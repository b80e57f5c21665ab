"""The GCP stand-in's image registries: where gcloud looks for the exporter image (no emulator serves them).

Serves Artifact Registry v1 `repositories.get` and `packages.get` (held to artifactregistry.v1's
discovery document by contract.py, with a bearer token, as gcloud's docker_util.GetDockerImage
sends them) for the `wrappers` repositories of compute-image-import and compute-image-tools in
every region, and Container Registry's Docker Registry HTTP API v2 `HEAD /v2/{name}/manifests/
{reference}` without credentials (gcr.io serves these public images so), as daisy_utils
IsGcrImageExist sends it. By default every exporter image is there; /_admin/registry marks one
missing (404, as the registries answer) or answered with another status (403, 500), per image,
so that a test can make one region's image unreachable without touching the others.

`gcloud_choice` is gcloud's choice for a region (daisy_utils `_GetBuilder`): the build of any
other image is refused (the stand-in's own guard: nothing may lean on an image gcloud would
not run), and a build of a missing image fails as Cloud Build fails a step it cannot pull.
"""

EXECUTABLE = "gce_vm_image_export"
PROJECTS = ("compute-image-import", "compute-image-tools")
# image reference without tag -> "missing" or an HTTP status to answer instead
MARKS = {}
PROBES = {"artifact_registry": 0, "gcr": 0}

# daisy_utils GCS_TO_AR_REGIONS
GCS_TO_AR = {"eu": "europe", "nam4": "us-central1", "eur4": "europe-west4", "asia1": "asia-northeast1"}


def regional(project, region):
    return f"{region}-docker.pkg.dev/{project}/wrappers/{EXECUTABLE}"


def gcr(project):
    return f"gcr.io/{project}/{EXECUTABLE}"


def _err(code, message, status):
    return code, {"error": {"code": code, "message": message, "status": status}}


def _mark(ref):
    m = MARKS.get(ref)
    if m is None:
        return None
    if m == "missing":
        return _err(404, "Requested entity was not found.", "NOT_FOUND")
    if m == 403:
        return _err(403, f"Permission 'artifactregistry.repositories.downloadArtifacts' denied on "
                         f"resource '{ref}' (or it may not exist).", "PERMISSION_DENIED")
    return _err(int(m), "Internal error encountered.", "INTERNAL")


def admin(body):
    """{image: "<reference without tag>", state: "present" | "missing" | <HTTP status>}."""
    ref = body["image"].rsplit(":", 1)[0] if body["image"].count(":") else body["image"]
    if body["state"] == "present":
        MARKS.pop(ref, None)
    else:
        MARKS[ref] = body["state"]


def artifact_registry(method, parts):
    """v1/projects/P/locations/L/repositories/R[/packages/K] (GET)."""
    PROBES["artifact_registry"] += 1
    if method != "GET" or len(parts) not in (7, 9) or parts[5] != "repositories":
        return _err(404, "Requested entity was not found.", "NOT_FOUND")
    project, location, repo = parts[2], parts[4], parts[6]
    name = f"projects/{project}/locations/{location}/repositories/{repo}"
    if project not in PROJECTS or repo != "wrappers":
        return _err(403, f"Permission 'artifactregistry.repositories.get' denied on resource '{name}' "
                         "(or it may not exist).", "PERMISSION_DENIED")
    ref = regional(project, location)
    if len(parts) == 7:
        m = _mark(ref)
        if m is not None and m[0] != 404:  # a missing image: the repository is still there
            return m
        return 200, {"name": name, "format": "DOCKER", "mode": "STANDARD_REPOSITORY",
                     "description": "Image import/export wrappers"}
    if parts[7] != "packages" or parts[8] != EXECUTABLE:
        return _err(404, "Requested entity was not found.", "NOT_FOUND")
    m = _mark(ref)
    if m is not None:
        return m
    return 200, {"name": f"{name}/packages/{EXECUTABLE}", "createTime": "2023-09-01T00:00:00Z",
                 "updateTime": "2026-11-01T00:00:00Z"}


def gcr_head(method, parts):
    """v2/{project}/{image}/manifests/{tag}: the status (and headers) of the Docker API's HEAD."""
    PROBES["gcr"] += 1
    if method != "HEAD":
        return 405, {}
    if len(parts) != 5 or parts[3] != "manifests" or parts[2] != EXECUTABLE:
        return 404, {}
    m = MARKS.get(gcr(parts[1])) if parts[1] in PROJECTS else "missing"
    if m is None:
        return 200, {"Content-Type": "application/vnd.docker.distribution.manifest.v2+json",
                     "Docker-Content-Digest": "sha256:" + "0" * 64}
    return (404 if m == "missing" else int(m)), {}


def present(ref):
    return ref not in MARKS


def gcloud_choice(region):
    region = GCS_TO_AR.get(region, region)
    for p in PROJECTS:
        if present(regional(p, region)):
            return regional(p, region)
    return gcr(PROJECTS[0]) if present(gcr(PROJECTS[0])) else gcr(PROJECTS[1])


def judge(name, opt, location):
    """(refusal or None, pull failure or None) for a build whose step runs `name`."""
    image = name.rsplit(":", 1)[0]
    if not name.endswith(":release") or EXECUTABLE not in name:
        return f"builder {name} is not the exporter gcloud runs", None
    zone = opt.get("-zone")
    if zone:
        region = zone.rsplit("-", 1)[0]
    elif "-docker.pkg.dev/" in image:
        region = image.split("-docker.pkg.dev/", 1)[0]
    else:
        region = location
    want = gcloud_choice(region)
    if image != want:
        return f"builder {name} is not the image gcloud would run for {region} ({want}:release)", None
    if not present(image):
        return None, f"step #0: failed to pull image {name}: not found"
    return None, None
