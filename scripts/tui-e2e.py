#!/usr/bin/env python3
"""`hypersdk tui` end to end, in a real terminal: tmux (new-session -d -x 120 -y 40, send-keys,
capture-pane) against local peers — the project's HTTP server and vcsim (tests/peers/vcsim), as the
demo starts them. Lists the vCenter's VMs and the profile's HTTP files, marks the two files,
exports them and sees both reach done, exports a VM whose NFC download is paced, cancels it
mid-way and sees its cleanup at the peer (the export lease aborted, GET /hs-stats), exports it
again and sends SIGTERM mid-way: the command undoes it (a second lease aborted) and exits 130.
SKIPPED (exit 0) when tmux is missing.

usage: scripts/tui-e2e.py [HYPERSDK_BINARY]     (scripts/test.sh runs it)
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TARGET = os.environ.get("CARGO_TARGET_DIR") or os.path.expanduser("~/.cache/hypersdk-target")
SESSION = f"hypersdk-tui-e2e-{os.getpid()}"
STARTED = []
# Generous: the machine may be loaded; every wait ends as soon as the screen shows its text.
WAIT = float(os.environ.get("HS_TUI_WAIT", "120"))


def fail(why, screen=None):
    if screen is not None:
        print("--- last screen ---\n" + screen + "\n---", file=sys.stderr)
    sys.exit(f"tui-e2e: {why}")


def tmux(*args, check=True):
    r = subprocess.run(["tmux", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if check and r.returncode != 0:
        fail(f"tmux {' '.join(args)}: {r.stderr.strip()}")
    return r.stdout


def screen():
    return tmux("capture-pane", "-p", "-t", SESSION, check=False)


def keys(*ks):
    for k in ks:
        tmux("send-keys", "-t", SESSION, k)
        time.sleep(0.15)


def wait_for(pred, what):
    """Until pred(screen) holds; the screen it held on."""
    deadline = time.time() + WAIT
    s = ""
    while time.time() < deadline:
        s = screen()
        if pred(s):
            return s
        if " refused " in s or "TUI-EXITED-" in s:
            fail(f"{what}: an export was refused or the command ended", s)
        time.sleep(0.3)
    fail(f"waited {WAIT:.0f} s for {what}", s)


def row(s, text):
    return next((l for l in s.splitlines() if text in l), "")


def rows(s, text):
    return [l for l in s.splitlines() if text in l]


def start(cmd):
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                         start_new_session=True)
    STARTED.append(p)
    line = p.stdout.readline()
    if not line:
        fail(f"{cmd[0]} did not start")
    return line.strip()


def stop_all():
    tmux("kill-session", "-t", SESSION, check=False)
    for p in STARTED:
        try:
            os.killpg(p.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        p.wait()


def main():
    if shutil.which("tmux") is None:
        print("SKIPPED: the tui end-to-end test (no tmux; apt tmux)")
        return
    hypersdk = sys.argv[1] if len(sys.argv) > 1 else os.path.join(TARGET, "debug", "hypersdk")
    serve = os.path.join(TARGET, "debug", "examples", "serve")
    vcsim = os.path.join(TARGET, "debug", "peers", "vcsim-peer")
    if not os.path.exists(vcsim):
        os.makedirs(os.path.dirname(vcsim), exist_ok=True)
        subprocess.run(["go", "build", "-o", vcsim, "."], cwd=os.path.join(ROOT, "tests/peers/vcsim"), check=True)
    work = tempfile.mkdtemp(prefix="hypersdk-tui-e2e-")
    try:
        run(work, hypersdk, serve, vcsim)
    finally:
        stop_all()
        shutil.rmtree(work, ignore_errors=True)


def run(work, hypersdk, serve, vcsim):
    # A 4 MiB VMDK of incompressible bytes, its NFC download paced to 64 KiB/s: a minute,
    # time enough to cancel it mid-way.
    raw = os.path.join(work, "d0.raw")
    with open(raw, "wb") as f:
        f.write(os.urandom(4 << 20))
    disk = os.path.join(work, "d0.vmdk")
    subprocess.run(["qemu-img", "convert", "-f", "raw", "-O", "vmdk", raw, disk], check=True)
    vdir = os.path.join(work, "vcsim")
    os.makedirs(vdir)
    vc = json.loads(start([vcsim, "-dir", vdir, "-disk", disk, "-nfc-rate", str(64 << 10)]))
    http_url = start([serve, "2", str(8 << 20), str(32 << 20)]).split()[-1]
    out = os.path.join(work, "out")
    profile = os.path.join(work, "tui.toml")
    q = json.dumps
    with open(profile, "w") as f:
        f.write(f"""[providers.vc]
provider = "vsphere"
config = {{ url = {q(vc['url'])}, username = "admin", ca_bundle_path = {q(vc['ca_file'])} }}
secrets = {{ password = "env:TUI_VC_PASSWORD" }}

[providers.files]
provider = "http"
config = {{}}

[[export]]
provider = "files"
sources = [{q(http_url + '/file0.bin')}, {q(http_url + '/file1.bin')}]
output = {q(os.path.join(out, 'http'))}

