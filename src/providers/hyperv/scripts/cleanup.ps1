# hypersdk cleanup: undoes what an export left on the Hyper-V host, on every path: stops the
# VM's export and conversion jobs still running in the Hyper-V service, and removes the
# checkpoint the export made (by its unique name). Never touches anything else of the VM.
# Input: a JSON document (-InputJson, or stdin), as data. Output: JSON lines.
param([string]$InputJson)
$ErrorActionPreference = 'Stop'
try {
    if (-not $InputJson) { $InputJson = [Console]::In.ReadToEnd() }
    $in = $InputJson | ConvertFrom-Json
    $stopped = 0
    if ($in.stop_jobs) {
        # Export-VM and Convert-VHD run in the Hyper-V service: ending PowerShell does not stop
        # them. RequestStateChange 4 terminates a job.
        $running = @(Get-CimInstance -Namespace 'root\virtualization\v2' -ClassName 'Msvm_ConcreteJob' | Where-Object { $_.JobState -eq 4 -and $_.ElementName -match 'Export|Convert|Merge' })
        foreach ($job in $running) {
            $affected = @(Get-CimAssociatedInstance -InputObject $job -ResultClassName 'Msvm_ComputerSystem' -ErrorAction SilentlyContinue)
            if ($affected.Count -eq 0 -or @($affected | Where-Object { $_.Name -eq $in.id }).Count -gt 0) {
                Invoke-CimMethod -InputObject $job -MethodName 'RequestStateChange' -Arguments @{ RequestedState = [uint16]4 } | Out-Null
                $stopped += 1
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
    @{ event = 'cleaned'; jobs_stopped = $stopped; checkpoint_removed = $removed } | ConvertTo-Json -Compress
} catch {
    @{ event = 'error'; category = [string]$_.CategoryInfo.Category; id = [string]$_.FullyQualifiedErrorId; message = [string]$_.Exception.Message } | ConvertTo-Json -Compress
    exit 1
}
