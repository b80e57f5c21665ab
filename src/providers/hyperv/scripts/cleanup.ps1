# hypersdk cleanup: undoes what an export left on the Hyper-V host, on every path: stops the
# export's own jobs still running in the Hyper-V service (by the InstanceIDs export.ps1 named),
# and removes the checkpoint the export made (by its unique name). Never touches anything else.
# Input: a JSON document (-InputJson, or stdin), as data. Output: JSON lines.
param([string]$InputJson)
$ErrorActionPreference = 'Stop'
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
    $stopped = @()
    $notStopped = @()
    # Exactly the jobs this export started (their InstanceIDs, from export.ps1): Export-VM and
    # Convert-VHD run in the Hyper-V service, so ending PowerShell does not stop them.
    # RequestStateChange 4 terminates a job; 0 (done) and 4096 (started) are success.
    foreach ($jid in @($in.job_ids)) {
        if (-not $jid) { continue }
        foreach ($job in @(Get-CimInstance -Namespace 'root\virtualization\v2' -ClassName 'CIM_ConcreteJob' | Where-Object { $_.InstanceID -eq $jid })) {
            # 2 New, 3 Starting, 4 Running, 5 Suspended, 6 Shutting Down: not ended yet.
            if ($job.JobState -lt 2 -or $job.JobState -gt 6) { continue }
            $r = Invoke-CimMethod -InputObject $job -MethodName 'RequestStateChange' -Arguments @{ RequestedState = [uint16]4 }
            if ($r.ReturnValue -eq 0 -or $r.ReturnValue -eq 4096) {
                $stopped += [string]$jid
            } else {
                $notStopped += @{ id = [string]$jid; code = [int]$r.ReturnValue }
            }
        }
    }
    $removed = $false
    if ($in.checkpoint_name) {
        $vm = Get-VM -Id $in.id
        $mine = @(Get-VMSnapshot -VM $vm | Where-Object { $_.Name -eq $in.checkpoint_name })
        foreach ($c in $mine) {
            Remove-VMSnapshot -VMSnapshot $c
            $removed = $true
        }
    }
    @{ event = 'cleaned'; jobs_stopped = $stopped.Count; stopped_job_ids = @($stopped); jobs_not_stopped = @($notStopped); checkpoint_removed = $removed } | ConvertTo-Json -Compress
} catch {
    @{ event = 'error'; category = [string]$_.CategoryInfo.Category; id = [string]$_.FullyQualifiedErrorId; message = [string]$_.Exception.Message } | ConvertTo-Json -Compress
    exit 1
}
