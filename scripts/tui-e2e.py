#!/usr/bin/env python3
"""`hypersdk tui` end to end, in a real terminal: tmux (new-session -d -x 120 -y 40, send-keys,
capture-pane) against the demo's peers, started by scripts/demo.py's own code (start_peers: moto,
vcsim, Azurite + the ARM stand-in, fake-gcs-server + the GCP stand-in, the Hyper-V stand-in, the
HTTP server) with the demo's profile. Sees every account list its sources (the names the peers
hold), marks the two HTTP files, exports them and sees both reach done, exports the Azure disk
and checks its bytes, exports a VM whose NFC download is paced, cancels it mid-way and sees its
cleanup at the peer (the export lease aborted, GET /hs-stats), exports it again and sends SIGTERM
mid-way: the command undoes it (a second lease aborted) and exits 130.
SKIPPED (exit 0) when tmux is missing.

usage: scripts/tui-e2e.py [HYPERSDK_BINARY]     (scripts/test.sh runs it)
"""

import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import demo  # noqa: E402  the demo's peers and profile, not a copy of them

TARGET = os.environ.get("CARGO_TARGET_DIR") or os.path.expanduser("~/.cache/hypersdk-target")
SESSION = f"hypersdk-tui-e2e-{os.getpid()}"
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


def stop_all():
    tmux("kill-session", "-t", SESSION, check=False)
    demo.stop_all()


def main():
    if shutil.which("tmux") is None:
        print("SKIPPED: the tui end-to-end test (no tmux; apt tmux)")
        return
    hypersdk = sys.argv[1] if len(sys.argv) > 1 else os.path.join(TARGET, "debug", "hypersdk")
    tools = demo.install_tools()
    work = tempfile.mkdtemp(prefix="hypersdk-tui-e2e-")
    # Stopped from outside (a CI timeout's SIGTERM, a closed terminal): still clean up — the
    # tmux session, the peers, and the work folder whose launcher holds the demo's keys.
    def stopped(signum, _frame):
        raise SystemExit(128 + signum)
    for s in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(s, stopped)
    try:
        run(work, hypersdk, tools)
    finally:
        stop_all()
        shutil.rmtree(work, ignore_errors=True)


def tab(name, provider):
    """Tab until the table is account `name`'s; its screen once listed."""
    for _ in range(8):
        s = screen()
        if f" {name} ({provider}) · " in s:
            return wait_for(lambda s: "listing…" not in s, f"the {name} listing")
        keys("Tab")
    fail(f"no tab for account {name}", s)


def hs_stats(vc):
    return json.loads(subprocess.run(
        ["curl", "-sf", "--cacert", vc["ca_file"], vc["url"].replace("/sdk", "/hs-stats")],
        stdout=subprocess.PIPE, check=True).stdout)


