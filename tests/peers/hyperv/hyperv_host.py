"""The fake Hyper-V host of the PowerShell stand-in (pwsh_standin.py), for tests only: what the
library's scripts would do against a host described by DIR/state.json.

state.json: `vms` [{name, id, state, faults, disks: [{path (the base disk on the host), local
(a real VHDX here), size, checkpoints: [.avhdx host paths, oldest first], passthrough,
disk_number}]}], `remote`, `share` {host, local, computer_account (default true: the host's
computer account may write there)}, `jobs` (every CIM_ConcreteJob of the host: this export's,
another export's, a backup's, a merge), `checkpoints`, `oem_code_page`, `ps_version`.
"""

import fcntl
import json
import os
import signal
import subprocess
import sys
import time
import uuid

OUT_ENCODING = "utf-8"
# The password remote.ps1 was given (remote transports only), for the echo_password fault.
REMOTE_PASSWORD = None
# Msvm_StorageJob.JobType (Microsoft's Msvm_StorageJob reference).
COMPACTION, MERGING, CONVERSION = 3, 5, 6


def out(obj):
    # ConvertTo-Json leaves non-ASCII as it is; the console encodes the line.
    line = json.dumps(obj, separators=(",", ":"), ensure_ascii=False) + "\n"
    sys.stdout.buffer.write(line.encode(OUT_ENCODING, errors="replace"))
    sys.stdout.flush()


def fail(category, ident, message, code=1):
    out({"event": "error", "category": category, "id": ident, "message": message})
    sys.exit(code)


class State:
    def __init__(self, root):
        self.root = root
        self.lockf = open(os.path.join(root, "lock"), "a")

    def __enter__(self):
        fcntl.flock(self.lockf, fcntl.LOCK_EX)
        with open(os.path.join(self.root, "state.json")) as f:
            self.data = json.load(f)
        self.data.setdefault("checkpoints", [])
        self.data.setdefault("jobs", [])
        return self.data

    def __exit__(self, *exc):
        tmp = os.path.join(self.root, "state.json.tmp")
        with open(tmp, "w") as f:
            json.dump(self.data, f)
        os.replace(tmp, os.path.join(self.root, "state.json"))
        fcntl.flock(self.lockf, fcntl.LOCK_UN)


def leaf(path):
    return path.replace("\\", "/").rsplit("/", 1)[-1]


def host_to_local(share, path):
    if share and path.lower().startswith(share["host"].lower()):
        rest = path[len(share["host"]):].replace("\\", "/").lstrip("/")
        return os.path.join(share["local"], rest)
    return path.replace("\\", "/") if share else path


def on_share(share, path):
    return bool(share) and path.lower().startswith(share["host"].lower())


def find_vm(state, inp):
    if inp.get("id"):
        return [v for v in state["vms"] if v["id"] == inp["id"]]
    return [v for v in state["vms"] if v["name"].lower() == inp.get("vm", "").lower()]


def hang_here(root):
    # A grandchild in our process group, as a real session would leave one.
    child = subprocess.Popen(["sleep", "600"])
    with open(os.path.join(root, "hang-grandchild.pid"), "w") as f:
        f.write(str(child.pid))
    time.sleep(600)


def fake_avhdx(root, path):
    """A differencing disk's file: a VHDX header (file type identifier, two headers, a region
    table at their offsets in the VHDX specification) and some data."""
    local = os.path.join(root, "avhdx-" + leaf(path))
    if not os.path.exists(local):
        data = bytearray(1 << 20)
        data[0:8] = b"vhdxfile"
        data[0x10000:0x10004] = b"head"
        data[0x20000:0x20004] = b"head"
        data[0x30000:0x30004] = b"regi"
        data[0x40000:0x40004] = b"regi"
        data[0x50000:] = bytes((i * 7 + len(path)) & 0xFF for i in range(len(data) - 0x50000))
        with open(local, "wb") as f:
            f.write(data)
    return local


def chain_of(root, d):
    """[(host path, local file)] from the file the VM writes down to the base disk."""
    links = [(p, fake_avhdx(root, p)) for p in reversed(d.get("checkpoints", []))]
    return links + [(d["path"], d["local"])]


def passthrough(d):
    return d.get("passthrough", False)


def get_vhd_of_drive(d):
    if passthrough(d):
        # Get-VHD -Path '' (a pass-through drive has no file).
        fail("InvalidData", "ParameterArgumentValidationErrorEmptyStringNotAllowed,Microsoft.Vhd.PowerShell.Cmdlets.GetVHD",
             "Cannot bind argument to parameter 'Path' because it is an empty string.")


