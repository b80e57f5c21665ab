# hypersdk list: the VMs of this host, their state and the size of their virtual disks
# (FileSize, what an export copies). Input: a JSON document (-InputJson, or stdin; no keys yet).
# Output: JSON lines {"event":"vm"|"error", ...}.
param([string]$InputJson)
$ErrorActionPreference = 'Stop'
try {
    if (-not $InputJson) { $InputJson = [Console]::In.ReadToEnd() }
    $in = $InputJson | ConvertFrom-Json
    foreach ($vm in @(Get-VM)) {
        $bytes = 0
        foreach ($drive in @(Get-VMHardDiskDrive -VM $vm)) {
            if ($drive.Path) { $bytes += (Get-VHD -Path $drive.Path).FileSize }
        }
        @{ event = 'vm'; name = $vm.Name; id = $vm.Id.ToString(); state = $vm.State.ToString(); bytes = $bytes } | ConvertTo-Json -Compress
    }
} catch {
    @{ event = 'error'; category = [string]$_.CategoryInfo.Category; id = [string]$_.FullyQualifiedErrorId; message = [string]$_.Exception.Message } | ConvertTo-Json -Compress
    exit 1
}
