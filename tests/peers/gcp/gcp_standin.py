"""Stand-in for Compute Engine (disks, regional disks, instances, images, global operations), Cloud Build (builds create/get/cancel), Cloud Resource Manager and Service Usage (project number, IAM policy, enabled services), Artifact Registry and gcr.io (the exporter image gcloud chooses), IAM roles.get (roles' permissions): no emulator covers them.

Every request is first held to Google's discovery documents (contract.py: unknown fields, wrong
types and unknown query parameters are refused with Google's 400); projects, their services,
roles and networks are modelled in project_model.py. A build must run the exporter image gcloud
would choose (registry_model.py serves Artifact Registry and gcr.io for that choice), its scratch
bucket must exist, and it fails as the exporter would when a service, a role (by its
permissions, iam_model.py) or the network is missing. Files: contract.py (the discovery
documents), project_model.py (projects, Resource Manager, Service Usage), registry_model.py (the
exporter images' registries), iam_model.py (roles' permissions), build_model.py (the export
step), admin_model.py (the tests' control calls), gcs_front.py (Cloud Storage in front of
fake-gcs-server), standin_state.py (shared state).

Everything else is real or recorded as such: objects live in fake-gcs-server (started here, the
real JSON API, ranges, crc32c, generations), which this server fronts under /storage, /download
and /upload so that every call carries a bearer token we check; tokens come from an OAuth token
endpoint (/token, the `authorized_user` refresh flow google-cloud-auth runs). A build of
`gce_vm_image_export` converts the image's disk with `qemu-img convert` into the asked format and
uploads it into fake-gcs-server when it succeeds. Counters (images made/deleted, builds made/
cancelled) and faults per disk, image or instance are under /_admin; the faults of "list:{bucket}"
(page_token_loop) make that bucket's object listings hostile (every page names the same
nextPageToken); a disk's fault huge_op_poll makes every poll of its images.insert operation a
200 whose JSON body never ends (chunked, up to 1 GiB), as a broken or hostile endpoint could send;
insert_lost_answer makes the image and answers that images.insert with a 500 backendError once.
images.insert honours requestId as Compute does (a repeat answers the original operation).

Usage: gcp_standin.py --fake-gcs PATH --workdir DIR [--exit-on-stdin-eof]
Prints one JSON line {"port": N, "gcs_port": M} once both listen.
"""

import argparse
import base64
import json
import os
import secrets
import socket
import subprocess
import sys
import threading
import time
import urllib.parse
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

try:
    import googleapiclient  # noqa: F401  (its discovery documents are the contract)
except ImportError:
    # Started by a plain python3: run again under the venv tests/peers/gcp/install.sh made.
    _root = os.path.join(os.environ.get("HS_TOOLS_DIR") or os.path.expanduser("~/.cache/hypersdk-tools"),
                         "gcp", "venv")
    _venv = os.path.join(_root, "bin", "python")
    if not os.path.exists(_venv) or os.path.realpath(sys.prefix) == os.path.realpath(_root):
        sys.exit(f"gcp_standin.py needs google-api-python-client: run tests/peers/gcp/install.sh ({_venv})")
    os.execv(_venv, [_venv] + sys.argv)

import admin_model
import contract
from build_model import build_json, run_build
import iam_model
import project_model
import registry_model
from gcs_front import GcsFront
from standin_state import LOCK, PORT, STATE, fault, gerror

ARGS = None


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def op_json(name):
    op = STATE["operations"][name]
    j = {"kind": "compute#operation", "id": str(abs(hash(name)) % (10 ** 12)), "name": name,
         "operationType": op["kind"], "targetLink": op["target"], "status": op["status"],
         "progress": op["progress"], "selfLink": f"http://x/compute/v1/projects/{op['project']}/global/operations/{name}"}
    if op.get("error"):
        j["error"] = {"errors": [{"code": "RESOURCE_ERROR", "message": op["error"]}]}
    return j


def new_op(project, kind, target, polls, on_done=None):
    name = "operation-" + uuid.uuid4().hex[:12]
    STATE["operations"][name] = {"project": project, "kind": kind, "target": target,
                                 "status": "PENDING" if polls else "DONE", "progress": 0 if polls else 100,
                                 "polls_left": polls, "on_done": on_done}
    if not polls and on_done:
        on_done()
    return name


