#!/usr/bin/env python3
"""The multi-cloud demo: starts the local peers the tests use — moto (AWS), vcsim (vSphere),
Azurite + the ARM stand-in (Azure), fake-gcs-server + the Compute/Cloud Build stand-in (GCP), the
PowerShell + Hyper-V stand-in, and the project's HTTP server — puts a real disk image on each,
runs `hypersdk batch` exporting all of them at once with live bars, then checks every output
against the disk it came from. Every peer it started is stopped on exit, Ctrl+C included.

usage: scripts/demo.py [OUTPUT_DIR]       (make demo)
"""

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
import ssl

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TARGET = os.environ.get("CARGO_TARGET_DIR") or os.path.expanduser("~/.cache/hypersdk-target")
TOOLS = os.environ.get("HS_TOOLS_DIR") or os.path.expanduser("~/.cache/hypersdk-tools")
STARTED = []
STEPS = 7


def step(n, what, estimate=""):
    print(f"\n[{n}/{STEPS}] {what}" + (f"  ({estimate})" if estimate else ""), flush=True)


def run(cmd, **kw):
    r = subprocess.run(cmd, **kw)
    if r.returncode != 0:
        sys.exit(f"demo: {' '.join(map(str, cmd))} failed ({r.returncode})")
    return r


def out_of(cmd):
    return run(cmd, stdout=subprocess.PIPE, text=True).stdout.strip()


def start(cmd, stdin_pipe=True):
    """Starts a peer and returns (process, its first stdout line)."""
    p = subprocess.Popen(cmd, stdin=subprocess.PIPE if stdin_pipe else subprocess.DEVNULL,
                         stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                         start_new_session=True)
    STARTED.append(p)
    line = p.stdout.readline()
    if not line:
        sys.exit(f"demo: {cmd[0]} did not start")
    return p, line.strip()