def run(work, hypersdk, tools):
    # The demo's peers and profile, with 4 MiB disks and 8 MiB files; vcsim's NFC download paced
    # to 64 KiB/s: a minute for its disk, time enough to cancel it mid-way.
    out = os.path.join(work, "out")
    peers = demo.start_peers(work, out, tools, size=4 << 20, http_size=8 << 20, nfc_rate=64 << 10)
    vc, profile = peers["vc"], peers["profile"]
    state = os.path.join(work, "state")
    env = dict(peers["env"], HYPERSDK_STATE_DIR=state, HYPERSDK_CONFIG=os.path.join(work, "no-accounts.toml"),
               NO_COLOR="1", TERM="xterm-256color")
    # The secrets reach the command through a script only this user reads, not tmux's command line.
    launcher = os.path.join(work, "tui.sh")
    with open(os.open(launcher, os.O_WRONLY | os.O_CREAT, 0o700), "w") as f:
        f.write("".join(f"export {k}={shlex.quote(v)}\n" for k, v in env.items()))
        f.write(f"{shlex.quote(hypersdk)} tui --profile {shlex.quote(profile)}\necho TUI-EXITED-$?\nsleep 600\n")
    tmux("new-session", "-d", "-s", SESSION, "-x", "120", "-y", "40", "sh " + shlex.quote(launcher))

    # 1. Every account listed (a count beside each tab, none failed), each with what its peer
    #    holds: the EC2 instance, the Azure disk, the GCP disk, the profile's HTTP files (http
    #    has no listing), the Hyper-V VM, the vCenter's VMs.
    accounts = [("aws", "aws", peers["aws"]["instance_id"]), ("azure", "azure", "web-os"),
                ("gcp", "gcp", "app-data"), ("http", "http", "file0.bin"), ("hyperv", "hyperv", "sql-01"),
                ("vsphere", "vsphere", "DC0_H0_VM0")]
    listed = lambda s: all(re.search(rf" {n} \d+ │", s) for n, _, _ in accounts)
    s = wait_for(listed, "every account's listing")
    print("tabs:", row(s, " vsphere ").strip())
    for name, provider, source in accounts:
        s = tab(name, provider)
        if source not in s:
            fail(f"the {name} tab does not list {source}", s)
        print(f"listed {name}:", row(s, source).strip()[:100])

    # 2. Mark both files, export them, see both done.
    s = tab("http", "http")
    if "from the profile" not in s:
        fail("the http tab does not say its sources come from the profile", s)
    keys("Space", "Space", "e")
    s = wait_for(lambda s: "export 2 source(s)" in s, "the form")
    keys("Enter")
    wait_for(lambda s: "dry run" in s and os.path.join(out, "http") in s, "the dry run")
    keys("Enter")
    s = wait_for(lambda s: " done " in row(s, "http:file0.bin") and " done " in row(s, "http:file1.bin"),
                 "both files done")
    for i in range(2):
        p = os.path.join(out, "http", f"file{i}.bin")
        if not os.path.exists(p) or os.path.getsize(p) != 8 << 20:
            fail(f"{p} is not the 8 MiB file", s)
    print("done:", row(s, "http:file0.bin").strip(), "|", row(s, "http:file1.bin").strip())

    # 3. A second cloud: the Azure disk, its bytes checked against the disk the peer holds.
    keys(":", "s", "Enter")
    tab("azure", "azure")
    keys("Space", "e")
    wait_for(lambda s: "export 1 source(s)" in s, "the form for the Azure disk")
    # The library's dry run: what the export makes in the cloud, when it is undone, the file.
    keys("Enter")
    s = wait_for(lambda s: "a read SAS" in s and "deleted on every outcome" in s and "web-os.vhd" in s, "the Azure dry run")
    print("dry run:", row(s, "read SAS").strip(" │"))
    keys("Enter")
    s = wait_for(lambda s: " done " in row(s, "azure:web-os"), "the Azure disk done")
    got = [os.path.join(r, f) for r, _, fs in os.walk(os.path.join(out, "azure")) for f in fs if f.endswith(".vhd")]
    if len(got) != 1 or demo.sha256(got[0]) != demo.sha256(peers["disks"]["azure"]):
        fail(f"the Azure export {got} is not the disk the peer holds", s)
    print("done:", row(s, "azure:web-os").strip())

    # 4. Export DC0_H0_VM0 (its download paced), cancel it mid-way, see its lease aborted.
    keys(":", "s", "Enter")
    tab("vsphere", "vsphere")
    keys("/")
    for c in "DC0_H0_VM0":
        keys(c)
    keys("Enter", "Space", "e")
    wait_for(lambda s: "export 1 source(s)" in s, "the form for the VM")
    keys("Enter", "Enter")
    s = wait_for(lambda s: "downloading" in row(s, "vsphere:DC0_H0_VM0")
                 and " 0% " not in row(s, "vsphere:DC0_H0_VM0"), "the VM downloading")
    print("mid-way:", row(s, "vsphere:DC0_H0_VM0").strip())
    keys("j", "j", "j", "c")
    wait_for(lambda s: "Cancel vsphere:" in s, "the cancel confirmation")
    keys("y")
    s = wait_for(lambda s: "cancelled" in row(s, "vsphere:DC0_H0_VM0"), "the VM cancelled")
    print("cancelled:", row(s, "vsphere:DC0_H0_VM0").strip())
    stats = hs_stats(vc)
    if stats.get("aborted") != 1 or stats.get("open_leases") != 0:
        fail(f"the peer did not see the lease aborted: {stats}", s)
    leftovers = [f for _, _, fs in os.walk(os.path.join(out, "vsphere")) for f in fs if ".hspart" not in f]
    if leftovers:
        fail(f"a cancelled export left files: {leftovers}", s)

    # 5. The same VM again; SIGTERM (as systemd or `timeout` sends) mid-way: the command cancels
    #    it, waits for its cleanup (the second lease aborted at the peer) and exits 130.
    keys(":", "s", "Enter", "Space", "e")
    wait_for(lambda s: "export 1 source(s)" in s, "the form for the VM again")
    keys("Enter", "Enter")
    second = lambda s: (rows(s, "vsphere:DC0_H0_VM0") + ["", ""])[1]
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
    stats = hs_stats(vc)
    if stats.get("aborted") != 2 or stats.get("open_leases") != 0:
        fail(f"after SIGTERM the peer did not see the second lease aborted: {stats}", s)
    hist = subprocess.run([hypersdk, "history", "--json"], env=dict(os.environ, **env),
                          stdout=subprocess.PIPE, text=True, check=True).stdout
    statuses = sorted(json.loads(l)["status"] for l in hist.splitlines())
    if statuses != ["cancelled", "cancelled", "done", "done", "done"]:
        fail(f"history has {statuses}", s)
    print("tui end-to-end: six providers listed; two files and an Azure disk exported; one VM cancelled (c) "
          "and one at SIGTERM, both leases aborted at the peer")


if __name__ == "__main__":
    main()