class H(GcsFront, BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *a):
        pass

    def send(self, code, obj, headers=None):
        body = json.dumps(obj).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def body(self):
        if getattr(self, "_body", None) is None:
            n = int(self.headers.get("Content-Length") or 0)
            self._body = self.rfile.read(n) if n else b""
        return self._body

    def authed(self):
        h = self.headers.get("Authorization", "")
        tok = h[7:] if h.startswith("Bearer ") else None
        with LOCK:
            ok = tok is not None and STATE["tokens"].get(tok, 0) > time.time()
            if not ok:
                STATE["stats"]["unauthenticated"] += 1
        if not ok:
            self.send(*gerror(401, "Request had invalid authentication credentials.", "authError", "UNAUTHENTICATED"))
        return ok

    def do_GET(self):
        self.route("GET")

    def do_POST(self):
        self.route("POST")

    def do_DELETE(self):
        self.route("DELETE")

    def do_HEAD(self):
        self.route("HEAD")

    def do_PATCH(self):
        self.route("PATCH")

    def route(self, method):
        self._body = None
        u = urllib.parse.urlsplit(self.path)
        path, query = u.path, urllib.parse.parse_qs(u.query, keep_blank_values=True)
        parts = [urllib.parse.unquote(p) for p in path.strip("/").split("/")]
        try:
            if parts[0] == "_admin":
                return self.admin(method, parts[1:], json.loads(self.body() or b"{}"))
            if path == "/token" and method == "POST":
                return self.token()
            if parts[0] == "v2":
                # Container Registry's Docker API: public images, no credentials (gcloud sends none).
                with LOCK:
                    status, headers = registry_model.gcr_head(method, parts)
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            if not self.authed():
                return
            api = contract.api_of(parts)
            if api is None:
                return self.send(*gerror(404, f"no such API: {path}", "notFound"))
            with LOCK:
                # Calls per project and API (a test counts what one export of its own project sent).
                who = query.get("project", [None])[0] if api == "storage.v1" else \
                    next((parts[i + 1].split(":")[0] for i, x in enumerate(parts[:-1]) if x == "projects"), None)
                if who:
                    per = STATE["stats"].setdefault("calls_by_project", {}).setdefault(who, {})
                    per[api] = per.get(api, 0) + 1
            refused = contract.check(api, method, path, query,
                                     self.body() if method in ("POST", "PUT", "PATCH") else None)
            if refused:
                with LOCK:
                    STATE["stats"]["contract_refusals"] = STATE["stats"].get("contract_refusals", 0) + 1
                    STATE["stats"].setdefault("refused", []).append(refused[1]["error"]["message"])
                return self.send(*refused)
            if api == "cloudresourcemanager.v1":
                with LOCK:
                    body = json.loads(self.body() or b"{}") if method == "POST" else None
                    return self.send(*project_model.resource_manager(method, parts, body))
            if api == "serviceusage.v1":
                with LOCK:
                    return self.send(*project_model.service_usage(method, parts))
            if api == "iam.v1":
                with LOCK:
                    return self.send(*iam_model.roles_get(method, parts))
            if api == "artifactregistry.v1":
                with LOCK:
                    return self.send(*registry_model.artifact_registry(method, parts))
            if parts[:2] == ["compute", "v1"]:
                return self.compute(method, parts[2:], query)
            if api == "cloudbuild.v1":
                return self.cloudbuild(method, parts[1:], query)
            if parts[0] in ("storage", "download", "upload"):
                return self.proxy(method, path, u.query, parts)
            self.send(*gerror(404, f"no such API: {path}", "notFound"))
        except Exception as e:  # a stand-in bug shows as a 500 with its text
            self.send(500, {"error": {"code": 500, "message": f"stand-in: {e!r}"}})

    # -- OAuth ------------------------------------------------------------------------------
    def token(self):
        raw = self.body().decode()
        if "json" in self.headers.get("Content-Type", ""):
            form = {k: [v] for k, v in json.loads(raw).items() if isinstance(v, str)}
        else:
            form = urllib.parse.parse_qs(raw)
        rt = form.get("refresh_token", [""])[0]
        cs = form.get("client_secret", [""])[0]
        with LOCK:
            good = STATE["clients"].get(rt) == cs and rt != ""
            if good:
                tok = "ya29." + secrets.token_urlsafe(24)
                ttl = STATE["faults"].get("_token", {}).get("ttl", 3600)
                STATE["tokens"][tok] = time.time() + ttl
                STATE["stats"]["token_grants"] += 1
        if not good:
            return self.send(400, {"error": "invalid_grant", "error_description": "Bad Request"})
        self.send(200, {"access_token": tok, "expires_in": ttl, "token_type": "Bearer",
                        "scope": "https://www.googleapis.com/auth/cloud-platform"})

    # -- Compute ----------------------------------------------------------------------------
    def compute(self, method, p, query):
        # projects/P/zones/Z/disks/D | projects/P/zones/Z/instances/I | projects/P/global/images[/N]
        # | projects/P/global/operations/O
        if len(p) < 3 or p[0] != "projects":
            return self.send(*gerror(404, "not found", "notFound"))
        project = p[1]
        if method == "GET" and len(p) == 5 and p[2:4] == ["global", "operations"] \
                and STATE["operations"].get(p[4], {}).get("huge"):
            return self.endless_operation(p[4])
        with LOCK:
            if p[2] in ("zones", "regions") and len(p) == 5 and method == "GET" and p[4] in ("disks", "instances") \
                    and not (p[2] == "regions" and p[4] == "instances"):
                zone = p[3]
                if p[4] == "disks":
                    # disks.list (zonal) or regionDisks.list (regional): each its own kind of disk.
                    items = [{"name": n, "sizeGb": str(d["size_gb"]), "status": "READY", "users": d["users"]}
                             for (pp, z, n), d in STATE["disks"].items() if pp == project and z == f"{p[2]}/{zone}"]
                else:
                    items = [{"name": n, "status": "RUNNING",
                              "disks": [{"deviceName": d["name"], "boot": d["boot"], "diskSizeGb": "1"} for d in i["disks"]]}
                             for (pp, z, n), i in STATE["instances"].items() if pp == project and z == zone]
                return self.send(200, {"kind": f"compute#{p[4][:-1]}List", "items": items})
            if p[2] == "global" and len(p) == 4 and p[3] == "images" and method == "GET":
                items = [{"name": n, "status": i["status"], "diskSizeGb": "1"}
                         for (pp, n), i in STATE["images"].items() if pp == project]
                return self.send(200, {"kind": "compute#imageList", "items": items})
            if p[2] in ("zones", "regions") and len(p) == 6 and method == "GET":
                zone, kind, name = p[3], p[4], p[5]
                if kind == "disks":
                    # regionDisks.get answers regional disks only, disks.get zonal ones.
                    loc = f"{p[2]}/{zone}"
                    d = STATE["disks"].get((project, loc, name))
                    if d is None:
                        return self.send(*gerror(404, f"The resource 'projects/{project}/{loc}/disks/{name}' was not found", "notFound"))
                    return self.send(200, {"kind": "compute#disk", "name": name, "sizeGb": str(d["size_gb"]),
                                           "selfLink": f"https://www.googleapis.com/compute/v1/projects/{project}/{loc}/disks/{name}",
                                           "status": "READY", "users": d["users"]})
                if kind == "instances":
                    i = STATE["instances"].get((project, zone, name))
                    if i is None:
                        return self.send(*gerror(404, f"The resource 'projects/{project}/zones/{zone}/instances/{name}' was not found", "notFound"))
                    disks = [{"boot": d["boot"], "deviceName": d["name"], "index": n,
                              "source": f"https://www.googleapis.com/compute/v1/projects/{project}/"
                                        + (f"regions/{d['region']}" if d.get("region") else f"zones/{zone}")
                                        + f"/disks/{d['name']}"}
                             for n, d in enumerate(i["disks"])]
                    return self.send(200, {"kind": "compute#instance", "name": name, "status": "RUNNING", "disks": disks})
            if p[2] == "global" and len(p) >= 4 and p[3] == "images":
                if method == "POST" and len(p) == 4:
                    return self.insert_image(project, query)
                if len(p) == 5 and method == "GET":
                    img = STATE["images"].get((project, p[4]))
                    if img is None:
                        return self.send(*gerror(404, f"The resource 'projects/{project}/global/images/{p[4]}' was not found", "notFound"))
                    return self.send(200, {"kind": "compute#image", "name": p[4], "status": img["status"],
                                           "sourceDisk": img.get("source_disk", "")})
                if len(p) == 5 and method == "DELETE":
                    img = STATE["images"].get((project, p[4]))
                    if img is None:
                        return self.send(*gerror(404, f"The resource 'projects/{project}/global/images/{p[4]}' was not found", "notFound"))

                    def gone(key=(project, p[4])):
                        STATE["images"].pop(key, None)
                        STATE["stats"]["images_deleted"] += 1
                    op = new_op(project, "delete", f"images/{p[4]}", 1, gone)
                    return self.send(200, op_json(op))
            if p[2] == "global" and len(p) == 5 and p[3] == "operations" and method == "GET":
                op = STATE["operations"].get(p[4])
                if op is None:
                    return self.send(*gerror(404, "operation not found", "notFound"))
                if op["status"] != "DONE" and not op.get("hold"):
                    op["polls_left"] -= 1
                    op["status"] = "RUNNING"
                    op["progress"] = min(90, op["progress"] + 30)
                    if op["polls_left"] <= 0:
                        op["status"], op["progress"] = "DONE", 100
                        if op.get("on_done"):
                            op["on_done"]()
                return self.send(200, op_json(p[4]))
        self.send(*gerror(404, "not found", "notFound"))

    def endless_operation(self, name):
        # Hostile switch: an operation whose JSON never ends (a client that reads answers
        # whole runs out of memory); counts what the client took before it hung up.
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        self.close_connection = True
        head = json.dumps({"kind": "compute#operation", "name": name, "status": "RUNNING"})[:-1]
        chunks = [head.encode() + b', "description": "'] + [b"x" * (1 << 20)] * 1024
        sent = 0
        try:
            for c in chunks:
                self.wfile.write(b"%x\r\n%s\r\n" % (len(c), c))
                sent += len(c)
        except (BrokenPipeError, ConnectionResetError):
            pass
        with LOCK:
            STATE["stats"]["huge_bytes_sent"] = STATE["stats"].get("huge_bytes_sent", 0) + sent

    def insert_image(self, project, query):
        body = json.loads(self.body())
        name, src = body.get("name", ""), body.get("sourceDisk", "")
        # Compute's requestId: a request repeated with the same id is the same request, answered
        # with the original operation (nothing is made twice).
        rid = query.get("requestId", [None])[0]
        if rid is not None and rid in STATE["request_ids"]:
            return self.send(200, op_json(STATE["request_ids"][rid]))
        # .../projects/P/zones/Z/disks/D or .../projects/P/regions/R/disks/D
        sp = src.split("/projects/", 1)[-1].split("/")
        if len(sp) != 5 or sp[1] not in ("zones", "regions") or sp[3] != "disks":
            return self.send(*gerror(400, f"Invalid value for field 'resource.sourceDisk': '{src}'", "invalid"))
        key = (sp[0], f"{sp[1]}/{sp[2]}", sp[4])
        disk = STATE["disks"].get(key)
        if disk is None:
            return self.send(*gerror(404, f"The resource 'projects/{sp[0]}/zones/{sp[2]}/disks/{sp[4]}' was not found", "notFound"))
        if disk["users"] and query.get("forceCreate", ["false"])[0] != "true":
            return self.send(*gerror(400, f"The disk resource '{src}' is already being used", "resourceInUseByAnotherResource"))
        if (project, name) in STATE["images"]:
            return self.send(*gerror(409, f"The resource 'projects/{project}/global/images/{name}' already exists", "alreadyExists"))
        STATE["images"][(project, name)] = {"raw": disk["raw"], "status": "PENDING", "source_disk": src}
        STATE["stats"]["images_made"] += 1
        STATE["image_names"].append(name)

        def ready(key=(project, name)):
            if key in STATE["images"]:
                STATE["images"][key]["status"] = "READY"
        op = new_op(project, "insert", f"images/{name}", fault(sp[4], "image_polls", 2), ready)
        if fault(sp[4], "hold_image"):
            STATE["operations"][op]["hold"] = True
        if fault(sp[4], "huge_op_poll"):
            STATE["operations"][op]["huge"] = True
        if rid is not None:
            STATE["request_ids"][rid] = op
        # Hostile switch (insert_lost_answer, once): the image is made but the answer is a 500
        # backendError, as when Compute's front end fails after the backend acted.
        if fault(sp[4], "insert_lost_answer"):
            STATE["faults"][sp[4]]["insert_lost_answer"] = False
            return self.send(*gerror(500, "Internal error. Please try again.", "backendError"))
        self.send(200, op_json(op))

    # -- Cloud Build ------------------------------------------------------------------------
    def cloudbuild(self, method, p, query):
        # projects/P/builds[/ID[:cancel]] (global) or projects/P/locations/L/builds[/...]:
        # a build is found only where it was made, as in Cloud Build.
        project = p[1]
        location = p[3] if len(p) > 3 and p[2] == "locations" else "global"
        p = p[:2] + p[4:] if location != "global" else p
        with LOCK:
            if method == "POST" and len(p) == 3 and p[2] == "builds":
                refused = project_model.build_refused(project)
                if refused:
                    return self.send(*refused)
                b = json.loads(self.body())
                step = b["steps"][0]
                args = step.get("args", [])
                opt = {a.split("=", 1)[0]: a.split("=", 1)[1] for a in args if "=" in a}
                name = step.get("name", "")
                if "gce_vm_image_export" not in name or "-source_image" not in opt \
                        or "-destination_uri" not in opt or "-format" not in opt:
                    return self.send(*gerror(400, "not an image export build", "invalid", "INVALID_ARGUMENT"))
                # Only the image gcloud would run here (registry_model.gcloud_choice).
                refusal, pull_failure = registry_model.judge(name, opt, location)
                if refusal:
                    return self.send(*gerror(400, refusal, "invalid", "INVALID_ARGUMENT"))
                image = opt["-source_image"].rsplit("/", 1)[-1]
                bid = str(uuid.uuid4())
                disk = STATE["images"].get((project, image), {}).get("source_disk", "").rsplit("/", 1)[-1]
                STATE["builds"][bid] = {"id": bid, "project": project, "location": location, "opt": opt,
                                        "timeout": b.get("timeout"), "status": "QUEUED", "step": step["name"],
                                        "args": args, "tags": b.get("tags", []), "image": image,
                                        "destination": opt["-destination_uri"], "format": opt["-format"],
                                        "polls_left": fault(disk or image, "build_polls", 2),
                                        "fails": pull_failure or fault(disk or image, "build_fails"),
                                        "ends": fault(disk or image, "build_ends"),
                                        "hold": fault(disk or image, "hold_build")}
                STATE["stats"]["builds_made"] += 1
                meta = {"@type": "type.googleapis.com/google.devtools.cloudbuild.v1.BuildOperationMetadata",
                        "build": build_json(STATE["builds"][bid])}
                return self.send(200, {"name": f"operations/build/{project}/{base64.b64encode(bid.encode()).decode()}",
                                       "metadata": meta})
            if len(p) == 4 and p[2] == "builds":
                bid, action = (p[3].split(":", 1) + [""])[:2]
                b = STATE["builds"].get(bid)
                if b is None or b["project"] != project or b["location"] != location:
                    return self.send(*gerror(404, "build not found", "notFound", "NOT_FOUND"))
                if method == "POST" and action == "cancel":
                    if b["status"] in ("QUEUED", "WORKING"):
                        b["status"] = "CANCELLED"
                        STATE["stats"]["builds_cancelled"] += 1
                    return self.send(200, build_json(b))
                if method == "GET" and not action:
                    if b["status"] in ("QUEUED", "WORKING") and not b["hold"]:
                        b["polls_left"] -= 1
                        b["status"] = "WORKING"
                        if b["polls_left"] <= 0:
                            if b["ends"]:
                                b["status"], b["detail"] = b["ends"], f"build ended {b['ends']}"
                            elif b["fails"]:
                                b["status"], b["detail"] = "FAILURE", b["fails"]
                            else:
                                run_build(b, ARGS.workdir)
                    elif b["hold"] and b["status"] == "QUEUED":
                        b["status"] = "WORKING"
                    return self.send(200, build_json(b))
        self.send(*gerror(404, "not found", "notFound"))

    # -- Admin ------------------------------------------------------------------------------
    def admin(self, method, p, body):
        with LOCK:
            return self.send(*admin_model.admin(p, body))

def main():
    global ARGS
    ap = argparse.ArgumentParser()
    ap.add_argument("--fake-gcs", required=True)
    ap.add_argument("--workdir", required=True)
    ap.add_argument("--exit-on-stdin-eof", action="store_true")
    ARGS = ap.parse_args()
    contract.load()
    PORT["gcs"] = gcs_port = free_port()
    gcs_proc = subprocess.Popen([ARGS.fake_gcs, "-scheme", "http", "-host", "127.0.0.1", "-port", str(gcs_port),
                                 "-backend", "memory", "-public-host", f"127.0.0.1:{gcs_port}", "-log-level", "error"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(200):
        try:
            socket.create_connection(("127.0.0.1", gcs_port), timeout=0.2).close()
            break
        except OSError:
            time.sleep(0.05)
    srv = ThreadingHTTPServer(("127.0.0.1", 0), H)
    srv.daemon_threads = True
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    print(json.dumps({"port": srv.server_address[1], "gcs_port": gcs_port}), flush=True)
    try:
        if ARGS.exit_on_stdin_eof:
            sys.stdin.read()
        else:
            while True:
                time.sleep(3600)
    finally:
        gcs_proc.kill()


if __name__ == "__main__":
    main()
