//! The embedded instances `export.ps1` hands to Hyper-V's WMI methods, written here so that
//! every value is escaped once, in one place, and the stand-in can check what reaches Hyper-V.
//! An embedded instance is a string parameter holding the instance in CIM-XML (DMTF DSP0201,
//! DTD 2.0: `<INSTANCE CLASSNAME=…><PROPERTY NAME=… TYPE=…><VALUE>…`), what
//! `ManagementBaseObject.GetText(TextFormat.CimDtd20)` writes; a property with no `VALUE` is
//! null. Sources (docs/DESIGN-NOTES.md, Hyper-V): Microsoft's references of
//! `Msvm_VirtualSystemManagementService.ExportSystemDefinition`,
//! `Msvm_VirtualSystemExportSettingData`, `Msvm_ImageManagementService.ConvertVirtualHardDisk`
//! and `Msvm_VirtualHardDiskSettingData`.

/// The placeholder `export.ps1` replaces with the checkpoint's object path (only it knows the
/// checkpoint's id), escaped for XML.
pub(super) const SNAPSHOT_PLACEHOLDER: &str = "{snapshot}";

/// `Msvm_VirtualSystemExportSettingData.CopySnapshotConfiguration`.
const EXPORT_ALL_SNAPSHOTS: u8 = 0;
const EXPORT_ONE_SNAPSHOT: u8 = 2;
/// `CaptureLiveState` CaptureSavedState: Export-VM's default for a running VM.
const CAPTURE_SAVED_STATE: u8 = 1;

/// `CaptureLiveState` of Export-VM's `-CaptureLiveState` name (any case): WMI's
/// CaptureCrashConsistentState (0), CaptureSavedState (1) and CaptureAppConsistentState (2),
/// which Export-VM calls CaptureDataConsistentState.
pub(super) fn capture_live_state(name: &str) -> Option<u8> {
    match name.to_ascii_lowercase().as_str() {
        "capturecrashconsistentstate" => Some(0),
        "capturesavedstate" => Some(CAPTURE_SAVED_STATE),
        "capturedataconsistentstate" | "captureappconsistentstate" => Some(2),
        _ => None,
    }
}
/// `Msvm_VirtualHardDiskSettingData.Type` Dynamic; `Format` VHD and VHDX.
const TYPE_DYNAMIC: u16 = 3;
const FORMAT_VHD: u16 = 2;
const FORMAT_VHDX: u16 = 3;

fn escape(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&apos;"),
            c => o.push(c),
        }
    }
    o
}

/// One instance: `(name, CIM type, value)`, `None` for null.
fn instance(class: &str, props: &[(&str, &str, Option<String>)]) -> String {
    let mut s = format!("<INSTANCE CLASSNAME=\"{class}\">");
    for (name, ty, value) in props {
        s.push_str(&format!("<PROPERTY NAME=\"{name}\" TYPE=\"{ty}\">"));
        if let Some(v) = value {
            s.push_str(&format!("<VALUE>{}</VALUE>", escape(v)));
        }
        s.push_str("</PROPERTY>");
    }
    s.push_str("</INSTANCE>");
    s
}

/// The settings of ExportSystemDefinition: the VM with all its checkpoints (what Export-VM
/// does), or only the export's own checkpoint (what Export-VMSnapshot does), each in a
/// subfolder named after the VM.
pub(super) fn export_setting_data(all_snapshots: bool, capture: Option<&str>) -> String {
    let t = || Some("true".to_string());
    let mut props = vec![
        (
            "CopySnapshotConfiguration",
            "uint8",
            Some(
                if all_snapshots {
                    EXPORT_ALL_SNAPSHOTS
                } else {
                    EXPORT_ONE_SNAPSHOT
                }
                .to_string(),
            ),
        ),
        ("CopyVmStorage", "boolean", t()),
        ("CopyVmRuntimeInformation", "boolean", t()),
        ("CreateVmExportSubdirectory", "boolean", t()),
        (
            "CaptureLiveState",
            "uint8",
            Some(
                capture
                    .and_then(capture_live_state)
                    .unwrap_or(CAPTURE_SAVED_STATE)
                    .to_string(),
            ),
        ),
    ];
    if !all_snapshots {
        props.push((
            "SnapshotVirtualSystem",
            "string",
            Some(SNAPSHOT_PLACEHOLDER.to_string()),
        ));
    }
    instance("Msvm_VirtualSystemExportSettingData", &props)
}

/// The new disk of ConvertVirtualHardDisk: a dynamic disk at `dest` (a host path), of the
/// format its extension names, with no parent; BlockSize and LogicalSectorSize 0 (Hyper-V's
/// defaults). "The Format property must match the file name extension in the Path."
pub(super) fn vhd_setting_data(dest: &str) -> String {
    let format = if dest.to_ascii_lowercase().ends_with(".vhd") {
        FORMAT_VHD
    } else {
        FORMAT_VHDX
    };
    instance(
        "Msvm_VirtualHardDiskSettingData",
        &[
            ("Path", "string", Some(dest.to_string())),
            ("Type", "uint16", Some(TYPE_DYNAMIC.to_string())),
            ("Format", "uint16", Some(format.to_string())),
            ("ParentPath", "string", None),
            ("BlockSize", "uint32", Some("0".into())),
            ("LogicalSectorSize", "uint32", Some("0".into())),
        ],
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instances_are_cim_xml_with_every_value_escaped() {
        let v = vhd_setting_data("C:\\out\\a&b <\"x'>.vhd");
        assert!(v.starts_with("<INSTANCE CLASSNAME=\"Msvm_VirtualHardDiskSettingData\">"));
        assert!(v.contains(
            "<PROPERTY NAME=\"Path\" TYPE=\"string\"><VALUE>C:\\out\\a&amp;b &lt;&quot;x&apos;&gt;.vhd</VALUE></PROPERTY>"
        ));
        assert!(v.contains("<PROPERTY NAME=\"Format\" TYPE=\"uint16\"><VALUE>2</VALUE>"));
        assert!(v.contains("<PROPERTY NAME=\"ParentPath\" TYPE=\"string\"></PROPERTY>"));
        assert!(
            vhd_setting_data("D:\\x.vhdx")
                .contains("<VALUE>3</VALUE></PROPERTY><PROPERTY NAME=\"ParentPath\"")
        );
        let one = export_setting_data(false, None);
        assert!(one.contains(
            "<PROPERTY NAME=\"CopySnapshotConfiguration\" TYPE=\"uint8\"><VALUE>2</VALUE>"
        ));
        assert!(one.contains("<VALUE>{snapshot}</VALUE>"));
        let all = export_setting_data(true, Some("captureCrashConsistentState"));
        assert!(
            all.contains("<PROPERTY NAME=\"CaptureLiveState\" TYPE=\"uint8\"><VALUE>0</VALUE>")
        );
        assert!(all.contains(
            "<PROPERTY NAME=\"CopySnapshotConfiguration\" TYPE=\"uint8\"><VALUE>0</VALUE>"
        ));
        assert!(!all.contains("SnapshotVirtualSystem"));
    }
}
