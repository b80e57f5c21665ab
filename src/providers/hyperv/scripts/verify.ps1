# hypersdk verify: the size Hyper-V reads for each exported disk file and, when asked, whether
# Test-VHD finds it sound. Input: a JSON document (-InputJson, or stdin) with the paths, as data.
# Output: JSON lines {"event":"file","path","file_size","ok"} or one error.
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
