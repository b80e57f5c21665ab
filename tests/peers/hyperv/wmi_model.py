"""Hyper-V's WMI methods as export.ps1 calls them, for the stand-in only (tests): the official
parameter names and return codes of Msvm_VirtualSystemManagementService.ExportSystemDefinition
and Msvm_ImageManagementService.ConvertVirtualHardDisk, and the embedded instances they take
(CIM-XML, DMTF DSP0201: INSTANCE / PROPERTY / VALUE), checked against the documented classes
Msvm_VirtualSystemExportSettingData and Msvm_VirtualHardDiskSettingData. A malformed instance,
an unknown property, a value of the wrong type or outside the documented values is refused with
the method's return code 32773 (Invalid parameter), as Hyper-V refuses it.
"""

import re
import xml.etree.ElementTree as ET

# Microsoft's references: ExportSystemDefinition(ComputerSystem, ExportDirectory,
# ExportSettingData, [out] Job); ConvertVirtualHardDisk(SourcePath, VirtualDiskSettingData,
# [out] Job).
PARAMETERS = {
    "ExportSystemDefinition": {"ComputerSystem", "ExportDirectory", "ExportSettingData"},
    "ConvertVirtualHardDisk": {"SourcePath", "VirtualDiskSettingData"},
}
JOB_STARTED, COMPLETED = 4096, 0
INVALID_PARAMETER = 32773
RETURN_CODES = {0: "Completed with No Error", 4096: "Method Parameters Checked - Job Started",
                32768: "Failed", 32769: "Access Denied", 32770: "Not Supported", 32771: "Status is unknown",
                32772: "Timeout", 32773: "Invalid parameter", 32774: "System is in use",
                32775: "Invalid state for this operation", 32776: "Incorrect data type",
                32777: "System is not available", 32778: "Out of memory", 32779: "File not found"}

_COMMON = {"InstanceID": "string", "Caption": "string", "Description": "string", "ElementName": "string"}
CLASSES = {
    "Msvm_VirtualSystemExportSettingData": dict(_COMMON, CaptureLiveState="uint8", CopySnapshotConfiguration="uint8",
                                                CopyVmRuntimeInformation="boolean", CopyVmStorage="boolean",
                                                CreateVmExportSubdirectory="boolean", SnapshotVirtualSystem="string",
                                                BackupIntent="uint8", ExportForLiveMigration="boolean",
                                                DisableDifferentialOfIgnoredStorage="boolean",
                                                DifferentialBackupBase="string"),
    "Msvm_VirtualHardDiskSettingData": dict(_COMMON, Type="uint16", Format="uint16", Path="string",
                                            ParentPath="string", MaxInternalSize="uint64", BlockSize="uint32",
                                            LogicalSectorSize="uint32", PhysicalSectorSize="uint32",
                                            VirtualDiskId="string", DataAlignment="uint64", ParentTimestamp="datetime",
                                            ParentIdentifier="string", PmemAddressAbstractionType="uint16",
                                            IsPmemCompatible="boolean"),
}
ENUMS = {
    ("Msvm_VirtualSystemExportSettingData", "CopySnapshotConfiguration"): {0, 1, 2, 3},
    ("Msvm_VirtualSystemExportSettingData", "CaptureLiveState"): {0, 1, 2},
    ("Msvm_VirtualHardDiskSettingData", "Type"): {2, 3, 4},
    ("Msvm_VirtualHardDiskSettingData", "Format"): {2, 3, 4},
}
BITS = {"uint8": 8, "uint16": 16, "uint32": 32, "uint64": 64}


class Refused(Exception):
    def __init__(self, code, why):
        super().__init__(why)
        self.code = code


def method_arguments(text):
    """{method: [argument names]} of every Start-HyperVJob call in export.ps1's code."""
    found = {}
    for m in re.finditer(r"Start-HyperVJob\s+'\w+'\s+\$\w+\s+'(\w+)'\s+@\{([^}]*)\}", text):
        found.setdefault(m.group(1), []).append(re.findall(r"(\w+)\s*=", m.group(2)))
    return found


