# hypersdk remote: runs one of the other hypersdk scripts on the Hyper-V host, over WinRM
# (Invoke-Command -ComputerName, with a credential) or PowerShell remoting over SSH (keys).
# Input on stdin: {"transport","host","port","username","password","use_ssl","authentication",
# "script","input"}; the password becomes a PSCredential here and goes nowhere else (never argv,
# never a file).
$ErrorActionPreference = 'Stop'
try {
    # Windows PowerShell 5.1 decodes stdin and encodes stdout in the console's OEM code page:
    # UTF-8 both ways before the first read; the remote script's output is written here.
    $utf8 = New-Object System.Text.UTF8Encoding -ArgumentList $false
    [Console]::InputEncoding = $utf8
    [Console]::OutputEncoding = $utf8
    $in = [Console]::In.ReadToEnd() | ConvertFrom-Json
    $block = [ScriptBlock]::Create($in.script)
    $params = @{ ScriptBlock = $block; ArgumentList = @([string]$in.input) }
    if ($in.transport -eq 'winrm') {
        $params.ComputerName = $in.host
        if ($in.port) { $params.Port = [int]$in.port }
        if ($in.use_ssl) { $params.UseSSL = $true }
        # Default, Kerberos or CredSSP (the "second hop": only CredSSP lets the session reach a
        # share with the user's credential; the scripts never need that).
        if ($in.authentication) { $params.Authentication = [string]$in.authentication }
        if ($in.username) {
            $secure = ConvertTo-SecureString -String $in.password -AsPlainText -Force
            $params.Credential = New-Object System.Management.Automation.PSCredential($in.username, $secure)
        }
    } else {
        # Invoke-Command -HostName/-UserName (remoting over SSH) came with PowerShell 6.
        if ($PSVersionTable.PSVersion.Major -lt 6) {
            @{ event = 'error'; category = 'NotImplemented'; id = 'PowerShellTooOldForSsh'; message = "PowerShell remoting over SSH needs PowerShell 6 or later (pwsh); this is $($PSVersionTable.PSEdition) PowerShell $($PSVersionTable.PSVersion)" } | ConvertTo-Json -Compress
            exit 1
        }
        $params.HostName = $in.host
        if ($in.port) { $params.Port = [int]$in.port }
        if ($in.username) { $params.UserName = $in.username }
    }
    Invoke-Command @params
} catch {
    @{ event = 'error'; category = [string]$_.CategoryInfo.Category; id = [string]$_.FullyQualifiedErrorId; message = [string]$_.Exception.Message } | ConvertTo-Json -Compress
    exit 1
}
