# HyperSdk module: Export-HsHyperVVM, the one-liner for Hyper-V admins over Start-HsExport.
# Dot-sourced by HyperSdk.psm1, which exports it.

<#
.SYNOPSIS
Exports a Hyper-V VM to a folder, with real byte progress.

.DESCRIPTION
The one-liner for Hyper-V admins: exports the VM (full Export-VM layout, or only its VHD/VHDX
files with -VhdOnly) from this host or a remote one, waits with a progress bar that counts the
bytes really written against the disks' sizes, and returns the result. The VM is never stopped,
saved or otherwise changed. Needs the hyperv provider in the library.

.PARAMETER Name
The VM's name or id. Takes pipeline input, also from Get-VM objects.

.PARAMETER Path
The folder to export into. For a remote host: a share both machines reach, as this machine sees it.

.PARAMETER HostPath
For a remote host: the same share as the Hyper-V host sees it (e.g. \\nas\exports).

.PARAMETER ComputerName
A remote Hyper-V host (WinRM, or SSH remoting with -UseSsh); this machine when left out.

.PARAMETER UseSsh
Reach the remote host through PowerShell remoting over SSH (key-based) instead of WinRM.

.PARAMETER Credential
The credential for the remote host; sent on the helper's standard input, never on a command line.

.PARAMETER VhdOnly
Only the virtual disks of the current state (through a production checkpoint that is removed again).

.PARAMETER IncludeSnapshots
Include the VM's checkpoints in a full export.

.PARAMETER CaptureLiveState
With -IncludeSnapshots (the running VM itself is exported): what its state becomes, as
Export-VM's parameter of that name: CaptureSavedState (the default: memory included),
CaptureCrashConsistentState or CaptureDataConsistentState. The other exports read a checkpoint,
whose consistency is the VM's checkpoint type.

.INPUTS
System.String (VM names), or objects with a Name or VMName property such as Get-VM's.

.OUTPUTS
HyperSdk.Result: one per VM; see Receive-HsExportResult.

.LINK
Start-HsExport

.LINK
Receive-HsExportResult

.EXAMPLE
Export-HsHyperVVM -Name web01 -Path E:\Exports

Exports the local VM web01 (configuration and disks, Export-VM's layout) into E:\Exports\web01.

.EXAMPLE
Get-VM -Name 'sql*' | Export-HsHyperVVM -Path \\backup\vms -VhdOnly

Exports the current virtual disks of every VM whose name starts with sql, all at once with a
progress bar each, into a share.

.EXAMPLE
Export-HsHyperVVM -Name db1 -ComputerName hv2 -Credential (Get-Credential) -Path Z:\exports -HostPath \\nas\exports

Exports db1 from the host hv2 over WinRM into the share \\nas\exports, which this machine sees as Z:\exports.
#>
function Export-HsHyperVVM {
    [CmdletBinding(SupportsShouldProcess = $true)]
    [OutputType('HyperSdk.Result')]
    param(
        [Parameter(Mandatory = $true, ValueFromPipeline = $true, ValueFromPipelineByPropertyName = $true)]
        [Alias('VMName')]
        [string[]] $Name,

        [Parameter(Mandatory = $true)]
        [string] $Path,

        [string] $HostPath,

        [string] $ComputerName,

        [switch] $UseSsh,

        [System.Management.Automation.PSCredential] $Credential,

        [switch] $VhdOnly,

        [switch] $IncludeSnapshots,

        [ValidateSet('CaptureSavedState', 'CaptureCrashConsistentState', 'CaptureDataConsistentState')]
        [string] $CaptureLiveState
    )
    begin {
        $config = @{}
        $option = @{ export_type = 'full'; include_snapshots = [bool]$IncludeSnapshots }
        if ($ComputerName) {
            if (-not $HostPath) { throw 'A remote export needs -HostPath: the -Path share as the Hyper-V host sees it.' }
            $config['host'] = $ComputerName
            $config['transport'] = if ($UseSsh) { 'ssh' } else { 'winrm' }
            $option['host_output_dir'] = $HostPath
        }
        if ($VhdOnly) { $option['export_type'] = 'vhd-only' }
        if ($CaptureLiveState) {
            if (-not $IncludeSnapshots -or $VhdOnly) { throw '-CaptureLiveState goes with -IncludeSnapshots (the running VM itself is exported); the other exports read a checkpoint.' }
            $option['capture_live_state'] = $CaptureLiveState
        }
        $names = [System.Collections.Generic.List[string]]::new()
    }
    process {
        foreach ($n in $Name) {
            if ($PSCmdlet.ShouldProcess($n, "Export Hyper-V VM to $Path")) { $names.Add($n) }
        }
    }
    end {
        if ($names.Count -gt 0) {
            Start-HsExport -Provider hyperv -Config $config -Credential $Credential -Source $names.ToArray() -OutputPath $Path -Option $option -Wait -Confirm:$false
        }
    }
}
