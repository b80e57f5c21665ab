# hypersdk inventory: one VM (by id, or by exact name) and its virtual disks with their sizes.
# Input: a JSON document (-InputJson, or stdin); every name reaches this script as data only.
# Output: JSON lines {"event":"vm"|"disk"|"skipped"|"error", ...}.
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
        # A pass-through disk (a physical disk of the host: DiskNumber set, no file) is no VHD:
        # Get-VHD cannot read it and Export-VM does not copy it. Said, and left out.
        if ($null -ne $drive.DiskNumber -or -not $drive.Path) {
            @{ event = 'skipped'; reason = 'pass-through'; disk_number = $drive.DiskNumber; controller_type = $drive.ControllerType.ToString(); controller_number = $drive.ControllerNumber; controller_location = $drive.ControllerLocation } | ConvertTo-Json -Compress
            continue
        }
        $vhd = Get-VHD -Path $drive.Path
        # The chain from the file the VM writes now (an .avhdx once it has checkpoints) down to
        # its base disk, each file with its FileSize: an export copies every one of them.
        $chain = @()
        $link = $vhd
        while ($link) {
            $chain += @{ path = [string]$link.Path; file_size = $link.FileSize }
            if ($link.ParentPath -and $chain.Count -lt 256) { $link = Get-VHD -Path $link.ParentPath } else { $link = $null }
        }
        @{ event = 'disk'; path = $vhd.Path; file_size = $vhd.FileSize; size = $vhd.Size; format = $vhd.VhdFormat.ToString(); parent = $vhd.ParentPath; chain = @($chain); controller_type = $drive.ControllerType.ToString(); controller_number = $drive.ControllerNumber; controller_location = $drive.ControllerLocation } | ConvertTo-Json -Compress -Depth 4
    }
} catch {
    @{ event = 'error'; category = [string]$_.CategoryInfo.Category; id = [string]$_.FullyQualifiedErrorId; message = [string]$_.Exception.Message } | ConvertTo-Json -Compress
    exit 1
}
