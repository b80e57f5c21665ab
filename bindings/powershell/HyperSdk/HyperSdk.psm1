# HyperSdk: PowerShell cmdlets over the HyperSdk .NET binding (HyperSdk.dll), which calls the
# hypersdk C library. Every export runs in the library; these functions start, watch (polling
# every 250 ms on the pipeline thread, so Write-Progress is safe), cancel and collect them.
# NOTE: this module has not been run under PowerShell in the project's CI (none is available
# there); its syntax, exports, help and verbs are checked statically, and the .NET code it calls
# is covered by the C# tests.

Set-StrictMode -Version 3.0

# Exports started in this session, by id.
$script:HsExports = [ordered]@{}
$script:HsNextId = 1

function ConvertTo-HsJson {
    param([object] $Value)
    if ($null -eq $Value) { return $null }
    if ($Value -is [string]) { return $Value }
    return ($Value | ConvertTo-Json -Depth 10 -Compress)
}

function Merge-HsCredential {
    # Puts a PSCredential into the provider's config under the keys that provider reads.
    # A GCP key file (-KeyFile) goes in as its path: the library reads it, nothing is copied.
    param([hashtable] $Config, [string] $Provider, [System.Management.Automation.PSCredential] $Credential, [string] $KeyFile)
    $merged = @{}
    if ($Config) { foreach ($k in $Config.Keys) { $merged[$k] = $Config[$k] } }
    if ($KeyFile -and $Provider -ne 'gcp') { throw "-KeyFile is a GCP service account key file; -Provider $Provider takes -Credential or -Config." }
    if ($KeyFile -and $Credential) { throw 'Give -KeyFile or -Credential, not both.' }
    if ($Credential -or $KeyFile) {
        $plain = $null
        if ($Credential) { $plain = $Credential.GetNetworkCredential().Password }
        switch ($Provider) {
            'azure' { $merged['client_id'] = $Credential.UserName; $merged['client_secret'] = $plain }
            'aws' { $merged['access_key_id'] = $Credential.UserName; $merged['secret_access_key'] = $plain }
            'gcp' { if ($KeyFile) { $merged['credentials_path'] = $KeyFile } else { $merged['credentials_json'] = $plain } }
            default { $merged['username'] = $Credential.UserName; $merged['password'] = $plain }
        }
    }
    return $merged
}

# The export table (New-/Get-HsExportRecord) and progress display (Get-HsProgressObject,
# Write-HsProgressBar).
. (Join-Path $PSScriptRoot 'HyperSdk.Session.ps1')
# Export-HsHyperVVM.
. (Join-Path $PSScriptRoot 'HyperSdk.HyperV.ps1')

<#
.SYNOPSIS
Starts an export of a VM, disk or object to a local folder.

.DESCRIPTION
Starts one export through the hypersdk library and returns an export object at once (or, with
-Wait, waits for it with a progress bar and returns its result). The export runs in the library;
use Get-HsExport to see its progress, Wait-HsExport to wait, Stop-HsExport to cancel and
Receive-HsExportResult to collect the result. Credentials given with -Credential are put into
the provider's config and never appear in errors or logs.

.PARAMETER Provider
The provider: hyperv, aws, azure, gcp, vsphere or http.

.PARAMETER Config
The provider's configuration, as a hashtable (or a JSON string).

.PARAMETER Credential
A credential merged into the config: user name and password (vsphere, hyperv), client id and
secret (azure), access key id and secret key (aws), the credentials JSON as password (gcp).

.PARAMETER KeyFile
GCP only: a service account key file (JSON), passed to the library as its path
(credentials_path); the key is read by the library and never copied into the config.

.PARAMETER Source
What to export: a VM name, an instance id, a disk, a URL. Takes pipeline input.

.PARAMETER OutputPath
The folder the files are written to; it must exist.

.PARAMETER Option
Export options as a hashtable (for example @{ format = 'ova'; overwrite = $true }).

.PARAMETER Wait
Wait for the export with a progress bar and return its result instead of the export object.

.INPUTS
System.String. Sources, by value or from a property named Source, Name or Id.

.OUTPUTS
HyperSdk.Export: one per started export (Id, Provider, Source, OutputPath, Started, Export).
HyperSdk.Result with -Wait: see Receive-HsExportResult.

.LINK
Get-HsExport

.LINK
Wait-HsExport

.LINK
Receive-HsExportResult

.EXAMPLE
Start-HsExport -Provider vsphere -Config @{ url = 'https://vcenter/sdk' } -Credential (Get-Credential) -Source '/DC1/vm/db01' -OutputPath D:\Exports -Wait

