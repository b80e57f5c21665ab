# hypersdk export: exports one VM into a staging folder the caller made, without stopping,
# saving or otherwise changing it.
#   full + include_snapshots: ExportSystemDefinition of the VM (what Export-VM does:
#         configuration, checkpoints, disks in Hyper-V's layout).
#   full: a checkpoint, ExportSystemDefinition of it (what Export-VMSnapshot does: the VM as it
#         is now, no checkpoint tree), the checkpoint removed again.
#   vhd-only: a checkpoint, exported so into the staging folder, each exported disk merged into
#         one standalone file with ConvertVirtualHardDisk (Convert-VHD's method), the checkpoint
#         removed again.
# Input: a JSON document (-InputJson, or stdin); every name and path reaches it as data only.
# Output: JSON lines: checkpoint, job (each job Hyper-V's methods returned to this export),
# started, progress (Hyper-V's own percent), done, error.
param([string]$InputJson)
$ErrorActionPreference = 'Stop'
$checkpoint = $null
try {
    if (-not $InputJson) {
        # Windows PowerShell 5.1 decodes stdin and encodes stdout in the console's OEM code page:
        # UTF-8 both ways before the first read (the library sends ASCII JSON, \u escapes, too).
        # Only here: a remote session has no console, and its input comes as -InputJson.
        $utf8 = New-Object System.Text.UTF8Encoding -ArgumentList $false
        [Console]::InputEncoding = $utf8
        [Console]::OutputEncoding = $utf8
        $InputJson = [Console]::In.ReadToEnd()
    }
    $in = $InputJson | ConvertFrom-Json
    $vm = Get-VM -Id $in.id
    if ($in.export_type -ne 'full' -or -not $in.include_snapshots) {
        $checkpoint = Checkpoint-VM -VM $vm -SnapshotName $in.checkpoint_name -Passthru
        @{ event = 'checkpoint'; name = $in.checkpoint_name; id = $checkpoint.Id.ToString() } | ConvertTo-Json -Compress
    }
    $ns = 'root\virtualization\v2'
    $jobs = @()
    $steps = 1
    if ($in.export_type -ne 'full') { $steps = 2 }
    # Hyper-V's own WMI methods, called directly (Export-VM, Export-VMSnapshot and Convert-VHD
    # call the same ones, but their -AsJob hands back a PowerShell job, not Hyper-V's): each
    # returns 4096 and its Msvm_ConcreteJob in the out parameter Job, or 0 when it completed at
    # once; anything else is a refusal. The jobs named here are this export's, exactly: the
    # library records them and cleanup stops only those (never by ElementName: it is localized).
    function Start-HyperVJob([string]$step, $service, [string]$method, [hashtable]$arguments) {
        $r = Invoke-CimMethod -InputObject $service -MethodName $method -Arguments $arguments
        if ($r.ReturnValue -eq 4096) {
            $script:jobs += $r.Job
            @{ event = 'job'; step = $step; method = $method; id = [string]$r.Job.InstanceID } | ConvertTo-Json -Compress
        } elseif ($r.ReturnValue -ne 0) {
            throw "Hyper-V refused ${method}: return code $($r.ReturnValue)"
        }
    }
    # Waits for the step's jobs with Hyper-V's percent; a job that did not complete throws.
    # CIM_ConcreteJob.JobState: 2-6 not ended yet, 7 Completed; 8 Terminated, 9 Killed,
    # 10 Exception and the rest are failures.
    function Wait-Step([int]$index) {
        while ($true) {
            $now = @($script:jobs | ForEach-Object { Get-CimInstance -InputObject $_ })
            if (@($now | Where-Object { $_.JobState -ge 2 -and $_.JobState -le 6 }).Count -eq 0) { break }
            $percent = 0
            foreach ($job in $now) { $percent += [Math]::Min(100, [Math]::Max(0, [int]$job.PercentComplete)) }
            @{ event = 'progress'; percent = [int](($index * 100 + $percent / $now.Count) / $steps) } | ConvertTo-Json -Compress
            Start-Sleep -Milliseconds $in.poll_ms
        }
        foreach ($job in $now) {
            if ($job.JobState -ne 7) { throw "Hyper-V's job ended in state $($job.JobState) (error $($job.ErrorCode)): $($job.ErrorDescription)" }
        }
        $script:jobs = @()
    }
    $vsms = Get-CimInstance -Namespace $ns -ClassName 'Msvm_VirtualSystemManagementService'
    $system = Get-CimInstance -Namespace $ns -ClassName 'Msvm_ComputerSystem' -Filter "Name='$($vm.Id.ToString())'"
    # The Msvm_VirtualSystemExportSettingData the library wrote (an embedded instance, CIM-XML);
    # an export of the checkpoint names it by its object path in SnapshotVirtualSystem.
    $settings = [string]$in.export_setting_data
    if ($checkpoint) {
        $snapshotPath = '\\' + $env:COMPUTERNAME + '\root\virtualization\v2:Msvm_VirtualSystemSettingData.InstanceID="Microsoft:' + $checkpoint.Id.ToString().ToUpper() + '"'
        $settings = $settings.Replace('{snapshot}', [Security.SecurityElement]::Escape($snapshotPath))
    }
    if ($in.export_type -eq 'full') {
        Start-HyperVJob 'export' $vsms 'ExportSystemDefinition' @{ ComputerSystem = $system; ExportDirectory = [string]$in.path; ExportSettingData = $settings }
        @{ event = 'started' } | ConvertTo-Json -Compress
        Wait-Step 0
    } else {
        # Convert-VHD is an offline operation: "the virtual hard disk must not be attached when
        # the operation is started". The checkpoint's files are the parents of the chain the
        # running VM writes, so Hyper-V first exports them (the checkpoint alone, into the
        # staging folder), and ConvertVirtualHardDisk merges each exported, unattached copy into
        # one standalone disk. The export writes <folder>\<VM name>\Virtual Hard Disks\<the
        # checkpoint's file names>; only Hyper-V touches the files (its methods run in the
        # Hyper-V service: a remote session itself may not reach a share).
        $snap = Join-Path $in.path $in.snapshot_folder
        Start-HyperVJob 'export' $vsms 'ExportSystemDefinition' @{ ComputerSystem = $system; ExportDirectory = $snap; ExportSettingData = $settings }
        @{ event = 'started' } | ConvertTo-Json -Compress
        Wait-Step 0
        $drives = @($checkpoint.HardDrives)
        $ims = Get-CimInstance -Namespace $ns -ClassName 'Msvm_ImageManagementService'
        foreach ($disk in $in.disks) {
            $drive = @($drives | Where-Object { $_.ControllerType -eq $disk.controller_type -and $_.ControllerNumber -eq $disk.controller_number -and $_.ControllerLocation -eq $disk.controller_location }) | Select-Object -First 1
            if (-not $drive) { throw "the checkpoint has no disk at $($disk.controller_type) $($disk.controller_number):$($disk.controller_location)" }
            $exported = Join-Path $snap (Join-Path $vm.Name (Join-Path 'Virtual Hard Disks' (Split-Path -Leaf $drive.Path)))
            # The new disk's Msvm_VirtualHardDiskSettingData (Path, Type, Format, ParentPath,
            # BlockSize, LogicalSectorSize), as the library wrote it.
            Start-HyperVJob 'convert' $ims 'ConvertVirtualHardDisk' @{ SourcePath = $exported; VirtualDiskSettingData = [string]$disk.setting_data }
        }
        Wait-Step 1
    }
    if ($checkpoint) {
        Remove-VMSnapshot -VMSnapshot $checkpoint
        $checkpoint = $null
        @{ event = 'checkpoint-removed'; name = $in.checkpoint_name } | ConvertTo-Json -Compress
    }
    @{ event = 'done' } | ConvertTo-Json -Compress
} catch {
    @{ event = 'error'; category = [string]$_.CategoryInfo.Category; id = [string]$_.FullyQualifiedErrorId; message = [string]$_.Exception.Message } | ConvertTo-Json -Compress
    exit 1
}
