"""export.ps1 against the fake Hyper-V host (hyperv_host.py), for tests only: a checkpoint,
then the steps the script runs (ExportSystemDefinition of the VM or of the checkpoint; for
vhd-only, ConvertVirtualHardDisk of each exported disk). A script that calls those WMI methods
itself (model `calls_wmi`) has each call checked as Hyper-V would (wmi_model.py: the official
parameter names, the embedded instances, return code 4096 and the job in `Job`, or a refusal's
code, fault `method_returns`) and reports exactly the jobs returned. An older script that
watched jobs appear gets every job that appeared on the host while it started its cmdlets —
other parties' jobs that start in that moment included (fault `bystanders`, which also starts
another party's Conversion while the disks are converted).
"""

import os
import sys
import time

from hyperv_host import (CONVERSION, COMPACTION, MERGING, State, check_share_write, chain_of, fail, fake_avhdx,
                         find_vm, host_to_local, job_line, leaf, new_job, out, passthrough,
                         remove_checkpoint, start_writer, wait_jobs)
import hyperv_host
import wmi_model
from wmi_model import Refused

CHECKPOINT_ID = "c0ffee00-0000-0000-0000-000000000001"


def call(ctx, faults, method, step, settings_check):
    """One Start-HyperVJob of export.ps1: the call's parameters as the script names them, its
    embedded instance checked; on a refusal the script throws with the return code."""
    for names in ctx["model"]["wmi_calls"].get(method, [[]]):
        try:
            wmi_model.check_arguments(method, names)
        except Refused as e:
            fail("InvalidArgument", "HRESULT 0x80041008,Microsoft.Management.Infrastructure.CimCmdlets.InvokeCimMethodCommand",
                 str(e))
    code = faults.get("method_returns", {}).get(method)
    try:
        props = settings_check()
    except Refused as e:
        code, props = e.code, None
        sys.stderr.write(f"stand-in: {method} refused: {e}\n")
    if code == wmi_model.COMPLETED and not ctx["model"]["accepts_completed"]:
        # A script that takes only 4096 for success throws on "Completed with No Error".
        msg = f"Hyper-V refused {method}: return code {code}"
        fail("OperationStopped", msg, msg)
    if code is not None and code not in (wmi_model.JOB_STARTED, wmi_model.COMPLETED):
        if not ctx["model"]["checks_return_code"]:
            # A script that does not look at the return code goes on as if nothing had been
            # refused: no job, no file.
            return None
        msg = f"Hyper-V refused {method}: return code {code}"
        fail("OperationStopped", msg, msg)
    return props


def completes_at_once(faults, method):
    """Fault `method_returns` {method: 0}: the method did its work before returning 0
    ("Completed with No Error"), and returned no job."""
    return faults.get("method_returns", {}).get(method) == wmi_model.COMPLETED


