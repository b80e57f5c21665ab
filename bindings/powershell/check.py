"""Static checks of the PowerShell module and the Hyper-V provider's scripts (no PowerShell runs
on our machines).

Every .ps1/.psm1/.psd1 under bindings/powershell parses with tree-sitter-powershell with no
ERROR or MISSING node; every function in the manifest's FunctionsToExport is defined in the root
module and listed in its Export-ModuleMember; each of them uses an approved verb and has
comment-based help with .SYNOPSIS, .DESCRIPTION, at least one .EXAMPLE and a .PARAMETER for
every parameter. `--self-test` runs the same checks on broken samples and fails unless each
defect is reported (so the checker itself can fail).
"""

import pathlib
import re
import sys

import tree_sitter as ts
import tree_sitter_powershell as tsp

import pipeline

PARSER = ts.Parser(ts.Language(tsp.language()))

# Get-Verb's approved verbs (PowerShell 7), the ones a module may use without a warning.
APPROVED = set("""
Add Clear Close Copy Enter Exit Find Format Get Hide Join Lock Move New Open Optimize Pop Push
Redo Remove Rename Reset Resize Search Select Set Show Skip Split Step Switch Undo Unlock Watch
Connect Disconnect Read Receive Send Write Backup Checkpoint Compare Compress Convert ConvertFrom
ConvertTo Dismount Edit Expand Export Group Import Initialize Limit Merge Mount Out Publish
Restore Save Sync Unpublish Update Debug Measure Ping Repair Resolve Test Trace Approve Assert
Build Complete Confirm Deny Deploy Disable Enable Install Invoke Register Request Restart Resume
Start Stop Submit Suspend Uninstall Unregister Wait Block Grant Protect Revoke Unblock Unprotect
Use
""".split())


def nodes(n, kind):
    if n.type == kind:
        yield n
    for c in n.children:
        yield from nodes(c, kind)


def parse_errors(src):
    out = []

    def walk(n):
        if n.type == "ERROR" or n.is_missing:
            line = n.start_point[0] + 1
            out.append(f"line {line}: {'missing ' + n.type if n.is_missing else 'syntax error'}: "
                       f"{src[n.start_byte:n.start_byte + 60].decode(errors='replace')!r}")
            return
        for c in n.children:
            walk(c)

    walk(PARSER.parse(src).root_node)
    return out


def strings_of(node):
    return [s.text.decode().strip("'\"") for s in nodes(node, "string_literal")]


def manifest_exports(src):
    tree = PARSER.parse(src)
    for e in nodes(tree.root_node, "hash_entry"):
        key = e.child_by_field_name("key") or next(nodes(e, "key_expression"), None)
        if key is not None and key.text.decode().strip() == "FunctionsToExport":
            return strings_of(e)
    return None