def check_arguments(method, names):
    """What WMI answers to a call with parameters the method does not have (or without one)."""
    want = PARAMETERS.get(method)
    if want is None or set(names) != want:
        raise Refused(None, f"Invalid method Parameter(s): {method}({', '.join(sorted(names))}); "
                            f"the method takes {sorted(want or [])}")


def parse_instance(text, cls):
    """The properties of one embedded instance of `cls`, as Hyper-V reads it: {name: value}
    (None for null). Raises Refused(32773) for anything it would not accept."""
    def bad(why):
        raise Refused(INVALID_PARAMETER, f"embedded instance of {cls}: {why}")

    try:
        root = ET.fromstring(text)
    except ET.ParseError as e:
        bad(f"not well-formed CIM-XML ({e})")
    if root.tag != "INSTANCE" or root.get("CLASSNAME") != cls:
        bad(f"an INSTANCE of {root.get('CLASSNAME')!r} ({root.tag}), not of {cls}")
    props = {}
    for p in root:
        name, ty = p.get("NAME"), p.get("TYPE")
        if p.tag != "PROPERTY" or name not in CLASSES[cls]:
            bad(f"{p.tag} {name!r} is not a property of the class")
        if ty != CLASSES[cls][name]:
            bad(f"{name} has TYPE {ty!r}, the class says {CLASSES[cls][name]}")
        if name in props:
            bad(f"{name} given twice")
        values = list(p)
        if not values:
            props[name] = None
            continue
        if len(values) != 1 or values[0].tag != "VALUE" or len(values[0]):
            bad(f"{name} does not hold one VALUE")
        raw = values[0].text or ""
        if ty in ("string", "datetime"):
            props[name] = raw
        elif ty == "boolean":
            if raw.lower() not in ("true", "false"):
                bad(f"{name}={raw!r} is not a boolean")
            props[name] = raw.lower() == "true"
        else:
            if not re.fullmatch(r"\d+", raw) or int(raw) >= 1 << BITS[ty]:
                bad(f"{name}={raw!r} is not a {ty}")
            props[name] = int(raw)
            allowed = ENUMS.get((cls, name))
            if allowed is not None and props[name] not in allowed:
                bad(f"{name}={raw} is none of the documented values {sorted(allowed)}")
    return props


def export_settings(text, checkpoint_paths):
    props = parse_instance(text, "Msvm_VirtualSystemExportSettingData")
    if props.get("CopySnapshotConfiguration") in (2, 3):
        # ExportOneSnapshot: "the snapshot identified by the SnapshotVirtualSystem property".
        if props.get("SnapshotVirtualSystem") not in checkpoint_paths:
            raise Refused(INVALID_PARAMETER, "SnapshotVirtualSystem names no checkpoint of this VM: "
                                             f"{props.get('SnapshotVirtualSystem')!r}")
    return props


def vhd_settings(text):
    props = parse_instance(text, "Msvm_VirtualHardDiskSettingData")
    # "The Path, Type, Format, ParentPath, BlockSize, and LogicalSectorSize properties must be set."
    for name in ("Path", "Type", "Format", "ParentPath", "BlockSize", "LogicalSectorSize"):
        if name not in props:
            raise Refused(INVALID_PARAMETER, f"Msvm_VirtualHardDiskSettingData without {name}")
    path = props["Path"] or ""
    # "The Format property must match the file name extension in the Path."
    ext = {2: ".vhd", 3: ".vhdx"}.get(props["Format"])
    if not ext or not path.lower().endswith(ext):
        raise Refused(INVALID_PARAMETER, f"Format {props['Format']} does not match the Path {path!r}")
    return props


def snapshot_path(checkpoint_id):
    """The object path export.ps1 builds for its checkpoint (COMPUTERNAME: the host's name)."""
    return ('\\\\HV-HOST\\root\\virtualization\\v2:Msvm_VirtualSystemSettingData.InstanceID="Microsoft:'
            + checkpoint_id.upper() + '"')


def xml_escape(s):
    """[Security.SecurityElement]::Escape."""
    return (s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
            .replace('"', "&quot;").replace("'", "&apos;"))