[[export]]
provider = "vc"
sources = []
output = {q(os.path.join(out, 'vc'))}
""")
    state = os.path.join(work, "state")
    env = {"TUI_VC_PASSWORD": "s3cret-pass", "HYPERSDK_STATE_DIR": state,
           "HYPERSDK_CONFIG": os.path.join(work, "no-accounts.toml"), "NO_COLOR": "1", "TERM": "xterm-256color"}
    cmd = " ".join(["env", *[f"{k}={v}" for k, v in env.items()], hypersdk, "tui", "--profile", profile,
                    ";", "echo", "TUI-EXITED-$?", ";", "sleep", "600"])
    tmux("new-session", "-d", "-s", SESSION, "-x", "120", "-y", "40", cmd)

    # 1. Both accounts listed: the vCenter's VMs, the profile's files (http has no listing).
    s = wait_for(lambda s: " files 2 " in s and " vc " in s and "listing…" not in s, "both listings")
    if "file0.bin" not in s or "from the profile" not in s:
        fail("the files tab does not show the profile's sources", s)
    keys("Tab")
    s = wait_for(lambda s: "DC0_H0_VM0" in s, "the vCenter's VMs")
    print("listed:", row(s, " vc "))

    # 2. Mark both files, export them, see both done.
    keys("BTab", "Space", "Space", "e")
    s = wait_for(lambda s: "export 2 source(s)" in s, "the form")
    keys("Enter")
    wait_for(lambda s: "dry run" in s and os.path.join(out, "http") in s, "the dry run")
    keys("Enter")
    s = wait_for(lambda s: " done " in row(s, "files:file0.bin") and " done " in row(s, "files:file1.bin"),
                 "both files done")
    for i in range(2):
        p = os.path.join(out, "http", f"file{i}.bin")
        if not os.path.exists(p) or os.path.getsize(p) != 8 << 20:
            fail(f"{p} is not the 8 MiB file", s)
    print("done:", row(s, "files:file0.bin").strip(), "|", row(s, "files:file1.bin").strip())

    # 3. Export DC0_H0_VM0 (its download paced), cancel it mid-way, see its lease aborted.
    keys(":", "s", "Enter", "Tab", "/")
    for c in "DC0_H0_VM0":
        keys(c)
    keys("Enter", "Space", "e")
    wait_for(lambda s: "export 1 source(s)" in s, "the form for the VM")
    keys("Enter", "Enter")
    s = wait_for(lambda s: "downloading" in row(s, "vc:DC0_H0_VM0") and " 0% " not in row(s, "vc:DC0_H0_VM0"),
                 "the VM downloading")
    print("mid-way:", row(s, "vc:DC0_H0_VM0").strip())
    keys("j", "j", "c")
    wait_for(lambda s: "Cancel vc:" in s, "the cancel confirmation")
    keys("y")
    s = wait_for(lambda s: "cancelled" in row(s, "vc:DC0_H0_VM0"), "the VM cancelled")
    print("cancelled:", row(s, "vc:DC0_H0_VM0").strip())
    stats = json.loads(subprocess.run(
        ["curl", "-sf", "--cacert", vc["ca_file"], vc["url"].replace("/sdk", "/hs-stats")],
        stdout=subprocess.PIPE, check=True).stdout)
    if stats.get("aborted") != 1 or stats.get("open_leases") != 0:
        fail(f"the peer did not see the lease aborted: {stats}", s)
    leftovers = [f for _, _, fs in os.walk(os.path.join(out, "vc")) for f in fs if ".hspart" not in f]
    if leftovers:
        fail(f"a cancelled export left files: {leftovers}", s)

    # 4. The same VM again; SIGTERM (as systemd or `timeout` sends) mid-way: the command cancels
    #    it, waits for its cleanup (the second lease aborted at the peer) and exits 130.
    keys(":", "s", "Enter", "Space", "e")
    wait_for(lambda s: "export 1 source(s)" in s, "the form for the VM again")
    keys("Enter", "Enter")
    second = lambda s: (rows(s, "vc:DC0_H0_VM0") + ["", ""])[1]
    s = wait_for(lambda s: "downloading" in second(s) and " 0% " not in second(s), "the VM downloading again")
    shell = tmux("display", "-p", "-t", SESSION, "#{pane_pid}").strip()
    pid = subprocess.run(["pgrep", "-P", shell], stdout=subprocess.PIPE, text=True).stdout.split()
    if len(pid) != 1:
        fail(f"the command's pid under the pane's shell {shell}: {pid}", s)
    os.kill(int(pid[0]), signal.SIGTERM)
    s = wait_for(lambda s: "TUI-EXITED-" in s, "the command to exit after SIGTERM")
    code = s.split("TUI-EXITED-")[1].split()[0]
    if code != "130":
        fail(f"exit code {code} after SIGTERM, not 130", s)
    stats = json.loads(subprocess.run(
        ["curl", "-sf", "--cacert", vc["ca_file"], vc["url"].replace("/sdk", "/hs-stats")],
        stdout=subprocess.PIPE, check=True).stdout)
    if stats.get("aborted") != 2 or stats.get("open_leases") != 0:
        fail(f"after SIGTERM the peer did not see the second lease aborted: {stats}", s)
    hist = subprocess.run([hypersdk, "history", "--json"], env=dict(os.environ, **env),
                          stdout=subprocess.PIPE, text=True, check=True).stdout
    statuses = sorted(json.loads(l)["status"] for l in hist.splitlines())
    if statuses != ["cancelled", "cancelled", "done", "done"]:
        fail(f"history has {statuses}", s)
    print("tui end-to-end: listed, two exported, one cancelled (c) and one at SIGTERM, both leases aborted at the peer")


if __name__ == "__main__":
    main()
