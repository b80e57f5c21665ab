"""Stand-in for PowerShell and the Hyper-V module ONLY (no PowerShell or Hyper-V exists on our machines).

Called as `pwsh` by the library: `--state DIR -NoProfile -NonInteractive -EncodedCommand B64`
(the `--state DIR` comes from the test's wrapper script). It decodes the command (UTF-16LE),
checks that it parses as PowerShell (tree-sitter-powershell: zero ERROR nodes) and that it is
byte for byte one of the crate's own scripts (src/providers/hyperv/scripts), reads the JSON
document on stdin, and acts as that script would against a fake Hyper-V described by
DIR/state.json: VMs whose disks are real VHDX files; an export "job" that runs outside this
process (its own session, like the Hyper-V service) and writes the files gradually; faults on
demand. Every call is recorded in DIR/calls.jsonl (decoded script, argv and environment as
/proc shows them, the input) so tests can check what reached PowerShell and how.
"""

import base64
import fcntl
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
SCRIPTS = os.path.join(HERE, "..", "..", "..", "src", "providers", "hyperv", "scripts")


def out(obj):
    sys.stdout.write(json.dumps(obj, separators=(",", ":")) + "\n")
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


def parse_errors(text):
    import tree_sitter
    import tree_sitter_powershell

    parser = tree_sitter.Parser(tree_sitter.Language(tree_sitter_powershell.language()))
    tree = parser.parse(text.encode("utf-8"))
    bad = []

    def walk(n):
        if n.type == "ERROR" or n.is_missing:
            bad.append(n.start_point)
        for c in n.children:
            walk(c)

    walk(tree.root_node)
    return bad


def which_script(text):
    for name in sorted(os.listdir(SCRIPTS)):
        if name.endswith(".ps1"):
            with open(os.path.join(SCRIPTS, name), encoding="utf-8") as f:
                if f.read() == text:
                    return name[:-4]
    return None


def checked_script(text):
    errs = parse_errors(text)
    if errs:
        sys.stderr.write(f"ParserError: the command does not parse as PowerShell at {errs[:3]}\n")
        sys.exit(1)
    name = which_script(text)
    if name is None:
        sys.stderr.write("stand-in: the command is not one of hypersdk's scripts\n")
        sys.exit(66)
    return name


def host_to_local(state, path):
    share = state.get("share")
    if share and path.startswith(share["host"]):
        rest = path[len(share["host"]):].replace("\\", "/").lstrip("/")
        return os.path.join(share["local"], rest)
    return path


def find_vm(state, inp):
    vms = state["vms"]
    if inp.get("id"):
        hits = [v for v in vms if v["id"] == inp["id"]]
    else:
        hits = [v for v in vms if v["name"].lower() == inp.get("vm", "").lower()]
    return hits


def hang_here(state_root):
    # A grandchild in our process group, as a real session would leave one.
    child = subprocess.Popen(["sleep", "600"])
    with open(os.path.join(state_root, "hang-grandchild.pid"), "w") as f:
        f.write(str(child.pid))
    time.sleep(600)


def inventory(root, inp):
    with State(root) as s:
        hits = find_vm(s, inp)
    if hits and hits[0].get("faults", {}).get("hang_inventory"):
        hang_here(root)
    if not hits:
        fail("ObjectNotFound", "VMNotFound", "no such virtual machine", 2)
    vm = hits[0]
    out({"event": "vm", "name": vm["name"], "id": vm["id"], "state": vm.get("state", "Running"), "generation": 2})
    for i, d in enumerate(vm["disks"]):
        out({
            "event": "disk", "path": d["path"], "file_size": os.path.getsize(d["local"]),
            "size": d.get("size", 0), "format": "VHDX", "parent": "",
            "controller_type": "SCSI", "controller_number": 0, "controller_location": i,
        })