def inventory(ctx, inp):
    root, model = ctx["root"], ctx["model"]
    with State(root) as s:
        hits = find_vm(s, inp)
    if hits and hits[0].get("faults", {}).get("hang_inventory"):
        hang_here(root)
    if not hits:
        fail("ObjectNotFound", "VMNotFound", "no such virtual machine", 2)
    vm = hits[0]
    out({"event": "vm", "name": vm["name"], "id": vm["id"], "state": vm.get("state", "Running"), "generation": 2})
    for i, d in enumerate(vm["disks"]):
        where = {"controller_type": "SCSI", "controller_number": 0, "controller_location": i}
        if passthrough(d) and model["skips_passthrough"]:
            out(dict(event="skipped", reason="pass-through", disk_number=d.get("disk_number", 2), **where))
            continue
        get_vhd_of_drive(d)
        chain = chain_of(root, d)
        line = {"event": "disk", "path": chain[0][0], "file_size": os.path.getsize(chain[0][1]),
                "size": d.get("size", 0), "format": "VHDX",
                "parent": chain[1][0] if len(chain) > 1 else "", **where}
        if model["walks_chain"]:
            line["chain"] = [{"path": p, "file_size": os.path.getsize(lf)} for p, lf in chain]
        out(line)


def list_vms(ctx, inp):
    with State(ctx["root"]) as s:
        vms = list(s["vms"])
    for vm in vms:
        size = 0
        for d in vm["disks"]:
            if passthrough(d) and ctx["model"]["skips_passthrough"]:
                continue
            get_vhd_of_drive(d)
            size += sum(os.path.getsize(lf) for _, lf in chain_of(ctx["root"], d))
        out({"event": "vm", "name": vm["name"], "id": vm["id"], "state": vm.get("state", "Running"), "bytes": size})


def new_job(s, cls, job_type, vms, pid=None, **extra):
    j = {"instance_id": str(uuid.uuid4()).upper(), "class": cls, "job_type": job_type, "vms": vms, "pid": pid}
    j.update(extra)
    s["jobs"].append(j)
    return j


