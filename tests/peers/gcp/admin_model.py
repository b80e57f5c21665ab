"""The GCP stand-in's control calls (/_admin/...): tests describe projects, disks, instances, images, registries and faults, and read its counters (no part of any Google API)."""

import hashlib
import json
import urllib.parse

import project_model
import registry_model
from standin_state import STATE, ensure_bucket, gcs, upload


def admin(p, body):
    """(status, JSON) for POST /_admin/{p[0]}; the caller holds the state's lock."""
    what = p[0] if p else ""
    if what in ("disk", "instance", "image") and body["project"] not in project_model.PROJECTS:
        # A resource made in a project the tests never described: the project exists,
        # set up as the export needs it.
        project_model.add_project(body["project"], 100000000000 + int(hashlib.sha256(
            body["project"].encode()).hexdigest()[:10], 16) % 899999999999)
    if what == "disk":
        loc = f"regions/{body['region']}" if body.get("region") else f"zones/{body['zone']}"
        STATE["disks"][(body["project"], loc, body["name"])] = {"raw": body["raw"], "users": body.get("users", []),
                                                               "size_gb": body.get("size_gb", 1)}
    elif what == "instance":
        STATE["instances"][(body["project"], body["zone"], body["name"])] = {"disks": body["disks"]}
    elif what == "image":
        STATE["images"][(body["project"], body["name"])] = {"raw": body["raw"], "status": "READY", "source_disk": ""}
    elif what == "project":
        project_model.admin(body)
    elif what == "registry":
        registry_model.admin(body)
    elif what == "bucket":
        status, data = gcs("POST", "/storage/v1/b?project=test", json.dumps(
            {"name": body["name"], "versioning": {"enabled": bool(body.get("versioning"))}}).encode(),
            {"Content-Type": "application/json"})
        if status not in (200, 409):
            return 500, {"error": f"bucket: {status} {data[:200]!r}"}
    elif what == "label":
        # A metadata edit (objects.patch of a label): the metageneration, and with it the
        # JSON API's ETag, moves on; the generation and the bytes stay.
        o = urllib.parse.quote(body["object"], safe="")
        status, data = gcs("GET", f"/storage/v1/b/{body['bucket']}/o/{o}")
        gen = str(json.loads(data)["generation"])
        k = (body["bucket"], body["object"], gen)
        STATE["metagen"][k] = STATE["metagen"].get(k, 1) + 1
    elif what == "faults":
        STATE["faults"][body["name"]] = body["faults"]
    elif what == "client":
        STATE["clients"][body["refresh_token"]] = body["client_secret"]
    elif what == "lie_crc32c":
        STATE["lie_crc32c"].add(body["object"])
    elif what == "object":
        ensure_bucket(body["bucket"])
        upload(body["bucket"], body["object"], body["path"])
    elif what == "stats":
        s = dict(STATE["stats"])
        s["live_images"] = [n for (_, n), i in STATE["images"].items() if i.get("source_disk")]
        s["images_made_names"] = list(STATE["image_names"])
        s["registry_probes"] = dict(registry_model.PROBES)
        s["builds"] = [{"id": b["id"], "status": b["status"], "args": b["args"], "step": b["step"],
                        "tags": b["tags"], "image": b["image"], "location": b["location"],
                        "timeout": b["timeout"], "detail": b.get("detail", "")}
                       for b in STATE["builds"].values()]
        return 200, s
    else:
        return 404, {"error": "no such admin call"}
    return 200, {"ok": True}
