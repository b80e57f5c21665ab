# hypersdk export: exports one VM into a staging folder the caller made, without stopping,
# saving or otherwise changing it.
#   full + include_snapshots: Export-VM (configuration, checkpoints, disks in Hyper-V's layout).
#   full: a checkpoint, Export-VMSnapshot of it (the VM as it is now, no checkpoint tree), the
#         checkpoint removed again.
#   vhd-only: a checkpoint, each disk of it merged into one standalone file with Convert-VHD,
#         the checkpoint removed again.
# Input: a JSON document (-InputJson, or stdin); every name and path reaches it as data only.
# Output: JSON lines: checkpoint, progress (Hyper-V's own percent), done, or error.
param([string]$InputJson)
$ErrorActionPreference = 'Stop'
$checkpoint = $null
try {
    if (-not $InputJson) { $InputJson = [Console]::In.ReadToEnd() }
    $in = $InputJson | ConvertFrom-Json
    $vm = Get-VM -Id $in.id
    if ($in.export_type -eq 'full' -and $in.include_snapshots) {
        $jobs = @(Export-VM -VM $vm -Path $in.path -AsJob)
    } else {
        $checkpoint = Checkpoint-VM -VM $vm -SnapshotName $in.checkpoint_name -Passthru
        @{ event = 'checkpoint'; name = $in.checkpoint_name; id = $checkpoint.Id.ToString() } | ConvertTo-Json -Compress
        if ($in.export_type -eq 'full') {
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
    }
    @{ event = 'started'; jobs = $jobs.Count } | ConvertTo-Json -Compress
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