def returned_job_line(step, method, j):
    return {"event": "job", "step": step, "method": method, "id": j["instance_id"]}

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
        out({"event": "checkpoint", "name": inp["checkpoint_name"], "id": CHECKPOINT_ID})
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

    # Step 1: the export (Export-VM / Export-VMSnapshot, or ExportSystemDefinition called
    # directly): every file of each disk's chain, by its own name.
    wmi = model["calls_wmi"]
    export_dir = base if full else os.path.join(base, inp["snapshot_folder"])
    subfolder = True
    if wmi:
        settings = inp["export_setting_data"]
        if uses_checkpoint:
            settings = settings.replace("{snapshot}", wmi_model.xml_escape(wmi_model.snapshot_path(CHECKPOINT_ID)))
        paths = [wmi_model.snapshot_path(CHECKPOINT_ID)] if uses_checkpoint else []
        props = call(ctx, faults, "ExportSystemDefinition", "export",
                     lambda: wmi_model.export_settings(settings, paths))
        if props is None:
            out({"event": "started"})
            if uses_checkpoint:
                with State(root) as s:
                    remove_checkpoint(s, vm["id"], inp["checkpoint_name"])
                out({"event": "checkpoint-removed", "name": inp["checkpoint_name"]})
            out({"event": "done"})
            return
        # "If CreateVmExportSubdirectory is True ... each virtual machine definition in a
        # separate subdirectory under this path"; otherwise in the path itself.
        subfolder = props.get("CreateVmExportSubdirectory") is True
    folder = os.path.join(export_dir, vm["name"]) if subfolder else export_dir
    copies = []
    # Fault `rename_files` {host leaf: name}: Hyper-V writes a file of the chain under another
    # name than the host's (the library must read the layout, not predict it).
    renamed = faults.get("rename_files", {}) if full else {}
    for d in disks:
        for host_path, local in reversed(chain_of(root, d)):
            name = renamed.get(leaf(host_path), leaf(host_path))
            copies.append([local, os.path.join(folder, "Virtual Hard Disks", name)])
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
    at_once = wmi and completes_at_once(faults, "ExportSystemDefinition")
    if at_once:
        proc.wait()
    with State(root) as s:
        seen = [] if at_once else [
            new_job(s, "Msvm_ConcreteJob", 0, [vm["id"].upper()], pid=proc.pid, source_vm=vm["id"], step="export")]
        if faults.get("bystanders"):
            # Started by others in the same moment: a backup application's compaction of a
            # disk of no VM, and a merge of this VM's own older checkpoint.
            seen.append(new_job(s, "Msvm_StorageJob", COMPACTION, [], owner="CORP\\backup"))
            seen.append(new_job(s, "Msvm_StorageJob", MERGING, [vm["id"].upper()], owner="merge of an older checkpoint"))
    if wmi:
        # The job ExportSystemDefinition returned, and nothing else.
        if not at_once:
            out(returned_job_line("export", "ExportSystemDefinition", seen[0]))
    else:
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
            if wmi:
                props = call(ctx, faults, "ConvertVirtualHardDisk", "convert",
                             lambda: wmi_model.vhd_settings(d["setting_data"]))
                if props is None:
                    continue
                dest = props["Path"]
            if not leaf(dest).lower().endswith((".vhd", ".vhdx")):
                fail("InvalidArgument", "InvalidParameter,Microsoft.Vhd.PowerShell.Cmdlets.ConvertVHD",
                     f"Failed to convert the virtual disk: the destination '{dest}' is not a .vhd or .vhdx file.")
            check_share_write(share, ctx, dest)
            # The merged disk holds the VM's data: the fixture's VHDX stands for it.
            # Fault `convert_delay_ms`: the conversions' pace, apart from the export's.
            pace = dict(faults, write_delay_ms=faults.get("convert_delay_ms", faults.get("write_delay_ms", 10)))
            p, st = start_writer(root, vm, pace, [[disk["local"], host_to_local(share, dest)]], {},
                                 f"{inp['checkpoint_name']}-convert{n}")
            procs.append((p, st))
            if wmi and completes_at_once(faults, "ConvertVirtualHardDisk"):
                p.wait()
                continue
            with State(root) as s:
                jobs.append(new_job(s, "Msvm_StorageJob", CONVERSION, [], pid=p.pid, source_vm=vm["id"], step="convert"))
                if faults.get("bystanders") and n == 0:
                    # Another party's Convert-VHD, started in the same instant: a storage job
                    # of JobType Conversion that affects no VM, like this export's own.
                    jobs_other = new_job(s, "Msvm_StorageJob", CONVERSION, [], owner="CORP\\imaging")
            if wmi:
                out(returned_job_line("convert", "ConvertVirtualHardDisk", jobs[-1]))
        if not wmi:
            if faults.get("bystanders"):
                jobs.append(jobs_other)
            for j in jobs:
                out(job_line("convert", j))
        wait_jobs(procs, inp, 1, steps)

    if uses_checkpoint:
        with State(root) as s:
            remove_checkpoint(s, vm["id"], inp["checkpoint_name"])
        out({"event": "checkpoint-removed", "name": inp["checkpoint_name"]})
    out({"event": "done"})