def export(root, inp):
    with State(root) as s:
        hits = find_vm(s, {"id": inp["id"]})
        if not hits:
            fail("ObjectNotFound", "VMNotFound", "no such virtual machine", 2)
        vm = hits[0]
        faults = vm.get("faults", {})
        share = s.get("share")
        uses_checkpoint = not (inp["export_type"] == "full" and inp["include_snapshots"])
        if uses_checkpoint:
            s["checkpoints"].append({"vm": vm["id"], "name": inp["checkpoint_name"]})
    if uses_checkpoint:
        out({"event": "checkpoint", "name": inp["checkpoint_name"], "id": "c0ffee00-0000-0000-0000-000000000001"})
    if faults.get("hold_after_checkpoint"):
        # Hyper-V still preparing the export: the checkpoint exists, no job has started.
        time.sleep(600)
    if faults.get("echo_password"):
        # A remote session's error record quoting what the session was opened with, as a
        # misbehaving module or a verbose transport error can.
        fail("OpenError", "PSRemotingTransportException",
             f"Connecting to remote server failed: logon with password '{REMOTE_PASSWORD}' was "
             f"refused by {vm['name']}")
    if faults.get("export_error"):
        fail("PermissionDenied", "AccessDenied,Microsoft.HyperV.PowerShell.Commands.ExportVM", faults["export_error"])
    state = {"share": share}
    base = host_to_local(state, inp["path"])
    if not os.path.isdir(base):
        fail("ObjectNotFound", "PathNotFound", "the export path does not exist")
    copies = []
    if inp["export_type"] == "full":
        folder = os.path.join(base, vm["name"])
        for d in vm["disks"]:
            leaf = d["path"].replace("\\", "/").rsplit("/", 1)[-1]
            copies.append([d["local"], os.path.join(folder, "Virtual Hard Disks", leaf)])
        config = {"vmcx": os.path.join(folder, "Virtual Machines", vm["id"].upper() + ".vmcx"),
                  "vmgs": os.path.join(folder, "Virtual Machines", vm["id"].upper() + ".vmgs")}
    else:
        by_loc = {i: d for i, d in enumerate(vm["disks"])}
        for d in inp["disks"]:
            src = by_loc[d["controller_location"]]["local"]
            copies.append([src, host_to_local(state, d["dest"])])
        config = {}
    job = {"vm": vm["id"], "copies": copies, "config": config,
           "delay_ms": faults.get("write_delay_ms", 10), "chunk": faults.get("chunk", 262144),
           "fail_after": faults.get("fail_after_bytes"), "status": os.path.join(root, "job-" + inp["checkpoint_name"] + ".status")}
    jobfile = os.path.join(root, "job-" + inp["checkpoint_name"] + ".json")
    with open(jobfile, "w") as f:
        json.dump(job, f)
    # The Hyper-V service's job: its own session, so killing PowerShell does not stop it.
    writer = subprocess.Popen([sys.executable, os.path.abspath(__file__), "--writer", jobfile],
                              start_new_session=True, stdin=subprocess.DEVNULL,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    # Export-VM / Export-VMSnapshot jobs name their VM; Convert-VHD's storage jobs name none.
    instance_id = str(uuid.uuid4()).upper()
    with State(root) as s:
        s["jobs"].append({"instance_id": instance_id, "vm": vm["id"] if inp["export_type"] == "full" else None,
                          "kind": "Export" if inp["export_type"] == "full" else "Convert",
                          "pid": writer.pid, "source_vm": vm["id"]})
    out({"event": "job", "id": instance_id})
    if faults.get("hold_before_started"):
        # The script still waiting for its other jobs to appear: this one runs already.
        time.sleep(600)
    out({"event": "started", "jobs": 1, "job_ids": [instance_id]})
    poll = max(inp.get("poll_ms", 200), 50) / 1000.0
    while True:
        st = read_status(job["status"])
        if st.get("state") == "completed":
            break
        if st.get("state") == "failed":
            fail("NotSpecified", "ExportFailed,Microsoft.HyperV.PowerShell.Commands.ExportVM", st.get("error", "failed"))
        if writer.poll() is not None and read_status(job["status"]).get("state") not in ("completed", "failed"):
            fail("NotSpecified", "JobStopped", "the export job was stopped")
        total = st.get("total") or 1
        out({"event": "progress", "percent": int(100 * st.get("done", 0) / total)})
        time.sleep(poll)
    if uses_checkpoint:
        with State(root) as s:
            s["checkpoints"] = [c for c in s["checkpoints"] if c["name"] != inp["checkpoint_name"]]
        out({"event": "checkpoint-removed", "name": inp["checkpoint_name"]})
    out({"event": "done"})


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


def verify(root, inp):
    with State(root) as s:
        state = {"share": s.get("share")}
    for path in inp["paths"]:
        local = host_to_local(state, path)
        if not os.path.isfile(local):
            fail("ObjectNotFound", "PathNotFound,Microsoft.PowerShell.Commands.GetItemCommand", "cannot find path")
        with open(local, "rb") as f:
            ok = f.read(8) == b"vhdxfile"
        out({"event": "file", "path": path, "file_size": os.path.getsize(local), "ok": ok})


def job_running(j):
    if j.get("stopped"):
        return False
    pid = j.get("pid")
    # A job with no process here is another party's (a backup's), running until stopped.
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


def cleanup(root, inp):
    # The host holds every running job (CIM_ConcreteJob): this export's, another export's, a
    # backup's. The script's input decides which it stops: `job_ids` (the current cleanup.ps1:
    # exactly those InstanceIDs), or `stop_jobs` (the earlier one: every Export/Convert/Merge
    # job that names no VM or names this VM), so a test shows what each would do on a host.
    stopped = []
    removed = False
    with State(root) as s:
        for j in s["jobs"]:
            if not job_running(j):
                continue
            if "job_ids" in inp:
                mine = j.get("instance_id") in (inp["job_ids"] or [])
            else:
                mine = bool(inp.get("stop_jobs")) and (j.get("vm") is None or j.get("vm") == inp["id"])
            if mine:
                stop_job(s, j)
                stopped.append(j.get("instance_id"))
        name = inp.get("checkpoint_name")
        if name:
            before = len(s["checkpoints"])
            s["checkpoints"] = [c for c in s["checkpoints"] if c["name"] != name]
            removed = len(s["checkpoints"]) != before
    out({"event": "cleaned", "jobs_stopped": len(stopped), "stopped_job_ids": stopped,
         "jobs_not_stopped": [], "checkpoint_removed": removed})


def list_vms(root, inp):
    with State(root) as s:
        vms = list(s["vms"])
    for vm in vms:
        size = sum(os.path.getsize(d["local"]) for d in vm["disks"])
        out({"event": "vm", "name": vm["name"], "id": vm["id"], "state": vm.get("state", "Running"), "bytes": size})


# The password remote.ps1 was given (remote transports only), for the echo_password fault.
REMOTE_PASSWORD = None

ACTIONS = {"list": list_vms, "inventory": inventory, "export": export, "verify": verify, "cleanup": cleanup}


def record(root, script, text, stdin, inp):
    with open("/proc/self/cmdline", "rb") as f:
        argv = f.read().decode("utf-8", "replace")
    with open("/proc/self/environ", "rb") as f:
        environ = f.read().decode("utf-8", "replace")
    line = json.dumps({"script": script, "text": text, "argv": argv, "environ": environ,
                       "stdin": stdin, "input": inp, "pid": os.getpid(), "pgid": os.getpgid(0)})
    fd = os.open(os.path.join(root, "calls.jsonl"), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    os.write(fd, (line + "\n").encode())
    os.close(fd)


def main():
    argv = sys.argv[1:]
    if argv[:1] == ["--writer"]:
        writer_main(argv[1])
        return
    if len(argv) != 6 or argv[0] != "--state" or argv[2:5] != ["-NoProfile", "-NonInteractive", "-EncodedCommand"]:
        sys.stderr.write(f"stand-in: unexpected arguments {argv[2:]}\n")
        sys.exit(64)
    root = argv[1]
    text = base64.b64decode(argv[5]).decode("utf-16-le")
    script = checked_script(text)
    stdin = sys.stdin.read()
    inp = json.loads(stdin)
    record(root, script, text, stdin, inp)
    if script == "remote":
        with State(root) as s:
            remote = s.get("remote", {})
        inner_text = inp["script"]
        inner = checked_script(inner_text)
        if inner == "remote":
            sys.exit(66)
        if inp["transport"] != remote.get("transport") or inp["host"] != remote.get("host"):
            fail("OpenError", "PSRemotingTransportException", f"Connecting to remote server {inp['host']} failed")
        if inp.get("username") != remote.get("username") or inp.get("password") != remote.get("password"):
            fail("OpenError", "AccessDenied,PSSessionStateBroken", "Access is denied.")
        global REMOTE_PASSWORD
        REMOTE_PASSWORD = inp.get("password")
        script, inp = inner, json.loads(inp["input"])
    ACTIONS[script](root, inp)


if __name__ == "__main__":
    main()