def start_writer(root, vm, faults, copies, config, tag):
    status = os.path.join(root, f"job-{tag}.status")
    job = {"copies": copies, "config": config, "delay_ms": faults.get("write_delay_ms", 10),
           "chunk": faults.get("chunk", 262144), "fail_after": faults.get("fail_after_bytes"),
           "status": status}
    jobfile = os.path.join(root, f"job-{tag}.json")
    with open(jobfile, "w") as f:
        json.dump(job, f)
    # The Hyper-V service's job: its own session, so killing PowerShell does not stop it.
    p = subprocess.Popen([sys.executable, os.path.join(os.path.dirname(os.path.abspath(__file__)), "pwsh_standin.py"),
                          "--writer", jobfile], start_new_session=True, stdin=subprocess.DEVNULL,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return p, status


def job_line(step, j):
    return {"event": "job", "step": step, "id": j["instance_id"], "class": j["class"],
            "job_type": j["job_type"], "vms": j["vms"]}


def wait_jobs(procs, inp, index, steps):
    """Wait-Step: Hyper-V's percent until every job of the step completed; a failed one throws."""
    poll = max(inp.get("poll_ms", 200), 50) / 1000.0
    while procs:
        states = [(p, read_status(st)) for p, st in procs]
        for p, st in states:
            if st.get("state") == "failed":
                fail("NotSpecified", "ExportFailed,Microsoft.HyperV.PowerShell.Commands.ExportVM", st.get("error", "failed"))
            if p.poll() is not None and read_status(procs[[q for q, _ in procs].index(p)][1]).get("state") != "completed":
                fail("NotSpecified", "JobStopped", "the export job ended Stopped")
        if all(st.get("state") == "completed" for _, st in states):
            return
        pct = sum(100 * st.get("done", 0) / (st.get("total") or 1) for _, st in states) / len(states)
        out({"event": "progress", "percent": int((index * 100 + pct) / steps)})
        time.sleep(poll)


def check_share_write(share, ctx, path):
    """Export-VM and Convert-VHD write as the Hyper-V service, i.e. the host's computer account."""
    if on_share(share, path) and not share.get("computer_account", True):
        fail("PermissionDenied", "AccessDenied,Microsoft.HyperV.PowerShell.Commands.ExportVM",
             f"Hyper-V could not write to '{path}': General access denied error (0x80070005). "
             "The computer account of the Hyper-V host needs write access to the share.")


def export(ctx, inp):
    from hyperv_export import run_export
    run_export(ctx, inp)


def verify(ctx, inp):
    with State(ctx["root"]) as s:
        share = s.get("share")
    for path in inp["paths"]:
        if ctx["session"] == "remote" and on_share(share, path) and ctx["authentication"].lower() != "credssp":
            # The second hop: the session's credential does not reach the share.
            fail("PermissionDenied", "ItemExistsUnauthorizedAccessError,Microsoft.PowerShell.Commands.GetItemCommand",
                 f"Access to the path '{path}' is denied.")
        local = host_to_local(share, path)
        if not os.path.isfile(local):
            fail("ObjectNotFound", "PathNotFound,Microsoft.PowerShell.Commands.GetItemCommand", "cannot find path")
        with open(local, "rb") as f:
            ok = f.read(8) == b"vhdxfile"
        out({"event": "file", "path": path, "file_size": os.path.getsize(local), "ok": ok})


def job_running(j):
    if j.get("stopped") or j.get("state") == "completed":
        return False
    pid = j.get("pid")
    # A job with no process here is another party's (a backup's, a merge), running until stopped.
    if pid is None:
        return True
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except OSError:
        return False


def stop_job(s, j):
    """RequestStateChange(4) on the job: it ends, and the host records who was stopped."""
    if j.get("pid"):
        try:
            os.kill(j["pid"], signal.SIGKILL)
        except ProcessLookupError:
            pass
    j["stopped"] = True
    s.setdefault("stopped_jobs", []).append(j.get("instance_id"))


def remove_checkpoint(s, vm_id, name):
    """Remove-VMSnapshot: the checkpoint goes, and Hyper-V merges its differencing disks back
    into the running chain in a job of its own (a Msvm_StorageJob, JobType Merging)."""
    before = len(s["checkpoints"])
    s["checkpoints"] = [c for c in s["checkpoints"] if c["name"] != name]
    if len(s["checkpoints"]) != before:
        new_job(s, "Msvm_StorageJob", MERGING, [vm_id.upper()], owner="merge of " + name)
        return True
    return False


# CIM_ConcreteJob.RequestStateChange: "Invalid state for this operation".
INVALID_STATE = 32775


def cleanup(ctx, inp):
    # Exactly the jobs whose InstanceIDs cleanup.ps1 was given. A VM with the `refuse_stop`
    # fault has Hyper-V answer RequestStateChange with 32775: the job runs on, and only a
    # script that checks the return code knows it.
    stopped = []
    not_stopped = []
    with State(ctx["root"]) as s:
        vm = (find_vm(s, {"id": inp.get("id")}) or [{}])[0]
        refuse = vm.get("faults", {}).get("refuse_stop", False)
        for j in s["jobs"]:
            if job_running(j) and j.get("instance_id") in (inp.get("job_ids") or []):
                if refuse:
                    if ctx["model"]["checks_stop_code"]:
                        not_stopped.append({"id": j["instance_id"], "code": INVALID_STATE})
                    else:
                        stopped.append(j.get("instance_id"))
                    continue
                stop_job(s, j)
                stopped.append(j.get("instance_id"))
        removed = bool(inp.get("checkpoint_name")) and remove_checkpoint(s, inp["id"], inp["checkpoint_name"])
    out({"event": "cleaned", "jobs_stopped": len(stopped), "stopped_job_ids": stopped,
         "jobs_not_stopped": not_stopped, "checkpoint_removed": removed})


def read_status(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return {}


def write_status(path, st):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(st, f)
    os.replace(tmp, path)


def writer_main(jobfile):
    with open(jobfile) as f:
        job = json.load(f)
    total = sum(os.path.getsize(s) for s, _ in job["copies"])
    done = 0
    write_status(job["status"], {"state": "running", "done": 0, "total": total})
    for path in job["config"].values():
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(b"hyper-v configuration stand-in\n")
    for src, dest in job["copies"]:
        os.makedirs(os.path.dirname(dest), exist_ok=True)
        with open(src, "rb") as fin, open(dest, "wb") as fout:
            while True:
                block = fin.read(job["chunk"])
                if not block:
                    break
                if job["fail_after"] is not None and done + len(block) > job["fail_after"]:
                    write_status(job["status"], {"state": "failed", "done": done, "total": total,
                                                 "error": "The operation failed: not enough space on the disk"})
                    return
                fout.write(block)
                fout.flush()
                done += len(block)
                write_status(job["status"], {"state": "running", "done": done, "total": total})
                time.sleep(job["delay_ms"] / 1000.0)
    write_status(job["status"], {"state": "completed", "done": done, "total": total})


ACTIONS = {"list": list_vms, "inventory": inventory, "export": export, "verify": verify, "cleanup": cleanup}
