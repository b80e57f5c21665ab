"""Cloud Build's export step in the GCP stand-in: what gce_vm_image_export does with a build (no emulator runs it).

A build's flags must be the exporter's own (any other stops the Go flag package), its scratch
bucket must exist, the project must let the exporter work (project_model.export_failure); then
the image's disk is converted with `qemu-img convert` into the asked format and uploaded into
fake-gcs-server, as the exporter writes it. `build_json` is a build as Cloud Build v1 answers it.
"""

import os
import subprocess
import urllib.parse

import project_model
from standin_state import STATE, ensure_bucket, gcs, upload

# The flags gce_vm_image_export defines (compute-image-import cli_tools/gce_vm_image_export):
# any other one makes the Go flag package stop the step.
EXPORTER_FLAGS = {"-client_id", "-client_version", "-destination_uri", "-source_image", "-source_disk_snapshot",
                  "-format", "-network", "-subnet", "-zone", "-timeout", "-scratch_bucket_gcs_path", "-oauth",
                  "-compute_endpoint_override", "-project", "-labels", "-compute_service_account",
                  "-disable_gcs_logging", "-disable_cloud_logging", "-disable_stdout_logging"}


def run_build(b, workdir):
    """The export step: convert the image's disk and upload it, as gce_vm_image_export does."""
    opt = b["opt"]
    unknown = sorted(set(opt) - EXPORTER_FLAGS)
    if unknown:
        b["status"], b["detail"] = "FAILURE", f"step exited with non-zero status: 2 (flag provided but not defined: {unknown[0]})"
        return
    scratch = opt.get("-scratch_bucket_gcs_path")
    if scratch:
        sb = scratch[5:].split("/", 1)[0] if scratch.startswith("gs://") else ""
        if gcs("GET", f"/storage/v1/b/{urllib.parse.quote(sb, safe='')}")[0] != 200:
            b["status"], b["detail"] = "FAILURE", f"step exited with non-zero status: 1 (scratch bucket {scratch} does not exist)"
            return
    why = project_model.export_failure(b["project"], opt)
    if why:
        b["status"], b["detail"] = "FAILURE", why
        return
    img = STATE["images"].get((b["project"], b["image"]))
    if img is None or img["status"] != "READY":
        b["status"], b["detail"] = "FAILURE", f"source image {b['image']} not found"
        return
    dest = b["destination"]
    if not dest.startswith("gs://"):
        b["status"], b["detail"] = "FAILURE", "bad destination"
        return
    bucket, obj = dest[5:].split("/", 1)
    fmt = {"vmdk": "vmdk", "vhdx": "vhdx", "vpc": "vpc", "qcow2": "qcow2"}[b["format"]]
    out = os.path.join(workdir, f"build-{b['id']}.{fmt}")
    subprocess.run(["qemu-img", "convert", "-f", "raw", "-O", fmt, img["raw"], out], check=True)
    ensure_bucket(bucket)
    upload(bucket, obj, out)
    os.remove(out)
    b["status"] = "SUCCESS"


def build_json(b):
    j = {"id": b["id"], "projectId": b["project"], "status": b["status"], "statusDetail": b.get("detail", ""),
         "steps": [{"name": b["step"], "args": b["args"], "status": b["status"] if b["status"] != "QUEUED" else "PENDING"}],
         "tags": b["tags"]}
    return j
