# Stand-in for Azure Resource Manager (disks, snapshots, VMs, beginGetAccess/endGetAccess) and the Entra ID token endpoint ONLY (plus blob_proxy.py, the disk blob front end's own checks); blob storage is the real Azurite, which this script starts.
"""
The Azure peer of the tests. It starts Azurite (HTTPS, the tests' certificate) and serves, over
HTTPS on another port:

- `POST /{tenant}/oauth2/v2.0/token`: client credentials, with the secret or (workload identity)
  a federated client assertion; a wrong secret or assertion gets Entra ID's 401.
- ARM under `/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.Compute/`:
  `disks/{n}`, `snapshots/{n}` (GET, PUT = snapshot of a disk, DELETE), `virtualMachines/{n}`
  (GET), and `{disks|snapshots}/{n}/beginGetAccess|endGetAccess` (POST). Every ARM call must
  carry a token this script issued. Writes answer 202 with `Azure-AsyncOperation` and
  `Location`; operations finish after `op_polls` looks.
- A grant creates a stored access policy on the blob's container in Azurite and answers a SAS
  made from it (`si=`), so `endGetAccess`, which deletes the policy, really revokes the SAS.
- `/_admin/...` (no auth, tests only): `POST disks` {name, rg, path, state, location}, `POST vms`
  {name, rg, os_disk, data_disks: [[lun, disk]]}, `POST faults` {disk, sku (the disk's SKU:
  PremiumV2_LRS and UltraSSD_LRS refuse full snapshots, and their incremental snapshots copy in
  the background, Pending for two looks, refusing grants meanwhile), logical_sector_size (512
  or 4096; a grant with fileFormat VHDX is refused unless 4096), security_type (a
  DiskSecurityTypes value: a grant with getSecureVMGuestStateSAS also gives the guest state's
  SAS, and for ConfidentialVM_* the security metadata's), grant_fails, hold:
  ["grant"|"snapshot"], sas_ttl_secs, renewal_failures (grants after the first that fail),
  hang_get_secs (a GET that answers that late), op_polls, retry_after, data_access_auth_mode
  ("AzureActiveDirectory": the disk says so, and its SAS points at blob_proxy.py, which refuses
  a read without a Storage token this script issued), pagelist_max_span (bytes: blob_proxy.py
  answers 500 OperationTimedOut to a Get Page Ranges over more)} (per disk: a snapshot's faults are
  its source disk's; `{disk: "list:RG", next_link_loop: true}` makes listings of resource group RG
  answer a nextLink to the same page, a hostile switch), `POST sas` {rg, name}, `GET stats`.

It holds the official contract where it can (azure-mgmt-compute, pinned in requirements.txt):
every ARM operation must carry the api-version Microsoft's SDK sends for it (ARM's
`NoRegisteredProviderFound` otherwise: disks and snapshots are DiskRP's, VMs ComputeRP's), a
grant's body must be a `GrantAccessData` (required `access` and `durationInSeconds`, the enums
of `access` and `fileFormat`), a snapshot's a `Snapshot` with `location` and
`creationData.createOption` (`InvalidRequestContent` otherwise).

The first line of stdout is JSON: {"arm", "blob", "tenant", "client_id", "client_secret",
"subscription"}. It exits when stdin closes (with --exit-on-stdin-eof).
"""

import argparse
import datetime
import json
import os
import secrets
import shutil
import socket
import ssl
import subprocess
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import blob_proxy

# The official contract: Microsoft's SDK for the Compute resource providers. Its request
# builders carry the api-version of each operation; its models name the request bodies' fields.
from azure.mgmt.compute.models import DataAccessAuthMode
from azure.mgmt.compute.operations import _operations as compute_ops
from azure.storage.blob import (
    AccessPolicy,
    BlobSasPermissions,
    BlobServiceClient,
    generate_blob_sas,
)

ACCOUNT = "devstoreaccount1"
KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
TENANT = "72f988bf-0000-0000-0000-00000000test"
CLIENT_ID = "hypersdk-test-app"
CLIENT_SECRET = "s3cr3t-Cl1ent~Value"
# The service account token a Kubernetes cluster would project for workload identity: the
# federated identity credential the test app trusts (Entra ID: client_assertion_type
# urn:ietf:params:oauth:client-assertion-type:jwt-bearer, the token as client_assertion).
FEDERATED_TOKEN = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJzeXN0ZW06c2VydmljZWFjY291bnQ6ZGVmYXVsdDpoeXBlcnNkayJ9.c2ln"
JWT_BEARER = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
SUB = "00000000-0000-0000-0000-0000000000ab"
PAGE = 512

def _b64url(s):
    import base64
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


