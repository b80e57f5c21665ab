@{
    RootModule        = 'HyperSdk.psm1'
    ModuleVersion     = '0.1.0'
    GUID              = '5b0e6c1e-2f4a-4d7e-9a51-6a2f1c3d8e90'
    Author            = 'hypersdk'
    Description       = 'Export VMs and disks (Hyper-V, AWS, Azure, vSphere, HTTP) to local disk with live progress, on the hypersdk library.'
    PowerShellVersion = '5.1'
    # HyperSdk.dll (the C# binding) and libhypersdk (hypersdk.dll / libhypersdk.so) sit beside
    # this manifest, or the native library is on the loader's path.
    RequiredAssemblies = @('HyperSdk.dll')
    FunctionsToExport = @(
        'Start-HsExport',
        'Wait-HsExport',
        'Stop-HsExport',
        'Get-HsExport',
        'Receive-HsExportResult',
        'Export-HsHyperVVM'
    )
    CmdletsToExport   = @()
    VariablesToExport = @()
    AliasesToExport   = @()
    PrivateData       = @{
        PSData = @{
            Tags       = @('Hyper-V', 'VM', 'Export', 'Backup', 'Migration', 'AWS', 'Azure', 'vSphere')
            ProjectUri = 'https://github.com/hypersdk/hypersdk'
        }
    }
}
