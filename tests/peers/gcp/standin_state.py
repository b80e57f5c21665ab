"""The GCP stand-in's shared state and its way to fake-gcs-server (see gcp_standin.py)."""

import base64
import http.client
import json
import threading
import urllib.parse

PORT = {"gcs": 0}  # fake-gcs-server's port, set once it listens

LOCK = threading.Lock()
STATE = {
    "disks": {},        # (project, "zones/Z" | "regions/R", name) -> {raw, users, size_gb}
    "instances": {},    # (project, zone, name) -> {disks: [{name, boot}]}
    "images": {},       # (project, name) -> {raw, status, source_disk, polls_left}
    "operations": {},   # name -> {status, progress, polls_left, target, error, kind}
    "builds": {},       # id -> {...}
    "faults": {},       # name -> {...}
    "tokens": {},       # token -> expiry (epoch)
    "clients": {},      # refresh_token -> client_secret
    "stats": {"images_made": 0, "images_deleted": 0, "builds_made": 0, "builds_cancelled": 0,
              "unauthenticated": 0, "token_grants": 0, "object_gets": 0},
    "lie_crc32c": set(),  # "bucket/object" whose metadata lies about crc32c
    "image_names": [],  # every image inserted through the API, deleted or not
    "request_ids": {},  # images.insert requestId -> its operation's name
    "metagen": {},      # (bucket, object, generation) -> metageneration (starts at 1)
    "bucket_project": {},  # bucket -> the project that made it (buckets.insert?project=)
}

def gerror(code, message, reason, status=None):
    return code, {"error": {"code": code, "message": message, "status": status or "",
                            "errors": [{"reason": reason, "message": message, "domain": "global"}]}}


def fault(name, key, default=None):
    return STATE["faults"].get(name, {}).get(key, default)


def gcs(method, path, body=None, headers=None):
    c = http.client.HTTPConnection("127.0.0.1", PORT["gcs"], timeout=60)
    c.request(method, path, body=body, headers=headers or {})
    r = c.getresponse()
    data = r.read()
    c.close()
    return r.status, data


def upload(bucket, obj, path):
    with open(path, "rb") as f:
        data = f.read()
    q = urllib.parse.urlencode({"uploadType": "media", "name": obj})
    status, body = gcs("POST", f"/upload/storage/v1/b/{bucket}/o?{q}", data,
                       {"Content-Type": "application/octet-stream"})
    if status != 200:
        raise RuntimeError(f"upload to fake-gcs-server failed: {status} {body[:200]}")


def ensure_bucket(bucket):
    gcs("POST", "/storage/v1/b?project=test", json.dumps({"name": bucket}).encode(),
        {"Content-Type": "application/json"})


def object_etag(generation, metageneration):
    """An object's ETag as Cloud Storage's JSON API makes it: of generation and metageneration."""
    return base64.b64encode(f"{generation}/{metageneration}".encode()).decode()