def stop_all(*_):
    # Closing stdin lets a peer stop what it started itself (the ARM stand-in stops Azurite);
    # then the whole process group goes.
    for p in STARTED:
        try:
            if p.stdin:
                p.stdin.close()
        except OSError:
            pass
    deadline = time.time() + 10
    for p in STARTED:
        if p.stdin is not None:
            try:
                p.wait(timeout=max(0.1, deadline - time.time()))
            except subprocess.TimeoutExpired:
                pass
        try:
            os.killpg(p.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
    STARTED.clear()


def pattern(n, seed):
    """Known, incompressible bytes (seeded, so a run is repeatable)."""
    out = bytearray()
    block = hashlib.sha256(f"hypersdk-demo-{seed}".encode()).digest()
    while len(out) < n:
        block = hashlib.sha256(block).digest()
        out += block * 32
    return bytes(out[:n])


def disk(work, name, size, seed, fmt=None, opts=None):
    raw = os.path.join(work, f"{name}.raw")
    with open(raw, "wb") as f:
        f.write(pattern(size, seed))
    if fmt is None:
        return raw
    path = os.path.join(work, f"{name}.{ 'vhd' if fmt == 'vpc' else fmt}")
    cmd = ["qemu-img", "convert", "-f", "raw", "-O", fmt]
    if opts:
        cmd += ["-o", opts]
    run(cmd + [raw, path])
    return path


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for b in iter(lambda: f.read(1 << 20), b""):
            h.update(b)
    return h.hexdigest()


def raw_sha256(path):
    """sha256 of an image's raw contents (qemu-img convert -O raw)."""
    with tempfile.TemporaryDirectory() as d:
        raw = os.path.join(d, "x.raw")
        run(["qemu-img", "convert", "-O", "raw", path, raw])
        return sha256(raw)


def post(url, body, ca=None):
    ctx = ssl.create_default_context(cafile=ca) if ca else None
    req = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST")
    with urllib.request.urlopen(req, context=ctx, timeout=60) as r:
        return json.loads(r.read() or b"{}")


def toml_str(s):
    return json.dumps(str(s))


def main():
    out = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "build", "demo-out"))
    signal.signal(signal.SIGINT, lambda *_: (stop_all(), sys.exit(130)))
    signal.signal(signal.SIGTERM, lambda *_: (stop_all(), sys.exit(143)))
    t0 = time.time()
    env = dict(os.environ, CARGO_TARGET_DIR=TARGET)

    step(1, "building the hypersdk command and the HTTP peer", "first time ~8 min on 2 cores, then seconds")
    run(["cargo", "build", "-q", "-p", "hypersdk-cli", "-p", "hypersdk", "--bin", "hypersdk", "--example", "serve"], cwd=ROOT, env=env)
    hypersdk = os.path.join(TARGET, "debug", "hypersdk")

    step(2, "installing the peers' tools under ~/.cache/hypersdk-tools", "first time ~4 min, then seconds")
    moto_py = os.path.join(TOOLS, "moto-venv", "bin", "python")
    if subprocess.run([moto_py, "-c", "import moto, boto3"], stderr=subprocess.DEVNULL).returncode != 0:
        run([sys.executable, "-m", "venv", os.path.join(TOOLS, "moto-venv")])
        run([os.path.join(TOOLS, "moto-venv", "bin", "pip"), "install", "-q", "-r",
             os.path.join(ROOT, "tests/peers/moto/requirements.txt")])
    run([os.path.join(ROOT, "tests/peers/azure/install.sh")])
    fake_gcs = out_of([os.path.join(ROOT, "tests/peers/gcp/install.sh")])
    ps_py = out_of([os.path.join(ROOT, "tests/peers/hyperv/install.sh")])
    vcsim = os.path.join(TARGET, "debug", "peers", "vcsim-peer")
    if not os.path.exists(vcsim):
        os.makedirs(os.path.dirname(vcsim), exist_ok=True)
        run(["go", "build", "-o", vcsim, "."], cwd=os.path.join(ROOT, "tests/peers/vcsim"))

    work = tempfile.mkdtemp(prefix="hypersdk-demo-")
    try:
        step(3, "making disk images with known bytes (qemu-img)")
        fx = {
            "aws": disk(work, "aws-disk", 24 << 20, 1, "vmdk"),
            "vsphere": disk(work, "vsphere-disk", 24 << 20, 2, "vmdk"),
            "azure": disk(work, "azure-disk", 24 << 20, 3, "vpc", "subformat=fixed"),
            "gcp": disk(work, "gcp-disk", 24 << 20, 4),
            "hyperv": disk(work, "hyperv-disk", 24 << 20, 5, "vhdx"),
        }

        step(4, "starting the peers: moto, vcsim, Azurite + ARM stand-in, fake-gcs-server + GCP stand-in, Hyper-V stand-in, HTTP")
        _, line = start([moto_py, os.path.join(ROOT, "tests/peers/moto/moto_peer.py"), "--fixture", fx["aws"],
                         "--exit-on-stdin-eof"])
        aws = json.loads(line)
        vdir = os.path.join(work, "vcsim")
        os.makedirs(vdir)
        _, line = start([vcsim, "-dir", vdir, "-disk", fx["vsphere"]], stdin_pipe=False)
        vc = json.loads(line)
        cert, key = os.path.join(work, "cert.pem"), os.path.join(work, "key.pem")
        run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", cert, "-days", "2",
             "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
             "-addext", "basicConstraints=critical,CA:FALSE"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        adir = os.path.join(work, "azurite")
        os.makedirs(adir)
        _, line = start([os.path.join(TOOLS, "azure-venv", "bin", "python"), os.path.join(ROOT, "tests/peers/azure/arm_standin.py"),
                         "--azurite", os.path.join(TOOLS, "azurite", "node_modules", ".bin", "azurite-blob"),
                         "--cert", cert, "--key", key, "--workdir", adir, "--exit-on-stdin-eof"])
        az = json.loads(line)
        post(f"{az['arm']}/_admin/disks", {"kind": "disks", "name": "web-os", "rg": "rg1", "path": fx["azure"],
                                           "state": "Unattached", "md5": None}, ca=cert)
        gdir = os.path.join(work, "gcp")
        os.makedirs(gdir)
        _, line = start([sys.executable, os.path.join(ROOT, "tests/peers/gcp/gcp_standin.py"), "--fake-gcs", fake_gcs,
                         "--workdir", gdir, "--exit-on-stdin-eof"])
        gcp = json.loads(line)
        gurl = f"http://127.0.0.1:{gcp['port']}"
        post(f"{gurl}/_admin/client", {"refresh_token": "demo-rt", "client_secret": "demo-cs"})
        post(f"{gurl}/_admin/bucket", {"name": "demo-exports"})
        post(f"{gurl}/_admin/disk", {"project": "demo-project", "zone": "europe-west1-b", "name": "app-data",
                                     "raw": fx["gcp"], "users": ["instances/app-1"]})
        hdir = os.path.join(work, "hyperv")
        os.makedirs(hdir)
        with open(os.path.join(hdir, "state.json"), "w") as f:
            json.dump({"vms": [{"name": "sql-01", "id": "0d9e8f7a-1b2c-4d3e-8f4a-5b6c7d8e9f01", "state": "Running",
                                "faults": {"write_delay_ms": 20},
                                "disks": [{"path": "C:\\Hyper-V\\sql-01\\sql-01.vhdx", "local": fx["hyperv"]}]}]}, f)
        pwsh = os.path.join(hdir, "pwsh")
        with open(pwsh, "w") as f:
            f.write(f"#!/bin/sh\nexec '{ps_py}' '{ROOT}/tests/peers/hyperv/pwsh_standin.py' --state '{hdir}' \"$@\"\n")
        os.chmod(pwsh, 0o755)
        _, line = start([os.path.join(TARGET, "debug", "examples", "serve"), "2", str(48 << 20), str(16 << 20)],
                        stdin_pipe=False)
        http_url = line.split()[-1]

        step(5, "writing the batch profile (secrets come from the environment, never the profile)")
        for d in ("aws", "vsphere", "azure", "gcp", "hyperv", "http"):
            path = os.path.join(out, d)
            shutil.rmtree(path, ignore_errors=True)
            os.makedirs(path)
        gcreds = json.dumps({"type": "authorized_user", "client_id": "demo", "client_secret": "demo-cs",
                             "refresh_token": "demo-rt", "token_uri": f"{gurl}/token"})
        env.update({"DEMO_AWS_KEY": aws["access_key_id"], "DEMO_AWS_SECRET": aws["secret_access_key"],
                    "DEMO_VC_PASSWORD": "s3cret-pass", "DEMO_AZ_SECRET": az["client_secret"], "DEMO_GCP_CREDS": gcreds})
        profile = os.path.join(work, "demo.toml")
        with open(profile, "w") as f:
            f.write(f"""max_concurrent = 8

[providers.aws]
config = {{ region = "us-east-1", endpoint_url = {toml_str(aws['endpoint'])} }}
secrets = {{ access_key_id = "env:DEMO_AWS_KEY", secret_access_key = "env:DEMO_AWS_SECRET" }}

[providers.vsphere]
config = {{ url = {toml_str(vc['url'])}, username = "admin", ca_bundle_path = {toml_str(vc['ca_file'])} }}
secrets = {{ password = "env:DEMO_VC_PASSWORD" }}

[providers.azure]
config = {{ subscription_id = {toml_str(az['subscription'])}, resource_group = "rg1", tenant_id = {toml_str(az['tenant'])}, client_id = {toml_str(az['client_id'])}, arm_endpoint = {toml_str(az['arm'])}, authority_host = {toml_str(az['arm'])}, ca_bundle_path = {toml_str(cert)} }}
secrets = {{ client_secret = "env:DEMO_AZ_SECRET" }}

[providers.gcp]
config = {{ project = "demo-project", zone = "europe-west1-b", bucket = "demo-exports", storage_endpoint = {toml_str(gurl)}, compute_endpoint = {toml_str(gurl)}, cloudbuild_endpoint = {toml_str(gurl)}, resourcemanager_endpoint = {toml_str(gurl)}, serviceusage_endpoint = {toml_str(gurl)}, artifactregistry_endpoint = {toml_str(gurl)}, gcr_endpoint = {toml_str(gurl)}, iam_endpoint = {toml_str(gurl)} }}
secrets = {{ credentials_json = "env:DEMO_GCP_CREDS" }}

[providers.hyperv]
config = {{ powershell_path = {toml_str(pwsh)} }}

[providers.http]
config = {{}}

[[export]]
provider = "aws"
sources = [{toml_str(aws['instance_id'])}]
output = {toml_str(os.path.join(out, 'aws'))}
options = {{ s3_bucket = "exports", poll_interval_ms = 200 }}

[[export]]
provider = "vsphere"
sources = ["/DC0/vm/DC0_H0_VM0"]
output = {toml_str(os.path.join(out, 'vsphere'))}

[[export]]
provider = "azure"
sources = ["web-os"]
output = {toml_str(os.path.join(out, 'azure'))}
options = {{ poll_interval_ms = 200 }}

[[export]]
provider = "gcp"
sources = ["app-data"]
output = {toml_str(os.path.join(out, 'gcp'))}
options = {{ poll_interval_ms = 200, delete_object_after_download = true }}

[[export]]
provider = "hyperv"
sources = ["sql-01"]
output = {toml_str(os.path.join(out, 'hyperv'))}
options = {{ export_type = "vhd-only", poll_file_interval_ms = 100 }}

[[export]]
provider = "http"
sources = [{toml_str(http_url + '/file0.bin')}, {toml_str(http_url + '/file1.bin')}]
output = {toml_str(os.path.join(out, 'http'))}
priority = -1
""")

        step(6, "hypersdk batch: every export at once")
        state = os.path.join(work, "state")
        env["HYPERSDK_STATE_DIR"] = state
        code = subprocess.run([hypersdk, "batch", profile], env=env).returncode
        if code != 0:
            sys.exit(f"demo: hypersdk batch exited {code}")

        step(7, "checking every output against the disk it came from")
        checks = [
            ("aws", lambda: find(out, "aws", ".vmdk"), sha256(fx["aws"]), sha256),
            ("vsphere", lambda: find(out, "vsphere", ".vmdk"), sha256(fx["vsphere"]), sha256),
            ("azure", lambda: find(out, "azure", ".vhd"), sha256(fx["azure"]), sha256),
            ("gcp", lambda: find(out, "gcp", ".vmdk"), sha256(fx["gcp"]), raw_sha256),
            ("hyperv", lambda: find(out, "hyperv", ".vhdx"), sha256(fx["hyperv"]), sha256),
        ]
        bad = 0
        for name, path, want, how in checks:
            p = path()
            got = how(p) if p else None
            ok = got == want
            bad += not ok
            print(f"  {'ok ' if ok else 'BAD'} {name:<8} {p or '(no file)'}")
        for i in range(2):
            p = os.path.join(out, "http", f"file{i}.bin")
            ok = os.path.getsize(p) == 48 << 20
            bad += not ok
            print(f"  {'ok ' if ok else 'BAD'} http     {p}")
        if bad:
            sys.exit(f"demo: {bad} output(s) differ from their source")
        print(f"\nevery output matches its source; {time.time() - t0:.0f} s in all. Files under {out}")
    finally:
        stop_all()
        shutil.rmtree(work, ignore_errors=True)


def find(out, sub, ext):
    d = os.path.join(out, sub)
    for root, _, files in os.walk(d):
        for f in sorted(files):
            if f.endswith(ext):
                return os.path.join(root, f)
    return None


if __name__ == "__main__":
    main()
