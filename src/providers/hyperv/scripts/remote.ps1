# hypersdk remote: runs one of the other hypersdk scripts on the Hyper-V host, over WinRM
# (Invoke-Command -ComputerName, with a credential) or PowerShell remoting over SSH (keys).
# Input on stdin: {"transport","host","port","username","password","use_ssl","script","input"};
# the password becomes a PSCredential here and goes nowhere else (never argv, never a file).
$ErrorActionPreference = 'Stop'
try {
    $in = [Console]::In.ReadToEnd() | ConvertFrom-Json
    $block = [ScriptBlock]::Create($in.script)
    $params = @{ ScriptBlock = $block; ArgumentList = @([string]$in.input) }
    if ($in.transport -eq 'winrm') {
        $params.ComputerName = $in.host
        if ($in.port) { $params.Port = [int]$in.port }
        if ($in.use_ssl) { $params.UseSSL = $true }
        if ($in.username) {
            $secure = ConvertTo-SecureString -String $in.password -AsPlainText -Force
            $params.Credential = New-Object System.Management.Automation.PSCredential($in.username, $secure)
        }
    } else {
        $params.HostName = $in.host
        if ($in.port) { $params.Port = [int]$in.port }
        if ($in.username) { $params.UserName = $in.username }
    }
    Invoke-Command @params
} catch {
    @{ event = 'error'; category = [string]$_.CategoryInfo.Category; id = [string]$_.FullyQualifiedErrorId; message = [string]$_.Exception.Message } | ConvertTo-Json -Compress
    exit 1
}