Exports one vSphere VM to D:\Exports, draws a progress bar until it ends and returns its result.

.EXAMPLE
'i-0abc', 'i-0def' | Start-HsExport -Provider aws -Config @{ region = 'eu-west-1' } -OutputPath /backups -Option @{ s3_bucket = 'exports' }

Starts two EC2 instance exports through the S3 bucket 'exports' and returns at once with two
export objects; Get-HsExport shows their progress.

.EXAMPLE
Start-HsExport -Provider gcp -Config @{ project = 'prod-1'; zone = 'europe-west1-b' } -KeyFile ./sa-key.json -Source web-1 -OutputPath /backups -Wait

Exports a GCE instance with a service account key file and waits for it.
#>
function Start-HsExport {
    [CmdletBinding(SupportsShouldProcess = $true)]
    [OutputType('HyperSdk.Export', 'HyperSdk.Result')]
    param(
        [Parameter(Mandatory = $true)]
        [ValidateSet('hyperv', 'aws', 'azure', 'vsphere', 'http', 'gcp')]
        [string] $Provider,

        [object] $Config,

        [System.Management.Automation.PSCredential] $Credential,

        [string] $KeyFile,

        [Parameter(Mandatory = $true, ValueFromPipeline = $true, ValueFromPipelineByPropertyName = $true)]
        [Alias('Name', 'Id')]
        [string[]] $Source,

        [Parameter(Mandatory = $true)]
        [string] $OutputPath,

        [hashtable] $Option,

        [switch] $Wait
    )
    begin {
        if ($Config -is [string]) {
            if ($Credential -or $KeyFile) { throw 'Give -Config as a hashtable to combine it with -Credential or -KeyFile.' }
            $configJson = $Config
        }
        else {
            if ($KeyFile) { $KeyFile = (Resolve-Path -LiteralPath $KeyFile -ErrorAction Stop).ProviderPath }
            $configJson = ConvertTo-HsJson (Merge-HsCredential -Config $Config -Provider $Provider -Credential $Credential -KeyFile $KeyFile)
        }
        $resolved = (Resolve-Path -LiteralPath $OutputPath -ErrorAction Stop).ProviderPath
        $client = [HyperSdk.HyperSdkClient]::new($Provider, $configJson)
        $started = [System.Collections.Generic.List[object]]::new()
        $any = $false
    }
    process {
        foreach ($s in $Source) {
            if (-not $PSCmdlet.ShouldProcess($s, "Export to $resolved")) { continue }
            $opts = @{}
            if ($Option) { foreach ($k in $Option.Keys) { $opts[$k] = $Option[$k] } }
            $opts['output_dir'] = $resolved
            try { $export = $client.StartExport($s, (ConvertTo-HsJson $opts), $null) }
            catch { if (-not $any) { $client.Dispose() }; throw }
            $record = New-HsExportRecord -Provider $Provider -Source $s -OutputPath $resolved -Export $export -Client $client
            $any = $true
            if ($Wait) { $started.Add($record) } else { $record }
        }
    }
    end {
        # The client is disposed with its last export (Receive-HsExportResult), or here when
        # nothing was started (-WhatIf, or every start failed).
        if (-not $any) { $client.Dispose() }
        if ($Wait -and $started.Count -gt 0) {
            $started | Wait-HsExport | Receive-HsExportResult
        }
    }
}

<#
.SYNOPSIS
Waits for exports to end, with a progress bar each.

.DESCRIPTION
Polls the exports every 250 ms on the pipeline thread and draws one progress bar per export
(under a parent bar for all of them). Ctrl+C cancels the exports it waits for; their cloud
cleanup runs before they end. Returns the export objects once they have ended.

.PARAMETER Id
Ids of exports of this session. Takes the Id property of piped objects: the export objects of
Start-HsExport, the progress objects of Get-HsExport, the results of Receive-HsExportResult -Keep.

.PARAMETER InputObject
Export, progress or result objects of this session (each is looked up by its Id).

.PARAMETER TimeoutSec
Stop waiting after this many seconds (the exports keep running). Default: no limit.

.INPUTS
Any object with an Id property: HyperSdk.Export, HyperSdk.Progress, HyperSdk.Result.

.OUTPUTS
HyperSdk.Export: the export objects waited for, once they have ended.

.LINK
Get-HsExport

.LINK
Receive-HsExportResult

.EXAMPLE
Get-HsExport | Wait-HsExport | Receive-HsExportResult

