# HyperSdk module: the session's export table and how an export is shown (progress objects and
# bars). Dot-sourced by HyperSdk.psm1; nothing here is exported.

function New-HsExportRecord {
    param([string] $Provider, [string] $Source, [string] $OutputPath, [object] $Export, [object] $Client)
    $record = [pscustomobject]@{
        PSTypeName = 'HyperSdk.Export'
        Id         = $script:HsNextId
        Provider   = $Provider
        Source     = $Source
        OutputPath = $OutputPath
        Started    = Get-Date
        Export     = $Export
        Client     = $Client
    }
    $script:HsNextId++
    $script:HsExports[[string]$record.Id] = $record
    return $record
}

function Get-HsExportRecord {
    # The session's export records: those of -InputObject (records, progress or result objects:
    # each is looked up by its Id), of -Id, or all of them.
    param([object[]] $InputObject, [int[]] $Id)
    if ($InputObject) {
        $Id = foreach ($o in $InputObject) {
            if ($o -is [int]) { $o }
            elseif ($null -ne $o -and $o.PSObject.Properties['Id']) { [int]$o.Id }
            else { Write-Error -Message "Not an export of this module: $o" -Category InvalidArgument }
        }
        if (-not $Id) { return }
    }
    if ($Id) {
        foreach ($i in $Id) {
            $r = $script:HsExports[[string]$i]
            if (-not $r) { Write-Error -Message "No export with id $i in this session." -Category ObjectNotFound; continue }
            $r
        }
        return
    }
    return @($script:HsExports.Values)
}

function Get-HsProgressObject {
    param([object] $Record)
    $p = $Record.Export.Progress
    [pscustomobject]@{
        PSTypeName         = 'HyperSdk.Progress'
        Id                 = $Record.Id
        Source             = $Record.Source
        Phase              = $p.Phase
        FileIndex          = $p.FileIndex
        FileCount          = $p.FileCount
        FileName           = $p.FileName
        BytesDone          = $p.BytesDone
        BytesTotal         = $p.BytesTotal
        RateBytesPerSecond = $p.RateBytesPerSecond
        EtaSeconds         = $p.EtaSeconds
        Message            = $p.Message
    }
}

function Write-HsProgressBar {
    param([object] $Record, [object] $Progress, [int] $ParentId)
    $percent = 0
    if ($Progress.BytesTotal -gt 0) { $percent = [int](100 * $Progress.BytesDone / $Progress.BytesTotal) }
    $status = '{0} - file {1}/{2} {3}' -f $Progress.Phase, $Progress.FileIndex, $Progress.FileCount, $Progress.FileName
    if ($Progress.Message) { $status = $status + ' - ' + $Progress.Message }
    $bar = @{
        Activity        = "hypersdk export $($Record.Id): $($Record.Source)"
        Status          = $status
        PercentComplete = [Math]::Min(100, [Math]::Max(0, $percent))
        Id              = 100 + $Record.Id
        ParentId        = $ParentId
    }
    if ($null -ne $Progress.EtaSeconds) { $bar['SecondsRemaining'] = [int]$Progress.EtaSeconds }
    Write-Progress @bar
}
