# hypersdk export: exports one VM into a staging folder the caller made, without stopping,
# saving or otherwise changing it.
#   full + include_snapshots: Export-VM (configuration, checkpoints, disks in Hyper-V's layout).
#   full: a checkpoint, Export-VMSnapshot of it (the VM as it is now, no checkpoint tree), the
#         checkpoint removed again.
#   vhd-only: a checkpoint, each disk of it merged into one standalone file with Convert-VHD,
#         the checkpoint removed again.
# Input: a JSON document (-InputJson, or stdin); every name and path reaches it as data only.
# Output: JSON lines: checkpoint, started (with the InstanceIDs of the Hyper-V jobs it started),
# progress (Hyper-V's own percent), done, or error.
param([string]$InputJson)
$ErrorActionPreference = 'Stop'
$checkpoint = $null
try {
    if (-not $InputJson) { $InputJson = [Console]::In.ReadToEnd() }
    $in = $InputJson | ConvertFrom-Json
    $vm = Get-VM -Id $in.id
    if ($in.export_type -ne 'full' -or -not $in.include_snapshots) {
        $checkpoint = Checkpoint-VM -VM $vm -SnapshotName $in.checkpoint_name -Passthru
        @{ event = 'checkpoint'; name = $in.checkpoint_name; id = $checkpoint.Id.ToString() } | ConvertTo-Json -Compress
    }
    # The jobs this export starts, by InstanceID: cleanup stops exactly these, never another
    # export's or a backup's. The cmdlets do not hand back the Hyper-V service's job, so ours are
    # the jobs that appear while they start, under a host-wide mutex (no other hypersdk export
    # starts its jobs in that window); a job that names another VM is never taken.
    $ns = 'root\virtualization\v2'
    $gate = New-Object System.Threading.Mutex($false, 'Global\hypersdk-hyperv-job-start')
    try {
        # An export that died holding it left it abandoned: the next one still gets it.
        if (-not $gate.WaitOne(60000)) { throw 'another hypersdk export has been starting its jobs for a minute' }
    } catch [System.Threading.AbandonedMutexException] { }
    try {
        $before = @(Get-CimInstance -Namespace $ns -ClassName 'CIM_ConcreteJob' | ForEach-Object { $_.InstanceID })
        if ($in.export_type -eq 'full' -and $in.include_snapshots) {
            $jobs = @(Export-VM -VM $vm -Path $in.path -AsJob)
        } elseif ($in.export_type -eq 'full') {
            $jobs = @(Export-VMSnapshot -VMSnapshot $checkpoint -Path $in.path -AsJob)
        } else {
            $drives = @($checkpoint.HardDrives)
            $jobs = @()
            foreach ($disk in $in.disks) {
                $drive = $drives | Where-Object { $_.ControllerType -eq $disk.controller_type -and $_.ControllerNumber -eq $disk.controller_number -and $_.ControllerLocation -eq $disk.controller_location }
                $from = if ($drive) { $drive.Path } else { $disk.source }
                $jobs += Convert-VHD -Path $from -DestinationPath $disk.dest -VHDType Dynamic -AsJob
            }
        }
        $ids = @()
        $told = @()
        $until = (Get-Date).AddSeconds(30)
        while ($ids.Count -lt $jobs.Count -and (Get-Date) -lt $until) {
            Start-Sleep -Milliseconds 100
            $ids = @()
            foreach ($job in @(Get-CimInstance -Namespace $ns -ClassName 'CIM_ConcreteJob')) {
                if ($before -contains $job.InstanceID) { continue }
                $affected = @(Get-CimAssociatedInstance -InputObject $job -ResultClassName 'Msvm_ComputerSystem' -ErrorAction SilentlyContinue)
                if ($affected.Count -eq 0 -or @($affected | Where-Object { $_.Name -eq $in.id }).Count -gt 0) {
                    $ids += [string]$job.InstanceID
                    if ($told -notcontains [string]$job.InstanceID) {
                        # Said at once: a cancel from now on stops this job too.
                        $told += [string]$job.InstanceID
                        @{ event = 'job'; id = [string]$job.InstanceID } | ConvertTo-Json -Compress
                    }
                }
            }
        }
    } finally {
        $gate.ReleaseMutex()
    }
    @{ event = 'started'; jobs = $jobs.Count; job_ids = @($ids) } | ConvertTo-Json -Compress
    while (@($jobs | Where-Object { $_.State -eq 'Running' -or $_.State -eq 'NotStarted' }).Count -gt 0) {
        $percent = 0
        foreach ($job in $jobs) {
            $p = @($job.ChildJobs | ForEach-Object { $_.Progress }) | Select-Object -Last 1
            if ($job.State -eq 'Completed') { $percent += 100 } elseif ($p) { $percent += [Math]::Max(0, $p.PercentComplete) }
        }
        @{ event = 'progress'; percent = [int]($percent / $jobs.Count) } | ConvertTo-Json -Compress
        Start-Sleep -Milliseconds $in.poll_ms
    }
    foreach ($job in $jobs) {
        Receive-Job -Job $job | Out-Null
        if ($job.State -ne 'Completed') { throw "the export job ended $($job.State)" }
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