Waits for every export of this session, then returns their results and forgets them.

.EXAMPLE
Wait-HsExport -Id 3 -TimeoutSec 600

Waits at most ten minutes for export 3; it keeps running if it has not ended by then.
#>
function Wait-HsExport {
    [CmdletBinding(DefaultParameterSetName = 'Id')]
    [OutputType('HyperSdk.Export')]
    param(
        [Parameter(ParameterSetName = 'Id', Mandatory = $true, ValueFromPipelineByPropertyName = $true)]
        [int[]] $Id,

        [Parameter(ParameterSetName = 'Object', Mandatory = $true)]
        [object[]] $InputObject,

        [int] $TimeoutSec = -1
    )
    begin { $all = [System.Collections.Generic.List[object]]::new() }
    process {
        foreach ($r in (Get-HsExportRecord -InputObject $InputObject -Id $Id)) { $all.Add($r) }
    }
    end {
        $deadline = $null
        if ($TimeoutSec -ge 0) { $deadline = (Get-Date).AddSeconds($TimeoutSec) }
        $finished = $false
        try {
            while ($true) {
                $running = @($all | Where-Object { -not $_.Export.Completion.IsCompleted })
                $done = $all.Count - $running.Count
                Write-Progress -Id 99 -Activity 'hypersdk exports' -Status "$done of $($all.Count) ended" -PercentComplete ([int](100 * $done / [Math]::Max(1, $all.Count)))
                foreach ($r in $all) { Write-HsProgressBar -Record $r -Progress $r.Export.Progress -ParentId 99 }
                if ($running.Count -eq 0) { break }
                if ($deadline -and (Get-Date) -gt $deadline) {
                    Write-Warning "Stopped waiting after $TimeoutSec s; $($running.Count) export(s) still run."
                    break
                }
                Start-Sleep -Milliseconds 250
            }
            $finished = $true
        }
        finally {
            foreach ($r in $all) { Write-Progress -Id (100 + $r.Id) -Activity 'hypersdk export' -Completed }
            Write-Progress -Id 99 -Activity 'hypersdk exports' -Completed
            if (-not $finished) {
                # Ctrl+C (StopProcessing): cancel what we were waiting for, let cleanup run.
                foreach ($r in $all) { $r.Export.Cancel() }
                foreach ($r in $all) { [void] $r.Export.Wait([TimeSpan]::FromMinutes(5)) }
            }
        }
        $all
    }
}

<#
.SYNOPSIS
Cancels exports.

.DESCRIPTION
Asks each export to stop and returns at once (with -Wait, after their cloud cleanup has run:
cancel a task, abort a lease, revoke access, delete a temporary snapshot).

.PARAMETER Id
Ids of exports of this session. Takes the Id property of piped export, progress or result objects.

.PARAMETER InputObject
Export, progress or result objects of this session (each is looked up by its Id).

.PARAMETER Wait
Wait until each export has ended.

.INPUTS
Any object with an Id property: HyperSdk.Export, HyperSdk.Progress, HyperSdk.Result.

.OUTPUTS
None.

.LINK
Start-HsExport

.LINK
Receive-HsExportResult

.EXAMPLE
Get-HsExport -Id 2 | Stop-HsExport -Wait

Cancels export 2 and returns once its cloud cleanup has run.

.EXAMPLE
Get-HsExport | Where-Object { $_.Phase -eq 'WaitingForCloud' } | Stop-HsExport

Cancels the exports still waiting for the cloud, without waiting for them to end.
#>
function Stop-HsExport {
    [CmdletBinding(SupportsShouldProcess = $true, DefaultParameterSetName = 'Id')]
    param(
        [Parameter(ParameterSetName = 'Id', Mandatory = $true, ValueFromPipelineByPropertyName = $true)]
        [int[]] $Id,

        [Parameter(ParameterSetName = 'Object', Mandatory = $true)]
        [object[]] $InputObject,

        [switch] $Wait
    )
    process {
        foreach ($r in (Get-HsExportRecord -InputObject $InputObject -Id $Id)) {
            if ($PSCmdlet.ShouldProcess($r.Source, 'Cancel export')) {
                $r.Export.Cancel()
                if ($Wait) { [void] $r.Export.Wait([TimeSpan]::FromMinutes(5)) }
            }
        }
    }
}

<#
.SYNOPSIS
Shows the progress of exports started in this session.

.DESCRIPTION
Returns one progress object per export: phase, file i of n, bytes done and total, rate, ETA and
the cloud's status message. Every number is one the library read; nothing is estimated here.

