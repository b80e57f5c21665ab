# hypersdk list: the VMs of this host, their state and the size of their virtual disks
# (FileSize, what an export copies). Input: a JSON document (-InputJson, or stdin; no keys yet).
# Output: JSON lines {"event":"vm"|"error", ...}.
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
    foreach ($vm in @(Get-VM)) {
        $bytes = 0
        foreach ($drive in @(Get-VMHardDiskDrive -VM $vm)) {
            # Pass-through disks (no file) are not exported; every file of a checkpoint chain is.
            if ($null -ne $drive.DiskNumber -or -not $drive.Path) { continue }
            $link = Get-VHD -Path $drive.Path
            $depth = 0
            while ($link) {
                $bytes += $link.FileSize
                $depth += 1
                if ($link.ParentPath -and $depth -lt 256) { $link = Get-VHD -Path $link.ParentPath } else { $link = $null }
            }
        }
        @{ event = 'vm'; name = $vm.Name; id = $vm.Id.ToString(); state = $vm.State.ToString(); bytes = $bytes } | ConvertTo-Json -Compress
    }
} catch {
    @{ event = 'error'; category = [string]$_.CategoryInfo.Category; id = [string]$_.FullyQualifiedErrorId; message = [string]$_.Exception.Message } | ConvertTo-Json -Compress
    exit 1
}