def certificate_assertion_refused(assertion, audience):
    """Entra ID's checks of a certificate credential's client assertion (Microsoft identity
    platform, "certificate credentials", assertion format): a JWT signed RS256 (or PS256) by the
    key of a certificate registered on the app, named by `x5t` (its SHA-1, base64url); `aud`
    the token endpoint; `iss` and `sub` the client id; `jti`; `nbf` and `exp` around now. The
    AADSTS codes are Entra's; their texts are shortened."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding
    try:
        h64, c64, s64 = assertion.split(".")
        header = json.loads(_b64url(h64))
        claims = json.loads(_b64url(c64))
        sig = _b64url(s64)
    except Exception:
        return "AADSTS50027: JWT token is invalid or malformed."
    pem = state.get("certificate")
    if not pem:
        return "AADSTS700027: Client assertion contains an invalid signature. No certificate is registered on the application."
    cert = x509.load_pem_x509_certificate(pem)
    import base64
    import hashlib
    want = base64.urlsafe_b64encode(hashlib.sha1(cert.public_bytes(serialization_der())).digest()).rstrip(b"=").decode()
    if header.get("x5t") != want:
        return f"AADSTS700027: The certificate with identifier used to sign the client assertion is not registered on application. [Reason - The key was not found., Thumbprint of key used by client: '{header.get('x5t')}']"
    if header.get("alg") != "RS256" or header.get("typ", "JWT") != "JWT":
        return "AADSTS5002738: Invalid JWT token. 'alg' is not supported."
    try:
        cert.public_key().verify(sig, f"{h64}.{c64}".encode(), padding.PKCS1v15(), hashes.SHA256())
    except Exception:
        return "AADSTS7000274: Client assertion failed signature validation."
    now = time.time()
    if claims.get("aud") != audience:
        return f"AADSTS700212: Client assertion audience claim does not match Realm issuer. Expected {audience}."
    if claims.get("iss") != CLIENT_ID or claims.get("sub") != CLIENT_ID or not claims.get("jti"):
        return "AADSTS50027: JWT token is invalid or malformed. iss, sub and jti are required."
    if not (claims.get("nbf", now) <= now + 300 and claims.get("exp", 0) > now - 300):
        return "AADSTS700024: Client assertion is not within its valid time range."
    return None


def serialization_der():
    from cryptography.hazmat.primitives.serialization import Encoding
    return Encoding.DER


def _sdk_version(builder, **names):
    """The api-version an SDK request builder puts on its request."""
    req = builder(subscription_id=SUB, **names)
    return urllib.parse.parse_qs(urllib.parse.urlsplit(req.url).query)["api-version"][0]


# (method, kind, action) -> the api-version azure-mgmt-compute sends for that operation. ARM
# refuses a version the resource provider does not define for the type.
API_VERSIONS = {
    ("GET", "disks", None): _sdk_version(compute_ops.build_disks_get_request, resource_group_name="r", disk_name="d"),
    ("POST", "disks", "beginGetAccess"): _sdk_version(compute_ops.build_disks_grant_access_request, resource_group_name="r", disk_name="d"),
    ("POST", "disks", "endGetAccess"): _sdk_version(compute_ops.build_disks_revoke_access_request, resource_group_name="r", disk_name="d"),
    ("LIST", "disks", None): _sdk_version(compute_ops.build_disks_list_by_resource_group_request, resource_group_name="r"),
    ("LIST_ALL", "disks", None): _sdk_version(compute_ops.build_disks_list_request),
    ("GET", "snapshots", None): _sdk_version(compute_ops.build_snapshots_get_request, resource_group_name="r", snapshot_name="s"),
    ("PUT", "snapshots", None): _sdk_version(compute_ops.build_snapshots_create_or_update_request, resource_group_name="r", snapshot_name="s"),
    ("DELETE", "snapshots", None): _sdk_version(compute_ops.build_snapshots_delete_request, resource_group_name="r", snapshot_name="s"),
    ("POST", "snapshots", "beginGetAccess"): _sdk_version(compute_ops.build_snapshots_grant_access_request, resource_group_name="r", snapshot_name="s"),
    ("POST", "snapshots", "endGetAccess"): _sdk_version(compute_ops.build_snapshots_revoke_access_request, resource_group_name="r", snapshot_name="s"),
    ("LIST", "snapshots", None): _sdk_version(compute_ops.build_snapshots_list_by_resource_group_request, resource_group_name="r"),
    ("LIST_ALL", "snapshots", None): _sdk_version(compute_ops.build_snapshots_list_request),
    ("GET", "virtualMachines", None): _sdk_version(compute_ops.build_virtual_machines_get_request, resource_group_name="r", vm_name="v"),
    ("LIST", "virtualMachines", None): _sdk_version(compute_ops.build_virtual_machines_list_request, resource_group_name="r"),
    ("LIST_ALL", "virtualMachines", None): _sdk_version(compute_ops.build_virtual_machines_list_all_request),
}

# GrantAccessData (azure-mgmt-compute models): access and durationInSeconds are required.
# The VM guest state (VMGS) and security metadata of a Trusted Launch / confidential VM disk:
# (blob name, the AccessUri field that gives its SAS, content). The tests read the same bytes.
GUEST_BLOBS = (
    ("vmgs", "securityDataAccessSAS", bytes((i * 7 + 1) % 251 for i in range(64 * 1024))),
    ("vmgs-metadata", "securityMetadataAccessSAS", bytes((i * 11 + 1) % 251 for i in range(4096))),
)

# DiskStorageAccountTypes whose disks take incremental snapshots only.
ONLY_INCREMENTAL = ("PremiumV2_LRS", "UltraSSD_LRS")

GRANT_ACCESS = {"access": ("None", "Read", "Write"), "fileFormat": ("VHD", "VHDX")}


def grant_data_error(body):
    """What ARM says of a beginGetAccess body that breaks GrantAccessData, or None."""
    try:
        req = json.loads(body or b"")
    except ValueError:
        return "The request content was invalid and could not be deserialized."
    if not isinstance(req, dict):
        return "The request content was invalid and could not be deserialized."
    if req.get("access") not in GRANT_ACCESS["access"]:
        return f"Required property 'access' is missing or not one of {GRANT_ACCESS['access']}."
    d = req.get("durationInSeconds")
    if not isinstance(d, int) or isinstance(d, bool) or d <= 0:
        return "Required property 'durationInSeconds' is missing or not a positive integer."
    if "fileFormat" in req and req["fileFormat"] not in GRANT_ACCESS["fileFormat"]:
        return f"Property 'fileFormat' must be one of {GRANT_ACCESS['fileFormat']}."
    if "getSecureVMGuestStateSAS" in req and not isinstance(req["getSecureVMGuestStateSAS"], bool):
        return "Property 'getSecureVMGuestStateSAS' must be a boolean."
    return None


def snapshot_error(req):
    """What ARM says of a snapshot PUT body that breaks the Snapshot model, or None."""
    if not isinstance(req, dict) or not isinstance(req.get("location"), str):
        return "Required property 'location' is missing."
    cd = req.get("properties", {}).get("creationData")
    if not isinstance(cd, dict) or not isinstance(cd.get("createOption"), str):
        return "Required property 'properties.creationData.createOption' is missing."
    if "incremental" in req["properties"] and not isinstance(req["properties"]["incremental"], bool):
        return "Property 'properties.incremental' must be a boolean."
    mode = req["properties"].get("dataAccessAuthMode")
    if mode is not None and mode not in [m.value for m in DataAccessAuthMode]:
        return f"Property 'properties.dataAccessAuthMode' must be one of {[m.value for m in DataAccessAuthMode]}."
    return None


lock = threading.Lock()
state = {
    "disks": {},  # (rg, name) -> {path, state, location, container, blob, size}
    "snapshots": {},  # (rg, name) -> same shape, plus source
    "vms": {},  # (rg, name) -> {os_disk, data_disks}
    "tokens": set(),
    "storage_tokens": set(),  # Azure Storage tokens issued
    "disk_tokens": set(),  # tokens for the managed-disk data plane (the blob proxy checks them)
    "ops": {},  # op id -> {polls_left, result, error}
    "policies": {},  # (kind, rg, name) -> [policy ids]
    "stats": {
        "tokens_issued": 0,
        "bad_secret": 0,
        "unauthorized_arm": 0,
        "grants": 0,
        "revokes": 0,
        "snapshots_made": 0,
        "snapshots_deleted": 0,
        "bad_api_version": 0,
        "bad_grant_body": 0,
        "incremental_snapshots": 0,
    },
    "faults": {},
    "per": {},  # disk name -> counters of that disk (grants, revokes, snapshots_*, last_sas)
}


def bump(name, key, value=None):
    d = state["per"].setdefault(name, {"grants": 0, "revokes": 0, "snapshots_made": 0, "snapshots_deleted": 0})
    if value is None:
        d[key] = d.get(key, 0) + 1
    else:
        d[key] = value


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def container_for(name):
    c = "".join(ch if ch.isalnum() else "-" for ch in name.lower())[:50].strip("-")
    return f"hs-{c}-{secrets.token_hex(3)}"


class Peer:
    def __init__(self, blob_url, ca):
        self.blob_url = blob_url
        conn = f"DefaultEndpointsProtocol=https;AccountName={ACCOUNT};AccountKey={KEY};BlobEndpoint={blob_url};"
        self.svc = BlobServiceClient.from_connection_string(conn, connection_verify=ca)

    def upload(self, path, container, blob, md5=None):
        """Uploads the 512-byte pages of `path` that are not all zeros into a page blob."""
        size = os.path.getsize(path)
        if size % PAGE:
            raise ValueError("a page blob's size is a multiple of 512")
        cc = self.svc.get_container_client(container)
        try:
            cc.create_container()
        except Exception:
            pass
        bc = cc.get_blob_client(blob)
        bc.create_page_blob(size)
        chunk = 4 << 20
        with open(path, "rb") as f:
            off = 0
            while off < size:
                data = f.read(chunk)
                # Runs of non-zero pages within the chunk.
                i = 0
                while i < len(data):
                    if data[i : i + PAGE].count(0) == PAGE:
                        i += PAGE
                        continue
                    j = i
                    while j < len(data) and data[j : j + PAGE].count(0) != PAGE and j - i < (4 << 20):
                        j += PAGE
                    bc.upload_page(data[i:j], offset=off + i, length=j - i)
                    i = j
                off += len(data)
        if md5 is not None:
            from azure.storage.blob import ContentSettings
            import base64

            bc.set_http_headers(ContentSettings(content_md5=bytearray(base64.b64decode(md5))))

    def upload_bytes(self, data, container, blob):
        """Uploads `data` (a multiple of 512 bytes) as a page blob."""
        import tempfile

        with tempfile.NamedTemporaryFile() as t:
            t.write(data)
            t.flush()
            self.upload(t.name, container, blob)

    def grant(self, res, kind, rg, name, ttl):
        pid = "g" + secrets.token_hex(6)
        cc = self.svc.get_container_client(res["container"])
        acl = cc.get_container_access_policy()
        ids = {i.id: i.access_policy for i in acl.get("signed_identifiers", [])}
        expiry = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=ttl)
        # The SAS states its expiry (`se`) as Azure's disk grants do; Azurite enforces the
        # policy's copy of it (it reads start, expiry and permissions from the policy once the
        # signature, computed over the SAS's own fields, matches).
        ids[pid] = AccessPolicy(permission=BlobSasPermissions(read=True), expiry=expiry)
        cc.set_container_access_policy(signed_identifiers=ids)
        sas = generate_blob_sas(
            ACCOUNT, res["container"], res["blob"], account_key=KEY, policy_id=pid, expiry=expiry
        )
        state["policies"].setdefault((kind, rg, name), []).append(pid)
        return f"{self.blob_url}/{res['container']}/{res['blob']}?{sas}"

    def revoke(self, res, kind, rg, name):
        pids = state["policies"].pop((kind, rg, name), [])
        if not pids:
            return
        cc = self.svc.get_container_client(res["container"])
        acl = cc.get_container_access_policy()
        ids = {i.id: i.access_policy for i in acl.get("signed_identifiers", []) if i.id not in pids}
        cc.set_container_access_policy(signed_identifiers=ids)

    def delete(self, res):
        try:
            self.svc.get_container_client(res["container"]).delete_container()
        except Exception:
            pass


PEER = None
ARM_URL = None
# Where snapshots' pages are copied (main() sets it), and the order they were taken in.
SNAPDIR = None
STATE_SEQ = [0]
# The blob proxy (blob_proxy.py): a disk's SAS points at it when its faults need its checks.
PROXY_URL = None
PROXIED = ("data_access_auth_mode", "pagelist_max_span")


def proxied(owner):
    f = state["faults"].get(owner, {})
    return any(f.get(k) for k in PROXIED)


def via_proxy(owner, url, incremental=False):
    """A grant's SAS URL, on the proxy when the disk's faults need it, or for an incremental
    snapshot (the proxy answers Get Page Ranges with a previous snapshot, which Azurite lacks:
    its issue #812)."""
    return url.replace(PEER.blob_url, PROXY_URL, 1) if proxied(owner) or incremental else url


def proxy_settings(container):
    """(owner, faults, blob size) of the disk or snapshot whose blobs live in `container`."""
    with lock:
        for table in ("disks", "snapshots"):
            for (_, name), r in state[table].items():
                if r.get("container") == container:
                    owner = r.get("owner", name)
                    return owner, dict(state["faults"].get(owner, {})), r["size"]
    return None


def drop_pages(res):
    """Removes a deleted snapshot's copy of its pages."""
    p = res.get("path", "")
    if SNAPDIR and os.path.dirname(p) == SNAPDIR:
        try:
            os.remove(p)
        except OSError:
            pass


def page_diff(container, prev_url, start, end):
    """Get Page Ranges with x-ms-previous-snapshot-url, answered from the two snapshots' pages
    (copied when each was taken): (changed, cleared) lists of (start, end inclusive), or
    (status, code, message) as the service refuses it."""
    with lock:
        new = prev = None
        pc = urllib.parse.urlsplit(prev_url)
        parts = [p for p in pc.path.split("/") if p]
        for (rg, n), r in state["snapshots"].items():
            if r.get("container") == container:
                new = r
            if len(parts) >= 3 and r.get("container") == parts[1]:
                prev = (rg, n, r)
        if new is None:
            return (404, "BlobNotFound", "The specified blob does not exist.")
        if prev is None or prev[2].get("owner") != new.get("owner"):
            return (409, "PreviousSnapshotNotFound", "The previous snapshot is not found.")
        rg, n, prev = prev
        # The previous snapshot's URL must be readable: a SAS of a live grant on it.
        si = urllib.parse.parse_qs(pc.query).get("si", [""])[0]
        if si not in state["policies"].get(("snapshots", rg, n), []):
            return (403, "AuthenticationFailed", "Server failed to authenticate the request (x-ms-previous-snapshot-url).")
        if not (new.get("incremental") and prev.get("incremental")):
            return (409, "PreviousSnapshotOperationNotSupported", "The previous snapshot operation is not supported: both must be incremental snapshots of a managed disk.")
        if prev.get("seq", 0) > new.get("seq", 0):
            return (400, "PreviousSnapshotCannotBeNewer", "The prevsnapshot query parameter value cannot be newer than snapshot query parameter value.")
        a_path, b_path = prev["path"], new["path"]
    changed, cleared = [], []
    zero = bytes(PAGE)
    with open(a_path, "rb") as fa, open(b_path, "rb") as fb:
        fa.seek(start)
        fb.seek(start)
        pos = start
        while pos <= end:
            n = min(4 << 20, end + 1 - pos)
            a, b = fa.read(n), fb.read(n)
            a = a + bytes(len(b) - len(a)) if len(a) < len(b) else a
            for i in range(0, len(b), PAGE):
                pa, pb = a[i:i + PAGE], b[i:i + PAGE]
                if pa == pb:
                    continue
                out = cleared if pb == zero[:len(pb)] else changed
                at = pos + i
                if out and out[-1][1] + 1 == at:
                    out[-1][1] = at + len(pb) - 1
                else:
                    out.append([at, at + len(pb) - 1])
            if not b:
                break
            pos += n
    return changed, cleared


def valid_storage_token(tok):
    with lock:
        return tok in state["disk_tokens"]


def count_locked(owner, key, value=None):
    with lock:
        bump(owner, key, value)


def jwt_for_storage(tenant):
    import base64

    def b64(d):
        return base64.urlsafe_b64encode(json.dumps(d).encode()).rstrip(b"=").decode()

    now = int(time.time())
    claims = {"aud": "https://storage.azure.com", "iss": f"https://sts.windows.net/{tenant}/",
              "iat": now - 60, "nbf": now - 60, "exp": now + 3600, "tid": tenant, "oid": "hypersdk-test"}
    return b64({"alg": "HS256", "typ": "JWT"}) + "." + b64(claims) + "." + b64({"sig": secrets.token_hex(8)})


def arm_id(rg, kind, name):
    return f"/subscriptions/{SUB}/resourceGroups/{rg}/providers/Microsoft.Compute/{kind}/{name}"


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *a):
        pass

    def send_json(self, code, body, headers=None):
        data = b"" if body is None else json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def body(self):
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def arm_error(self, code, err, msg):
        self.send_json(code, {"error": {"code": err, "message": msg}})

    def do_GET(self):
        self.route("GET")

    def do_POST(self):
        self.route("POST")

    def do_PUT(self):
        self.route("PUT")

    def do_DELETE(self):
        self.route("DELETE")

    def route(self, method):
        u = urllib.parse.urlparse(self.path)
        parts = [p for p in u.path.split("/") if p]
        body = self.body()
        try:
            if parts[:1] == ["_admin"]:
                return self.admin(method, parts[1:], body)
            if len(parts) == 4 and parts[1:] == ["oauth2", "v2.0", "token"] and method == "POST":
                return self.token(parts[0], body)
            auth = self.headers.get("Authorization", "")
            with lock:
                ok = auth.startswith("Bearer ") and auth[7:] in state["tokens"]
                if not ok:
                    state["stats"]["unauthorized_arm"] += 1
            if not ok:
                return self.arm_error(401, "AuthenticationFailed", "no valid bearer token")
            if parts[:1] == ["operations"]:
                return self.operation(parts[1], parts[2] if len(parts) > 2 else "status")
            refused = self.api_version_refused(method, parts)
            if refused:
                return refused
            return self.arm(method, parts, body)
        except Exception as e:  # a bug here shows in the test, not as a hang
            self.arm_error(500, "StandInError", repr(e))

    def api_version_refused(self, method, parts):
        """ARM's answer to an api-version the resource provider does not define for the type."""
        if len(parts) in (5, 7) and parts[-2] == "Microsoft.Compute":
            key = ("LIST" if len(parts) == 7 else "LIST_ALL", parts[-1], None)
        elif len(parts) >= 8:
            key = (method, parts[6], parts[8] if len(parts) > 8 else None)
        else:
            return None
        want = API_VERSIONS.get(key)
        if want is None:
            return None  # not an operation the stand-in serves: arm() answers
        q = urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query)
        got = q.get("api-version", [None])[0]
        if got is None:
            with lock:
                state["stats"]["bad_api_version"] += 1
            return self.arm_error(400, "MissingApiVersionParameter", "The api-version query parameter (?api-version=) is required for all requests.")
        # The newest version the SDK sends is the one this stand-in knows to exist; the real
        # service also takes older ones, but not a version invented for another type.
        if got != want:
            with lock:
                state["stats"]["bad_api_version"] += 1
            return self.arm_error(
                400,
                "NoRegisteredProviderFound",
                f"No registered resource provider found for location 'westeurope' and API version '{got}' for type '{key[1]}'. The supported api-versions are '{want}'.",
            )
        return None

    def token(self, tenant, body):
        # (Entra ID's certificate credentials: see certificate_assertion_refused.)
        form = urllib.parse.parse_qs(body.decode())
        with lock:
            assertion = form.get("client_assertion", [""])[0]
            if form.get("client_assertion_type") == [JWT_BEARER] and assertion != FEDERATED_TOKEN \
                    and not form.get("client_secret") and tenant == TENANT \
                    and form.get("client_id") == [CLIENT_ID]:
                # A certificate credential's signed assertion.
                refused = certificate_assertion_refused(assertion, f"https://{self.headers.get('Host')}/{tenant}/oauth2/v2.0/token")
                if refused:
                    state["stats"]["bad_assertion"] = state["stats"].get("bad_assertion", 0) + 1
                    return self.send_json(401, {"error": "invalid_client", "error_description": refused})
                state["stats"]["certificate_tokens_issued"] = state["stats"].get("certificate_tokens_issued", 0) + 1
            elif form.get("client_assertion_type") == [JWT_BEARER]:
                # A client assertion: only the federated token the app trusts, and never
                # together with a secret (Entra ID: AADSTS700025 / AADSTS70021).
                if form.get("client_secret") or tenant != TENANT or form.get("client_id") != [CLIENT_ID] \
                        or assertion != FEDERATED_TOKEN:
                    state["stats"]["bad_assertion"] = state["stats"].get("bad_assertion", 0) + 1
                    return self.send_json(
                        401,
                        {
                            "error": "invalid_client",
                            "error_description": "AADSTS70021: No matching federated identity record found for presented assertion.",
                        },
                    )
                state["stats"]["assertion_tokens_issued"] = state["stats"].get("assertion_tokens_issued", 0) + 1
            elif (
                tenant != TENANT
                or form.get("client_id") != [CLIENT_ID]
                or form.get("client_secret") != [CLIENT_SECRET]
            ):
                state["stats"]["bad_secret"] += 1
                return self.send_json(
                    401,
                    {
                        "error": "invalid_client",
                        "error_description": "AADSTS7000215: Invalid client secret provided.",
                    },
                )
            scope = form.get("scope", [""])[0]
            if scope == "https://disk.azure.com//.default":
                # The managed-disk data plane checks its audience as "https://disk.azure.com/"
                # (with the slash), which only this scope gives (AzCopy's ManagedDiskScope, the
                # storage SDKs' challenge handling); "https://disk.azure.com/.default" yields a
                # token the disk endpoint refuses, so it is issued as an ARM-only token here.
                tok = "disk-" + secrets.token_hex(16)
                state["disk_tokens"].add(tok)
                state["stats"]["disk_tokens_issued"] = state["stats"].get("disk_tokens_issued", 0) + 1
            elif "storage.azure.com" in scope:
                # For Azure Storage, a JWT Azurite accepts in `--oauth basic` mode (it checks the
                # claims, not the signature).
                tok = jwt_for_storage(tenant)
                state["storage_tokens"].add(tok)
                state["stats"]["storage_tokens_issued"] = state["stats"].get("storage_tokens_issued", 0) + 1
            else:
                tok = "tok-" + secrets.token_hex(16)
                state["tokens"].add(tok)
            state["stats"]["tokens_issued"] += 1
        self.send_json(200, {"token_type": "Bearer", "expires_in": 3600, "ext_expires_in": 3600, "access_token": tok})

    def new_op(self, result=None, error=None, polls=None, kind=None, name=None):
        op = secrets.token_hex(8)
        f = state["faults"].get(name, {})
        state["ops"][op] = {
            "polls_left": f.get("op_polls", 2) if polls is None else polls,
            "result": result,
            "error": error,
            # Operations of the kinds in faults["hold"] ("grant", "snapshot") never finish.
            "hold": kind in f.get("hold", []),
        }
        headers = {
            "Azure-AsyncOperation": f"{ARM_URL}/operations/{op}",
            "Location": f"{ARM_URL}/operations/{op}/result",
        }
        if f.get("retry_after") is not None:
            headers["Retry-After"] = str(f["retry_after"])
        return headers

    def operation(self, op, which):
        with lock:
            o = state["ops"].get(op)
            if o is None:
                return self.arm_error(404, "NotFound", "no such operation")
            hold = o["hold"]
            if o["polls_left"] > 0 or hold:
                if not hold:
                    o["polls_left"] -= 1
                if which == "status":
                    return self.send_json(200, {"status": "InProgress"})
                return self.send_json(202, None, {"Location": f"{ARM_URL}/operations/{op}/result"})
            result = o["result"]() if callable(o["result"]) else o["result"]
            o["result"] = result
            if o["error"]:
                return self.send_json(200, {"status": "Failed", "error": o["error"]})
        if which == "status":
            out = {"status": "Succeeded"}
            if result is not None:
                out["properties"] = {"output": result}
            return self.send_json(200, out)
        return self.send_json(200, result)

    def resource(self, kind, rg, name):
        table = {"disks": "disks", "snapshots": "snapshots"}[kind]
        return state[table].get((rg, name))

    def list(self, rg, kind):
        """ARM list of disks, snapshots or VMs, in a resource group or the whole subscription,
        in pages of two (so clients must follow nextLink)."""
        with lock:
            if kind == "virtualMachines":
                items = [{"id": arm_id(r, kind, n), "name": n, "properties": {"provisioningState": "Succeeded"}}
                         for (r, n) in state["vms"] if rg is None or r == rg]
            elif kind in ("disks", "snapshots"):
                items = [{"id": arm_id(r, kind, n), "name": n,
                          "properties": {"diskSizeBytes": os.path.getsize(d["path"]), "diskState": d.get("state", "Unattached")}}
                         for (r, n), d in state[kind].items() if rg is None or r == rg]
            else:
                return self.arm_error(404, "InvalidResourceType", kind)
        q = urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query)
        start = int(q.get("skip", ["0"])[0])
        page = {"value": items[start:start + 2]}
        if start + 2 < len(items):
            base = self.path.split("?", 1)[0]
            page["nextLink"] = f"https://{self.headers.get('Host')}{base}?api-version={q['api-version'][0]}&skip={start + 2}"
        # Hostile switch (faults of "list:{rg}"): a nextLink that points back at this very page,
        # as a broken or malicious endpoint could send; counted in the stats as list_loop_gets.
        with lock:
            loop = state["faults"].get(f"list:{rg}", {}).get("next_link_loop")
            if loop:
                state["stats"]["list_loop_gets"] = state["stats"].get("list_loop_gets", 0) + 1
        if loop:
            page["nextLink"] = f"https://{self.headers.get('Host')}{self.path}"
        return self.send_json(200, page)

    def arm(self, method, parts, body):
        # subscriptions/SUB/resourceGroups/RG/providers/Microsoft.Compute/KIND/NAME[/ACTION]
        if method == "GET" and parts[:2] == ["subscriptions", SUB] and (
                (len(parts) == 5 and parts[2] == "providers") or (len(parts) == 7 and parts[4] == "providers")):
            return self.list(parts[3] if len(parts) == 7 else None, parts[-1])
        if len(parts) < 8 or parts[0] != "subscriptions" or parts[1] != SUB or parts[4] != "providers":
            return self.arm_error(404, "InvalidResourceType", "not an ARM path the stand-in knows")
        rg, kind, name = parts[3], parts[6], parts[7]
        action = parts[8] if len(parts) > 8 else None
        with lock:
            hang = state["faults"].get(name, {}).get("hang_get_secs", 0) if method == "GET" else 0
        if hang:
            # A silent ARM (outside the lock: other tests go on).
            time.sleep(hang)
        with lock:
            if kind == "virtualMachines":
                vm = state["vms"].get((rg, name))
                if vm is None:
                    return self.arm_error(404, "ResourceNotFound", f"VM {name} not found")
                data = [
                    {"lun": lun, "name": d, "managedDisk": {"id": arm_id(rg, "disks", d)}}
                    for lun, d in vm["data_disks"]
                ]
                return self.send_json(
                    200,
                    {
                        "id": arm_id(rg, kind, name),
                        "name": name,
                        "location": "westeurope",
                        "properties": {
                            "storageProfile": {
                                "osDisk": {"name": vm["os_disk"], "managedDisk": {"id": arm_id(rg, "disks", vm["os_disk"])}},
                                "dataDisks": data,
                            }
                        },
                    },
                )
            if kind not in ("disks", "snapshots"):
                return self.arm_error(404, "InvalidResourceType", kind)
            res = self.resource(kind, rg, name)
            if method == "PUT" and kind == "snapshots" and action is None:
                req = json.loads(body or b"{}")
                bad = snapshot_error(req)
                if bad:
                    return self.arm_error(400, "InvalidRequestContent", bad)
                src = req.get("properties", {}).get("creationData", {}).get("sourceResourceId", "")
                sp = src.split("/")
                disk = state["disks"].get((sp[4], sp[8])) if len(sp) == 9 else None
                if disk is None:
                    return self.arm_error(404, "ResourceNotFound", f"source disk {src} not found")
                sku = state["faults"].get(sp[8], {}).get("sku", "Premium_LRS")
                incremental = req["properties"].get("incremental", False)
                if sku in ONLY_INCREMENTAL and not incremental:
                    # DiskRP: Premium SSD v2 and Ultra disks take incremental snapshots only.
                    return self.arm_error(400, "OperationNotAllowed", f"Only incremental snapshots are supported for disks of SKU {sku}.")
                snap = dict(disk)
                snap.update(state="Unattached", idle_state="Unattached", container=container_for(name), blob="abcd", source=src, owner=sp[8])
                snap["incremental"] = incremental
                # Their incremental snapshots are copied in the background: readable only when
                # the copy is done (snapshotAccessState Pending → Available, completionPercent).
                snap["copy_polls"] = 2 if sku in ONLY_INCREMENTAL else 0
                if incremental:
                    state["stats"]["incremental_snapshots"] += 1
                    bump(sp[8], "incremental_snapshots")
                state["snapshots"][(rg, name)] = snap
                state["stats"]["snapshots_made"] += 1
                bump(sp[8], "snapshots_made")
                # What the export asked its snapshot to keep of the disk's protection.
                bump(sp[8], "snapshot_data_access_auth_mode", req["properties"].get("dataAccessAuthMode", "None"))
                # The snapshot is the disk as it is now: its pages copied aside (the diff of two
                # incremental snapshots is answered from these copies; Azurite has none).
                STATE_SEQ[0] += 1
                snap["seq"] = STATE_SEQ[0]
                path = os.path.join(SNAPDIR, snap["container"])
                shutil.copyfile(disk["path"], path)
                snap["path"], snap["size"] = path, os.path.getsize(path)
                md5 = disk.get("md5")

                def done(snap=snap, path=path, md5=md5):
                    PEER.upload(path, snap["container"], snap["blob"], md5)
                    return None

                disk_name = sp[8] if len(sp) == 9 else ""
                h = self.new_op(result=done, kind="snapshot", name=disk_name)
                return self.send_json(202, {"id": arm_id(rg, kind, name), "name": name, "properties": {"provisioningState": "Creating"}}, h)
            if res is None:
                return self.arm_error(404, "ResourceNotFound", f"{kind[:-1].capitalize()} {name} not found")
            if method == "GET" and action is None:
                props = {
                    "diskSizeBytes": res["size"],
                    "diskState": res["state"],
                    "provisioningState": "Succeeded",
                }
                out = {"id": arm_id(rg, kind, name), "name": name, "location": res["location"], "properties": props}
                settings = state["faults"].get(res.get("owner", name), {})
                props["creationData"] = {"createOption": "Empty", "logicalSectorSize": settings.get("logical_sector_size", 512)}
                if res.get("source"):
                    # A snapshot made from a disk (Snapshot.creationData: Copy of sourceResourceId).
                    props["creationData"].update(createOption="Copy", sourceResourceId=res["source"])
                if settings.get("security_type"):
                    props["securityProfile"] = {"securityType": settings["security_type"]}
                if settings.get("data_access_auth_mode"):
                    props["dataAccessAuthMode"] = settings["data_access_auth_mode"]
                if kind == "disks":
                    out["sku"] = {"name": settings.get("sku", "Premium_LRS")}
                else:
                    props["incremental"] = res.get("incremental", False)
                    if res.get("copy_polls"):
                        props["snapshotAccessState"] = "Pending"
                        props["completionPercent"] = 100.0 - 50.0 * res["copy_polls"]
                        res["copy_polls"] -= 1
                    elif res.get("incremental"):
                        props["snapshotAccessState"] = "Available"
                        props["completionPercent"] = 100.0
                return self.send_json(200, out)
            if method == "DELETE" and kind == "snapshots" and action is None:
                del state["snapshots"][(rg, name)]
                drop_pages(res)
                state["stats"]["snapshots_deleted"] += 1
                bump(res.get("owner", name), "snapshots_deleted")
                PEER.delete(res)
                return self.send_json(202, None, self.new_op(result=None, polls=1))
            if method == "POST" and action == "beginGetAccess":
                bad = grant_data_error(body)
                if bad:
                    state["stats"]["bad_grant_body"] += 1
                    return self.arm_error(400, "InvalidRequestContent", bad)
                if res["state"] == "Attached":
                    return self.arm_error(409, "OperationNotAllowed", f"Disk {name} is attached to a running VM.")
                if res.get("copy_polls"):
                    return self.arm_error(409, "OperationNotAllowed", f"Snapshot {name} is not ready for access: its background copy is not complete.")
                sector = state["faults"].get(res.get("owner", name), {}).get("logical_sector_size", 512)
                if json.loads(body or b"{}").get("fileFormat") == "VHDX" and sector != 4096:
                    # GrantAccessData.fileFormat is for VHDX-format (4096-byte sector) snapshots.
                    bump(res.get("owner", name), "refused_vhdx")
                    return self.arm_error(400, "InvalidParameter", f"fileFormat VHDX is supported only for resources with a logical sector size of 4096; {name} has {sector}.")
                state["stats"]["grants"] += 1
                owner = res.get("owner", name)
                bump(owner, "grants")
                f = state["faults"].get(owner, {})
                fail_renewals = f.get("renewal_failures", 0)
                if fail_renewals and state["per"][owner]["grants"] > 1:
                    f["renewal_failures"] = fail_renewals - 1
                    return self.send_json(202, None, self.new_op(error={"code": "InternalOperationError", "message": "renewal failed in the stand-in"}, kind="grant", name=owner))
                if f.get("grant_fails"):
                    return self.send_json(202, None, self.new_op(error={"code": "InternalOperationError", "message": "grant failed in the stand-in"}, kind="grant", name=owner))
                ttl = int(f.get("sas_ttl_secs") or json.loads(body or b"{}").get("durationInSeconds", 3600))
                res["state"] = "ActiveSAS"

                security = f.get("security_type")
                want_guest = json.loads(body or b"{}").get("getSecureVMGuestStateSAS") is True
                if security and want_guest:
                    bump(owner, "guest_state_grants")

                def sas(res=res, kind=kind, rg=rg, name=name, ttl=ttl, owner=owner, security=security, want_guest=want_guest):
                    url = via_proxy(owner, PEER.grant(res, kind, rg, name, ttl), res.get("incremental"))
                    bump(owner, "last_sas", url)
                    out = {"accessSAS": url}
                    # A Trusted Launch or confidential VM's disk: its VM guest state (and a
                    # confidential VM's security metadata) are blobs of their own, given only
                    # when asked with getSecureVMGuestStateSAS.
                    if security and want_guest:
                        for blob, key, data in GUEST_BLOBS:
                            if key == "securityMetadataAccessSAS" and not security.startswith("ConfidentialVM"):
                                continue
                            PEER.upload_bytes(data, res["container"], blob)
                            out[key] = via_proxy(owner, PEER.grant(dict(res, blob=blob), kind, rg, name, ttl))
                    return out

                return self.send_json(202, None, self.new_op(result=sas, kind="grant", name=owner))
            if method == "POST" and action == "endGetAccess":
                state["stats"]["revokes"] += 1
                bump(res.get("owner", name), "revokes")
                PEER.revoke(res, kind, rg, name)
                if res["state"] == "ActiveSAS":
                    res["state"] = res.get("idle_state", "Unattached")
                return self.send_json(202, None, self.new_op(result=None, polls=1))
        return self.arm_error(405, "MethodNotAllowed", f"{method} {self.path}")

    def admin(self, method, parts, body):
        req = json.loads(body or b"{}")
        with lock:
            if parts == ["disks"] and method == "POST":
                size = os.path.getsize(req["path"])
                rec = {
                    "path": req["path"],
                    "state": req.get("state", "Unattached"),
                    "idle_state": req.get("state", "Unattached"),
                    "location": req.get("location", "westeurope"),
                    "container": container_for(req["name"]),
                    "blob": "abcd",
                    "size": size,
                    "md5": req.get("md5"),
                }
                kind = req.get("kind", "disks")
                state[kind][(req["rg"], req["name"])] = rec
            elif parts == ["write"] and method == "POST":
                # Writes to a disk as its VM would (`data` base64 at `offset`, or `zeros` bytes
                # cleared); its blob follows below.
                import base64

                rec = state["disks"][(req["rg"], req["name"])]
                data = base64.b64decode(req["data"]) if "data" in req else bytes(req["zeros"])
                if req["offset"] % PAGE or len(data) % PAGE or req["offset"] + len(data) > rec["size"]:
                    return self.send_json(400, {"error": "writes are whole pages inside the disk"})
                with open(rec["path"], "r+b") as f:
                    f.seek(req["offset"])
                    f.write(data)
                wrote = (rec, req["offset"], data)
            elif parts == ["resize"] and method == "POST":
                # Disks - Update of diskSizeGB: the disk grows (the new bytes read as zeros).
                rec = state["disks"][(req["rg"], req["name"])]
                with open(rec["path"], "r+b") as f:
                    f.truncate(req["size"])
                rec["size"] = req["size"]
            elif parts == ["delete-snapshot"] and method == "POST":
                res = state["snapshots"].pop((req["rg"], req["name"]))
                drop_pages(res)
                bump(res.get("owner", req["name"]), "snapshots_deleted")
                PEER.delete(res)
                return self.send_json(200, {})
            elif parts == ["certificate"] and method == "POST":
                # The certificate the test app trusts (its public part, PEM), as a service
                # principal's uploaded certificate.
                state["certificate"] = req["pem"].encode()
                return self.send_json(200, {})
            elif parts == ["vms"] and method == "POST":
                state["vms"][(req["rg"], req["name"])] = {
                    "os_disk": req["os_disk"],
                    "data_disks": req.get("data_disks", []),
                }
                return self.send_json(200, {})
            elif parts == ["faults"] and method == "POST":
                # Faults of one disk (tests run in parallel against one peer).
                state["faults"][req.pop("disk")] = req
                return self.send_json(200, {})
            elif parts == ["sas"] and method == "POST":
                res = state["disks"][(req["rg"], req["name"])]
                url = via_proxy(req["name"], PEER.grant(res, "blob", req["rg"], req["name"], 3600))
                return self.send_json(200, {"sas": url})
            elif parts == ["stats"] and len(parts) == 1 and "disk=" in (urllib.parse.urlparse(self.path).query or ""):
                name = urllib.parse.parse_qs(urllib.parse.urlparse(self.path).query)["disk"][0]
                bump(name, "grants", state["per"].get(name, {}).get("grants", 0))
                s = dict(state["per"][name])
                s["active_policies"] = sum(
                    len(v) for (k, rg, n), v in state["policies"].items()
                    if n == name or state["snapshots"].get((rg, n), {}).get("owner") == name
                )
                d = state["disks"].get(("rg1", name))
                s["state"] = d["state"] if d else None
                s["snapshots_left"] = sorted(n for (_, n), r in state["snapshots"].items() if r.get("owner") == name)
                return self.send_json(200, s)
            elif parts == ["stats"]:
                s = dict(state["stats"])
                s["last_sas"] = state.get("last_sas")
                s["disk_states"] = {n: r["state"] for (_, n), r in state["disks"].items()}
                s["active_policies"] = sum(len(v) for v in state["policies"].values())
                s["snapshots"] = sorted(n for (_, n) in state["snapshots"])
                return self.send_json(200, s)
            else:
                return self.send_json(404, {"error": "no such admin call"})
        if parts == ["write"]:
            # Only those pages of the disk's blob (Put Page: update, or clear for zeros).
            rec, at, data = wrote
            bc = PEER.svc.get_container_client(rec["container"]).get_blob_client(rec["blob"])
            for i in range(0, len(data), 4 << 20):
                chunk = data[i:i + (4 << 20)]
                if chunk.count(0) == len(chunk):
                    bc.clear_page(offset=at + i, length=len(chunk))
                else:
                    bc.upload_page(chunk, offset=at + i, length=len(chunk))
            return self.send_json(200, {})
        # Upload outside the lock (a 64 MiB fixture takes a moment).
        PEER.upload(rec["path"], rec["container"], rec["blob"], rec["md5"])
        return self.send_json(200, {"blob": f"{PEER.blob_url}/{rec['container']}/{rec['blob']}"})


