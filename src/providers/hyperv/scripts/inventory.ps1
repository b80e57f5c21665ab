# hypersdk inventory: one VM (by id, or by exact name) and its virtual disks with their sizes.
# Input: a JSON document (-InputJson, or stdin); every name reaches this script as data only.
# Output: JSON lines {"event":"vm"|"disk"|"error", ...}.
param([string]$InputJson)
$ErrorActionPreference = 'Stop'
try {
    if (-not $InputJson) { $InputJson = [Console]::In.ReadToEnd() }
    $in = $InputJson | ConvertFrom-Json
    if ($in.id) {
        $vms = @(Get-VM -Id $in.id -ErrorAction SilentlyContinue)
    } else {
        # Exact comparison: Get-VM -Name would read wildcards in the name.
        $vms = @(Get-VM | Where-Object { $_.Name -eq $in.vm })
    }
    if ($vms.Count -eq 0) {
        @{ event = 'error'; category = 'ObjectNotFound'; id = 'VMNotFound'; message = 'no such virtual machine' } | ConvertTo-Json -Compress
        exit 2
    }
    if ($vms.Count -gt 1) {
        @{ event = 'error'; category = 'InvalidArgument'; id = 'VMNameAmbiguous'; message = "$($vms.Count) virtual machines have this name; give the VM id" } | ConvertTo-Json -Compress
        exit 2
    }
    $vm = $vms[0]
    @{ event = 'vm'; name = $vm.Name; id = $vm.Id.ToString(); state = $vm.State.ToString(); generation = $vm.Generation } | ConvertTo-Json -Compress
    foreach ($drive in @(Get-VMHardDiskDrive -VM $vm)) {
        $vhd = Get-VHD -Path $drive.Path
        @{ event = 'disk'; path = $vhd.Path; file_size = $vhd.FileSize; size = $vhd.Size; format = $vhd.VhdFormat.ToString(); parent = $vhd.ParentPath; controller_type = $drive.ControllerType.ToString(); controller_number = $drive.ControllerNumber; controller_location = $drive.ControllerLocation } | ConvertTo-Json -Compress
    }
} catch {
    @{ event = 'error'; category = [string]$_.CategoryInfo.Category; id = [string]$_.FullyQualifiedErrorId; message = [string]$_.Exception.Message } | ConvertTo-Json -Compress
    exit 1
}