def check_module(psm1, exported, readme=""):
    """Problems of the functions `exported` in the module source `psm1` (and of the pipelines
    the README writes with them)."""
    problems = []
    model, types = pipeline.model(PARSER, psm1)
    problems += pipeline.definition_problems(model, exported)
    tree = PARSER.parse(psm1)
    functions = {}
    comments = list(nodes(tree.root_node, "comment"))
    for f in nodes(tree.root_node, "function_statement"):
        name = next(nodes(f, "function_name")).text.decode()
        # Comment-based help: a <# … #> block right before the function (only blank space between).
        help_text = ""
        for c in comments:
            if c.end_byte <= f.start_byte and not psm1[c.end_byte:f.start_byte].strip() and c.text.startswith(b"<#"):
                help_text = c.text.decode()
        params = [v.text.decode().lstrip("$") for sp in nodes(f, "script_parameter")
                  for v in sp.children if v.type == "variable"]
        functions[name] = (help_text, params)
    member_lists = []
    for p in nodes(tree.root_node, "command"):
        if p.text.startswith(b"Export-ModuleMember"):
            member_lists.append(strings_of(p))
    for name in exported:
        if name not in functions:
            problems.append(f"{name}: listed in FunctionsToExport but not defined")
            continue
        verb = name.split("-", 1)[0]
        if "-" not in name or verb not in APPROVED:
            problems.append(f"{name}: {verb!r} is not an approved verb")
        help_text, params = functions[name]
        upper = help_text.upper()
        for section in (".SYNOPSIS", ".DESCRIPTION", ".EXAMPLE", ".INPUTS", ".OUTPUTS", ".LINK"):
            if section not in upper:
                problems.append(f"{name}: comment-based help lacks {section}")
        fn = model[name.lower()]
        outputs_help = re.split(r"(?m)^\s*\.[A-Z]+\b|#>", re.split(r"(?im)^\s*\.OUTPUTS\s*$", help_text + "\n.OUTPUTS\n")[1])[0]
        for t in fn.outputs:
            if t not in outputs_help:
                problems.append(f"{name}: [OutputType('{t}')] not named under .OUTPUTS")
        for block in re.split(r"(?im)^\s*\.EXAMPLE\s*$", help_text)[1:]:
            block = re.split(r"(?m)^\s*\.[A-Z]+\b|#>", block)[0].strip("\n")
            if "\n\n" not in block.rstrip():
                problems.append(f"{name}: an .EXAMPLE without an explanation after its code: {block.strip()[:50]!r}")
        for line in pipeline.help_examples(help_text):
            problems += [f"{name} help: {p}" for p in pipeline.check_pipeline(line, model, types)]
        for prm in params:
            if f".PARAMETER {prm.upper()}" not in upper:
                problems.append(f"{name}: no .PARAMETER help for -{prm}")
        if member_lists and not any(name in m for m in member_lists):
            problems.append(f"{name}: not in Export-ModuleMember")
    for line in pipeline.readme_pipelines(readme):
        problems += [f"README: {p}" for p in pipeline.check_pipeline(line, model, types)]
    return problems


def check_tree(root, readme=""):
    problems = []
    files = sorted(p for p in root.rglob("*") if p.suffix in (".ps1", ".psm1", ".psd1"))
    if not files:
        return ["no PowerShell files found"]
    for f in files:
        for e in parse_errors(f.read_bytes()):
            problems.append(f"{f.relative_to(root)}: {e}")
    for psd1 in (p for p in files if p.suffix == ".psd1"):
        exported = manifest_exports(psd1.read_bytes())
        if not exported:
            problems.append(f"{psd1.name}: no FunctionsToExport")
            continue
        psm1 = psd1.with_suffix(".psm1")
        if not psm1.exists():
            problems.append(f"{psd1.name}: no root module {psm1.name}")
            continue
        # A script beside the root module counts only if the root module dot-sources it.
        root_text = psm1.read_text()
        for ps1 in sorted(psm1.parent.glob("*.ps1")):
            if not any(l.strip().startswith(".") and f"'{ps1.name}'" in l for l in root_text.splitlines()):
                problems.append(f"{psm1.name}: does not dot-source {ps1.name} beside it")
        # The root module and the scripts it dot-sources (HyperSdk.Session.ps1, ...), as one source.
        source = psm1.read_bytes() + b"".join(b"\n" + p.read_bytes() for p in sorted(psm1.parent.glob("*.ps1")))
        problems += [f"{psm1.name}: {p}" for p in check_module(source, exported, readme)]
    return problems


GOOD = b"""<#
.SYNOPSIS
Gets a thing.
.DESCRIPTION
Gets it.
.PARAMETER Name
The name.
.INPUTS
None.
.OUTPUTS
Thing.Info
.LINK
Stop-Thing
.EXAMPLE
Get-Thing -Name x | Stop-Thing

Gets x and stops it.
.EXAMPLE
Get-Thing | Format-Table Id, Name

Lists them.
#>
function Get-Thing {
    [CmdletBinding()]
    [OutputType('Thing.Info')]
    param([string] $Name)
    [pscustomobject]@{ PSTypeName = 'Thing.Info'; Id = 1; Name = $Name }
}

<#
.SYNOPSIS
Stops things.
.DESCRIPTION
Stops them.
.PARAMETER Id
Ids; from the pipeline by property name.
.INPUTS
Thing.Info
.OUTPUTS
None.
.LINK
Get-Thing
.EXAMPLE
Stop-Thing -Id 1

Stops thing 1.
#>
function Stop-Thing {
    [CmdletBinding()]
    param(
        [Parameter(Mandatory = $true, ValueFromPipelineByPropertyName = $true)]
        [int[]] $Id
    )
    $Id
}
"""
BOTH = ["Get-Thing", "Stop-Thing"]


