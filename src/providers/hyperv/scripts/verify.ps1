# hypersdk verify: the size Hyper-V reads for each exported disk file and, when asked, whether
# Test-VHD finds it sound. Input: a JSON document (-InputJson, or stdin) with the paths, as data.
# Output: JSON lines {"event":"file","path","file_size","ok"} or one error.
param([string]$InputJson)
$ErrorActionPreference = 'Stop'
try {
    if (-not $InputJson) { $InputJson = [Console]::In.ReadToEnd() }
    $in = $InputJson | ConvertFrom-Json
    foreach ($path in @($in.paths)) {
        $size = (Get-Item -LiteralPath $path).Length
        $ok = $true
        if ($in.test_vhd) { $ok = [bool](Test-VHD -Path $path) }
        @{ event = 'file'; path = $path; file_size = $size; ok = $ok } | ConvertTo-Json -Compress
    }
} catch {
    @{ event = 'error'; category = [string]$_.CategoryInfo.Category; id = [string]$_.FullyQualifiedErrorId; message = [string]$_.Exception.Message } | ConvertTo-Json -Compress
    exit 1
}