.PARAMETER Id
Ids of exports; all of this session when left out. Takes the Id property of piped objects.

.INPUTS
Any object with an Id property: HyperSdk.Export, HyperSdk.Progress, HyperSdk.Result.

.OUTPUTS
HyperSdk.Progress: Id, Source, Phase, FileIndex, FileCount, FileName, BytesDone, BytesTotal,
RateBytesPerSecond, EtaSeconds, Message.

.LINK
Start-HsExport

.LINK
Wait-HsExport

.EXAMPLE
Get-HsExport | Format-Table Id, Source, Phase, BytesDone, BytesTotal, Message

Shows a table of this session's exports and where each one is.

.EXAMPLE
Get-HsExport -Id 2 | Select-Object Phase, EtaSeconds

Shows export 2's phase and its estimated seconds left (empty while unknown).
#>
function Get-HsExport {
    [CmdletBinding()]
    [OutputType('HyperSdk.Progress')]
    param(
        [Parameter(ValueFromPipelineByPropertyName = $true)]
        [int[]] $Id
    )
    process {
        foreach ($r in (Get-HsExportRecord -Id $Id)) { Get-HsProgressObject -Record $r }
    }
}

<#
.SYNOPSIS
Returns the results of ended exports and forgets them.

.DESCRIPTION
For each ended export, returns its result (status, files with sizes and verified checksums,
bytes fetched and resumed, cleanup errors) and removes it from the session's list. A failed
export writes an error record with the library's status and message; -Keep leaves it listed.

.PARAMETER Id
Ids of exports of this session. Takes the Id property of piped export, progress or result objects.

.PARAMETER InputObject
Export, progress or result objects of this session (each is looked up by its Id).

.PARAMETER Keep
Keep the exports in the session's list (and their client open).

.INPUTS
Any object with an Id property: HyperSdk.Export, HyperSdk.Progress, HyperSdk.Result.

.OUTPUTS
HyperSdk.Result: Id, Source, Status, Files, BytesFetched, BytesResumed, ElapsedMs, CleanupError,
Json.

.LINK
Wait-HsExport

.LINK
Start-HsExport

.EXAMPLE
Get-HsExport | Wait-HsExport | Receive-HsExportResult

Waits for every export of this session and returns their results.

.EXAMPLE
Receive-HsExportResult -Id 4 -Keep | Select-Object -ExpandProperty Files

Lists the files export 4 wrote, with sizes and checksums, and keeps it in the session's list.
#>
function Receive-HsExportResult {
    [CmdletBinding(DefaultParameterSetName = 'Id')]
    [OutputType('HyperSdk.Result')]
    param(
        [Parameter(ParameterSetName = 'Id', Mandatory = $true, ValueFromPipelineByPropertyName = $true)]
        [int[]] $Id,

        [Parameter(ParameterSetName = 'Object', Mandatory = $true)]
        [object[]] $InputObject,

        [switch] $Keep
    )
    process {
        foreach ($r in (Get-HsExportRecord -InputObject $InputObject -Id $Id)) {
            if (-not $r.Export.Completion.IsCompleted) {
                Write-Error -Message "Export $($r.Id) ($($r.Source)) is still running." -Category ResourceBusy
                continue
            }
            try {
                $result = $r.Export.GetResult()
                [pscustomobject]@{
                    PSTypeName   = 'HyperSdk.Result'
                    Id           = $r.Id
                    Source       = $r.Source
                    Status       = $result.Status
                    Files        = $result.Files
                    BytesFetched = $result.BytesFetched
                    BytesResumed = $result.BytesResumed
                    ElapsedMs    = $result.ElapsedMs
                    CleanupError = $result.CleanupError
                    Json         = $result.RawJson
                }
            }
            catch [HyperSdk.HyperSdkException] {
                $e = $_.Exception
                Write-Error -Exception $e -Message "Export $($r.Id) ($($r.Source)) ended $($e.Status) during $($e.Phase): $($e.Message)" -Category OperationStopped
            }
            if (-not $Keep) {
                $script:HsExports.Remove([string]$r.Id)
                $r.Export.Dispose()
                # Its client too, once no export of this session uses it any more.
                $client = $r.Client
                if (-not @($script:HsExports.Values | Where-Object { [object]::ReferenceEquals($_.Client, $client) })) { $client.Dispose() }
            }
        }
    }
}

Export-ModuleMember -Function 'Start-HsExport', 'Wait-HsExport', 'Stop-HsExport', 'Get-HsExport', 'Receive-HsExportResult', 'Export-HsHyperVVM'