def self_test():
    def swap(old, new):
        assert old in GOOD, old
        return GOOD.replace(old, new)

    cases = {
        "syntax error": (b"function Get-Thing { param([string] $Name) if ( { }\n", None, ""),
        "unapproved verb": (swap(b"function Get-Thing", b"function Fetch-Thing"), ["Fetch-Thing"], ""),
        "no help": (GOOD.split(b"#>\n", 1)[1], ["Get-Thing"], ""),
        "undocumented parameter": (swap(b"param([string] $Name)", b"param([string] $Name, [int] $Count)"), ["Get-Thing"], ""),
        "not defined": (GOOD, BOTH + ["Remove-Thing"], ""),
        "no .LINK": (swap(b".LINK\nStop-Thing\n", b""), BOTH, ""),
        "no .INPUTS": (swap(b".INPUTS\nNone.\n", b""), BOTH, ""),
        "OutputType not under .OUTPUTS": (swap(b".OUTPUTS\nThing.Info", b".OUTPUTS\nThings"), BOTH, ""),
        "example without explanation": (swap(b"\n\nStops thing 1.", b""), BOTH, ""),
        "pipeline binds nothing (no ValueFromPipelineByPropertyName)": (
            swap(b"ValueFromPipelineByPropertyName = $true", b"Position = 0"), BOTH, ""),
        "pipeline passes an object without the property bound by name": (
            swap(b"Id = 1; Name", b"Key = 1; Name"), BOTH, ""),
        "by-value [object] parameter without [PSTypeName()]": (
            swap(b"[int[]] $Id", b"[int[]] $Id,\n [Parameter(ValueFromPipeline = $true)] [object[]] $InputObject"), BOTH, ""),
        "example with an unknown parameter": (swap(b"Get-Thing -Name x |", b"Get-Thing -Nmae x |"), BOTH, ""),
        "Format-Table of a property the object lacks": (swap(b"Format-Table Id, Name", b"Format-Table Id, Size"), BOTH, ""),
        "README pipeline into a cmdlet that binds nothing": (GOOD, BOTH, "```powershell\n'a' | Stop-Thing\n```\n"),
        "README $_ of a property the object lacks": (
            GOOD, BOTH, "```powershell\nGet-Thing | Where-Object { $_.Export.Done }\n```\n"),
    }
    good = check_module(GOOD, BOTH, "```powershell\nGet-Thing | Stop-Thing\nGet-Thing | ForEach-Object { $_.Name }\n```\n")
    assert not good and not parse_errors(GOOD), f"the good sample must pass: {good}"
    failed = 0
    for what, (src, exported, readme) in cases.items():
        found = parse_errors(src) if exported is None else check_module(src, exported, readme)
        if not found:
            print(f"self-test: the checker missed: {what}")
            failed += 1
    return failed


def main():
    root = pathlib.Path(__file__).resolve().parent
    if "--self-test" in sys.argv:
        failed = self_test()
        print("self-test:", "ok" if not failed else f"{failed} defect(s) not caught")
        return 1 if failed else 0
    problems = check_tree(root, (root.parent.parent / "README.md").read_text())
    # The Hyper-V provider's scripts, compiled into the library: they must parse too.
    scripts = root.parent.parent / "src" / "providers" / "hyperv" / "scripts"
    found = sorted(scripts.glob("*.ps1"))
    if not found:
        problems.append(f"no scripts in {scripts}")
    for f in found:
        for e in parse_errors(f.read_bytes()):
            problems.append(f"{f.relative_to(root.parent.parent)}: {e}")
    for p in problems:
        print("powershell:", p)
    n = len(list(root.rglob("*.ps*1"))) + len(found)
    print(f"powershell: {n} file(s) checked, {len(problems)} problem(s)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