def main():
    global PEER, ARM_URL, PROXY_URL, SNAPDIR
    ap = argparse.ArgumentParser()
    ap.add_argument("--azurite", required=True)
    ap.add_argument("--cert", required=True)
    ap.add_argument("--key", required=True)
    ap.add_argument("--workdir", required=True)
    ap.add_argument("--exit-on-stdin-eof", action="store_true")
    a = ap.parse_args()

    blob_port = free_port()
    azurite = subprocess.Popen(
        [
            a.azurite,
            "--blobHost", "127.0.0.1",
            "--blobPort", str(blob_port),
            "--location", a.workdir,
            "--cert", a.cert,
            "--key", a.key,
            "--skipApiVersionCheck",
            "--loose",
            # Bearer tokens for blob URLs without a SAS (claims checked, not signatures).
            "--oauth", "basic",
            "--silent",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    blob_url = f"https://127.0.0.1:{blob_port}/{ACCOUNT}"
    deadline = time.time() + 60
    while True:
        try:
            socket.create_connection(("127.0.0.1", blob_port), timeout=1).close()
            break
        except OSError:
            if time.time() > deadline or azurite.poll() is not None:
                print(json.dumps({"error": "azurite did not start"}), flush=True)
                sys.exit(1)
            time.sleep(0.2)
    PEER = Peer(blob_url, a.cert)
    SNAPDIR = os.path.join(a.workdir, "snapshot-pages")
    os.makedirs(SNAPDIR, exist_ok=True)
    PROXY_URL = blob_proxy.start(blob_url, a.cert, a.cert, a.key, proxy_settings, valid_storage_token, count_locked, TENANT, page_diff)

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(a.cert, a.key)
    httpd.socket = ctx.wrap_socket(httpd.socket, server_side=True)
    ARM_URL = f"https://127.0.0.1:{httpd.server_address[1]}"
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    print(
        json.dumps(
            {
                "arm": ARM_URL,
                "blob": blob_url,
                "tenant": TENANT,
                "client_id": CLIENT_ID,
                "client_secret": CLIENT_SECRET,
                "federated_token": FEDERATED_TOKEN,
                "subscription": SUB,
            }
        ),
        flush=True,
    )
    try:
        if a.exit_on_stdin_eof:
            sys.stdin.read()
        else:
            while True:
                time.sleep(3600)
    finally:
        os.killpg(azurite.pid, 15)
        # The snapshots' page copies are whole disks: not left behind.
        shutil.rmtree(SNAPDIR, ignore_errors=True)


if __name__ == "__main__":
    main()
