"""export.ps1 against the fake Hyper-V host (hyperv_host.py), for tests only: a checkpoint,
then the steps the script runs (Export-VM / Export-VMSnapshot; for vhd-only, Convert-VHD of
each exported disk), each step's jobs reported as the script reports them: every job that
appeared on the host while it started its cmdlets, with its class, JobType and the VMs it
affects — other parties' jobs that start in that moment included (fault `bystanders`).
"""

import os
import time

from hyperv_host import (CONVERSION, COMPACTION, MERGING, State, check_share_write, chain_of, fail, fake_avhdx,
                         find_vm, host_to_local, job_line, leaf, new_job, out, passthrough,
                         remove_checkpoint, start_writer, wait_jobs)
import hyperv_host

ATTACHED_STATES = ("Running", "Paused", "Saved")


def run_export(ctx, inp):
    root, model = ctx["root"], ctx["model"]
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
             f"Connecting to remote server failed: logon with password '{hyperv_host.REMOTE_PASSWORD}' "
             f"was refused by {vm['name']}")
    if faults.get("export_error"):
        fail("PermissionDenied", "AccessDenied,Microsoft.HyperV.PowerShell.Commands.ExportVM", faults["export_error"])
    base = host_to_local(share, inp["path"])
    if not os.path.isdir(base):
        fail("ObjectNotFound", "PathNotFound", "the export path does not exist")
    check_share_write(share, ctx, inp["path"])
    full = inp["export_type"] == "full"
    steps = 1 if full else 2
    disks = [d for d in vm["disks"] if not passthrough(d)]
    by_loc = {i: d for i, d in enumerate(vm["disks"])}

    # Step 1: Export-VM / Export-VMSnapshot: every file of each disk's chain, by its own name.
    folder = os.path.join(base if full else os.path.join(base, inp["snapshot_folder"]), vm["name"])
    copies = []
    for d in disks:
        for host_path, local in reversed(chain_of(root, d)):
            copies.append([local, os.path.join(folder, "Virtual Hard Disks", leaf(host_path))])
    extra = faults.get("extra_file")
    if extra and full:
        # A file Hyper-V writes that the library did not predict (another name, a late disk).
        src = fake_avhdx(root, "extra-" + extra["name"])
        if extra.get("corrupt"):
            src = os.path.join(root, "corrupt-" + extra["name"])
            with open(src, "wb") as f:
                f.write(b"not a virtual disk" * 1000)
        copies.append([src, os.path.join(folder, "Virtual Hard Disks", extra["name"])])
    config = {"vmcx": os.path.join(folder, "Virtual Machines", vm["id"].upper() + ".vmcx"),
              "vmgs": os.path.join(folder, "Virtual Machines", vm["id"].upper() + ".vmgs")}
    proc, status = start_writer(root, vm, faults, copies, config, inp["checkpoint_name"] + "-export")
    with State(root) as s:
        seen = [new_job(s, "Msvm_ConcreteJob", 0, [vm["id"].upper()], pid=proc.pid, source_vm=vm["id"], step="export")]
        if faults.get("bystanders"):
            # Started by others in the same moment: a backup application's compaction of a
            # disk of no VM, and a merge of this VM's own older checkpoint.
            seen.append(new_job(s, "Msvm_StorageJob", COMPACTION, [], owner="CORP\\backup"))
            seen.append(new_job(s, "Msvm_StorageJob", MERGING, [vm["id"].upper()], owner="merge of an older checkpoint"))
    for j in seen:
        out(job_line("export", j))
    if faults.get("hold_before_started"):
        # The script still waiting for its other jobs to appear: this one runs already.
        time.sleep(600)
    out({"event": "started"})
    wait_jobs([(proc, status)], inp, 0, steps)

    if not full:
        # Step 2: Convert-VHD, one job per disk (storage jobs name no VM).
        procs = []
        jobs = []
        for n, d in enumerate(inp["disks"]):
            disk = by_loc[d["controller_location"]]
            checkpoint_leaf = chain_of(root, disk)[0][0]
            if model["converts_export"]:
                source = os.path.join(folder, "Virtual Hard Disks", leaf(checkpoint_leaf))
                if not os.path.isfile(source):
                    fail("ObjectNotFound", "ObjectNotFound,Microsoft.Vhd.PowerShell.Cmdlets.ConvertVHD",
                         f"The system cannot find the file specified: '{source}'")
            elif vm.get("state", "Running") in ATTACHED_STATES:
                # Convert-VHD: "Conversion is an offline operation; the virtual hard disk must
                # not be attached when the operation is started."
                fail("ResourceBusy", "InvalidOperation,Microsoft.Vhd.PowerShell.Cmdlets.ConvertVHD",
                     f"Failed to convert the virtual disk '{checkpoint_leaf}': The process cannot access "
                     "the file because it is being used by another process. (0x80070020)")
            dest = d["dest"]
            if not leaf(dest).lower().endswith((".vhd", ".vhdx")):
                fail("InvalidArgument", "InvalidParameter,Microsoft.Vhd.PowerShell.Cmdlets.ConvertVHD",
                     f"Failed to convert the virtual disk: the destination '{dest}' is not a .vhd or .vhdx file.")
            check_share_write(share, ctx, dest)
            # The merged disk holds the VM's data: the fixture's VHDX stands for it.
            p, st = start_writer(root, vm, faults, [[disk["local"], host_to_local(share, dest)]], {},
                                 f"{inp['checkpoint_name']}-convert{n}")
            procs.append((p, st))
            with State(root) as s:
                jobs.append(new_job(s, "Msvm_StorageJob", CONVERSION, [], pid=p.pid, source_vm=vm["id"], step="convert"))
        for j in jobs:
            out(job_line("convert", j))
        wait_jobs(procs, inp, 1, steps)

    if uses_checkpoint:
        with State(root) as s:
            remove_checkpoint(s, vm["id"], inp["checkpoint_name"])
        out({"event": "checkpoint-removed", "name": inp["checkpoint_name"]})
    out({"event": "done"})
