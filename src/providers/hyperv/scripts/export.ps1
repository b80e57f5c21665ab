# hypersdk export: exports one VM into a staging folder the caller made, without stopping,
# saving or otherwise changing it.
#   full + include_snapshots: Export-VM (configuration, checkpoints, disks in Hyper-V's layout).
#   full: a checkpoint, Export-VMSnapshot of it (the VM as it is now, no checkpoint tree), the
#         checkpoint removed again.
#   vhd-only: a checkpoint, Export-VMSnapshot of it into the staging folder, each exported disk
#         merged into one standalone file with Convert-VHD, the checkpoint removed again.
# Input: a JSON document (-InputJson, or stdin); every name and path reaches it as data only.
# Output: JSON lines: checkpoint, job (every Hyper-V job that appeared while a step started its
# cmdlets, with what tells whose it is), started, progress (Hyper-V's own percent), done, error.
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
    $gate = New-Object System.Threading.Mutex($false, 'Global\hypersdk-hyperv-job-start')
    $jobs = @()
    $steps = 1
    if ($in.export_type -ne 'full') { $steps = 2 }
    # Starts one step's cmdlets under a host-wide mutex (no other hypersdk export starts jobs
    # meanwhile) and reports at once every Hyper-V job that appeared meanwhile, with what tells
    # whose it is: its class, a storage job's JobType, the VMs it affects. The cmdlets' -AsJob
    # does not hand back the service's job; the library decides which jobs are this export's
    # (never by ElementName: it is localized) and cleanup stops exactly those.
    function Start-Step([string]$kind, [scriptblock]$start) {
        try {
            if (-not $gate.WaitOne(60000)) { throw 'another hypersdk export has been starting its jobs for a minute' }
        } catch [System.Threading.AbandonedMutexException] { }
        try {
            $before = @(Get-CimInstance -Namespace $ns -ClassName 'CIM_ConcreteJob' | ForEach-Object { [string]$_.InstanceID })
            $script:jobs = @(& $start)
            $seen = @()
            $likely = 0
            $until = (Get-Date).AddSeconds(30)
            while ($likely -lt $script:jobs.Count -and (Get-Date) -lt $until) {
                Start-Sleep -Milliseconds 100
                foreach ($job in @(Get-CimInstance -Namespace $ns -ClassName 'CIM_ConcreteJob')) {
                    $id = [string]$job.InstanceID
                    if ($before -contains $id -or $seen -contains $id) { continue }
                    $seen += $id
                    $class = [string]$job.CimClass.CimClassName
                    $vms = @(Get-CimAssociatedInstance -InputObject $job -ResultClassName 'Msvm_ComputerSystem' -ErrorAction SilentlyContinue | ForEach-Object { [string]$_.Name })
                    @{ event = 'job'; step = $kind; id = $id; class = $class; job_type = $job.JobType; vms = @($vms) } | ConvertTo-Json -Compress
                    # Only to know when to stop waiting (Msvm_StorageJob JobType 6: Conversion).
                    if (($kind -eq 'convert' -and $class -eq 'Msvm_StorageJob' -and $job.JobType -eq 6) -or ($kind -eq 'export' -and $class -ne 'Msvm_StorageJob' -and $vms -contains $in.id)) { $likely += 1 }
                }
            }
        } finally {
            $gate.ReleaseMutex()
        }
    }
    # Waits for the step's jobs, with Hyper-V's percent; a job that did not complete throws.
    function Wait-Step([int]$index) {
        while (@($script:jobs | Where-Object { $_.State -eq 'Running' -or $_.State -eq 'NotStarted' }).Count -gt 0) {
            $percent = 0
            foreach ($job in $script:jobs) {
                $p = @($job.ChildJobs | ForEach-Object { $_.Progress }) | Select-Object -Last 1
                if ($job.State -eq 'Completed') { $percent += 100 } elseif ($p) { $percent += [Math]::Max(0, $p.PercentComplete) }
            }
            @{ event = 'progress'; percent = [int](($index * 100 + $percent / $script:jobs.Count) / $steps) } | ConvertTo-Json -Compress
            Start-Sleep -Milliseconds $in.poll_ms
        }
        foreach ($job in $script:jobs) {
            Receive-Job -Job $job | Out-Null
            if ($job.State -ne 'Completed') { throw "the export job ended $($job.State)" }
        }
    }
    if ($in.export_type -eq 'full' -and $in.include_snapshots) {
        Start-Step 'export' { Export-VM -VM $vm -Path $in.path -AsJob }
        @{ event = 'started' } | ConvertTo-Json -Compress
        Wait-Step 0
    } elseif ($in.export_type -eq 'full') {
        Start-Step 'export' { Export-VMSnapshot -VMSnapshot $checkpoint -Path $in.path -AsJob }
        @{ event = 'started' } | ConvertTo-Json -Compress
        Wait-Step 0
    } else {
        # Convert-VHD is an offline operation: "the virtual hard disk must not be attached when
        # the operation is started". The checkpoint's files are the parents of the chain the
        # running VM writes, so Hyper-V first exports them (Export-VMSnapshot, into the staging
        # folder), and Convert-VHD merges each exported, unattached copy into one standalone
        # disk. Export-VMSnapshot writes <folder>\<VM name>\Virtual Hard Disks\<the checkpoint's
        # file names>; only Hyper-V's cmdlets touch the files (they run in the Hyper-V service:
        # a remote session itself may not reach a share).
        $snap = Join-Path $in.path $in.snapshot_folder
        Start-Step 'export' { Export-VMSnapshot -VMSnapshot $checkpoint -Path $snap -AsJob }
        @{ event = 'started' } | ConvertTo-Json -Compress
        Wait-Step 0
        $drives = @($checkpoint.HardDrives)
        Start-Step 'convert' {
            foreach ($disk in $in.disks) {
                $drive = @($drives | Where-Object { $_.ControllerType -eq $disk.controller_type -and $_.ControllerNumber -eq $disk.controller_number -and $_.ControllerLocation -eq $disk.controller_location }) | Select-Object -First 1
                if (-not $drive) { throw "the checkpoint has no disk at $($disk.controller_type) $($disk.controller_number):$($disk.controller_location)" }
                $exported = Join-Path $snap (Join-Path $vm.Name (Join-Path 'Virtual Hard Disks' (Split-Path -Leaf $drive.Path)))
                Convert-VHD -Path $exported -DestinationPath $disk.dest -VHDType Dynamic -AsJob
            }
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
