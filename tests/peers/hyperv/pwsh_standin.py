"""Stand-in for PowerShell, the Hyper-V module and Hyper-V's WMI methods ONLY (no PowerShell or Hyper-V exists on our machines).

Called as `pwsh` by the library: `--state DIR -NoProfile -NonInteractive -EncodedCommand B64`
(the `--state DIR` comes from the test's wrapper script). It decodes the command (UTF-16LE),
checks that it parses as Windows PowerShell 5.1 would (tree-sitter-powershell: zero ERROR
nodes, no PowerShell-7-only syntax) and that it is
byte for byte one of the crate's own scripts (src/providers/hyperv/scripts), reads the JSON
document on stdin, and acts as that script would against a fake Hyper-V host described by
DIR/state.json (hyperv_host.py): VMs whose disks are real VHDX files, checkpoint chains
(.avhdx), pass-through disks, export and conversion "jobs" that run outside this process (their
own session, like the Hyper-V service) and write the files gradually, other parties' jobs,
faults on demand. Every call is recorded in DIR/calls.jsonl (decoded script, argv and
environment as /proc shows them, the input) so tests can check what reached PowerShell and how.

What the host does depends on what the script does, and the stand-in does not run PowerShell:
it reads the few constructs that decide a documented behaviour from the script's text
(`script_model`), and otherwise acts as the host would on the old script:
  - the console (Windows PowerShell 5.1, and pwsh on Windows) decodes stdin and encodes stdout
    in the OEM code page (state `oem_code_page`, default 437) unless the script set
    `[Console]::InputEncoding` / `OutputEncoding` to a UTF8Encoding before reading stdin;
  - Get-VHD of a pass-through disk's empty Path fails unless the script skips such drives;
  - Convert-VHD refuses a disk still attached to a running VM unless the script converts the
    exported copy, and refuses a destination that is not .vhd/.vhdx;
  - `Invoke-Command -HostName` does not exist in Windows PowerShell 5.1 (state `ps_version`);
  - a remote session cannot reach a share (the "second hop") unless CredSSP was chosen;
  - Hyper-V's WMI methods (wmi_model.py) take their official parameter names and well-formed
    embedded instances of the documented classes, and return 4096 with the job in `Job`;
  - RequestStateChange can refuse to stop a job (fault `refuse_stop`): only a script that
    checks its return code reports the job as not stopped.
"""

import base64
import json
import os
import re
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
SCRIPTS = os.path.join(HERE, "..", "..", "..", "src", "providers", "hyperv", "scripts")

import hyperv_host as host  # noqa: E402
import wmi_model  # noqa: E402


def parse_errors(text):
    import tree_sitter
    import tree_sitter_powershell

    parser = tree_sitter.Parser(tree_sitter.Language(tree_sitter_powershell.language()))
    tree = parser.parse(text.encode("utf-8"))
    bad = []

    def walk(n):
        if n.type == "ERROR" or n.is_missing:
            bad.append(n.start_point)
        for c in n.children:
            walk(c)

    walk(tree.root_node)
    return bad


def ps7_only(text):
    """Syntax Windows PowerShell 5.1 (the default on Hyper-V hosts, and the remote endpoint) does
    not have: `&&`/`||` pipeline chains and `ForEach-Object -Parallel` (PowerShell 7). The
    grammar already rejects `? :`, `??`, `??=` and `?.`."""
    import tree_sitter
    import tree_sitter_powershell

    parser = tree_sitter.Parser(tree_sitter.Language(tree_sitter_powershell.language()))
    tree = parser.parse(text.encode("utf-8"))
    found = []

    def walk(n):
        if n.type == "pipeline_chain_tail":
            found.append((n.start_point, "&&/||"))
        if n.type == "command_parameter" and n.text.decode("utf-8", "replace").lower() == "-parallel":
            found.append((n.start_point, "-Parallel"))
        for c in n.children:
            walk(c)

    walk(tree.root_node)
    return found


def which_script(text):
    for name in sorted(os.listdir(SCRIPTS)):
        if name.endswith(".ps1"):
            with open(os.path.join(SCRIPTS, name), encoding="utf-8") as f:
                if f.read() == text:
                    return name[:-4]
    return None


def checked_script(text):
    errs = parse_errors(text)
    if errs:
        sys.stderr.write(f"ParserError: the command does not parse as PowerShell at {errs[:3]}\n")
        sys.exit(1)
    new = ps7_only(text)
    if new:
        sys.stderr.write(f"ParserError: Windows PowerShell 5.1 cannot parse {new[:3]} (PowerShell 7 syntax)\n")
        sys.exit(1)
    name = which_script(text)
    if name is None:
        sys.stderr.write("stand-in: the command is not one of hypersdk's scripts\n")
        sys.exit(66)
    return name


def code_only(text):
    """The script without its comments (a construct in a comment does nothing)."""
    return "\n".join(line.split("#", 1)[0] if not line.lstrip().startswith("#") else ""
                     for line in text.splitlines())


def script_model(text):
    """The constructs of a script that decide how the host treats it."""
    code = code_only(text)
    read = code.find("[Console]::In.ReadToEnd()")
    utf8_vars = set(re.findall(r"(\$\w+)\s*=\s*New-Object\s+System\.Text\.UTF8Encoding\b", code))

    def sets_utf8(prop):
        for m in re.finditer(r"\[Console\]::" + prop + r"\s*=\s*(\$\w+)", code):
            if m.group(1) in utf8_vars and (read < 0 or m.start() < read):
                return True
        return False

    return {
        "utf8_in": sets_utf8("InputEncoding"),
        "utf8_out": sets_utf8("OutputEncoding"),
        "skips_passthrough": bool(re.search(r"\$null\s+-ne\s+\$drive\.DiskNumber", code)),
        "walks_chain": bool(re.search(r"while\s*\(\$link\)", code)) and "ParentPath" in code,
        "converts_export": (bool(re.search(r"Convert-VHD\s+-Path\s+\$exported\b", code))
                            and "Export-VMSnapshot -VMSnapshot $checkpoint -Path $snap" in code)
                           or (bool(re.search(r"'ConvertVirtualHardDisk'\s+@\{\s*SourcePath\s*=\s*\$exported\b", code))
                               and "ExportDirectory = $snap" in code),
        # Hyper-V's WMI methods called directly, their return code checked and the job they
        # returned (out parameter Job) reported.
        "calls_wmi": bool(re.search(r"Invoke-CimMethod\s+-InputObject\s+\$service\s+-MethodName\s+\$method", code))
                     and bool(re.search(r"\$r\.ReturnValue\s+-eq\s+4096", code))
                     and "$r.Job.InstanceID" in code,
        "wmi_calls": wmi_model.method_arguments(code),
        "accepts_completed": bool(re.search(r"elseif\s*\(\$r\.ReturnValue\s+-ne\s+0\)", code)),
        "checks_return_code": bool(re.search(r"elseif\s*\(\$r\.ReturnValue\s+-ne\s+0\)\s*\{\s*throw", code)),
        "checks_ps_version": bool(re.search(r"\$PSVersionTable\.PSVersion\.Major\s+-lt\s+6", code)),
        "passes_authentication": bool(re.search(r"\$params\.Authentication\s*=", code)),
        "checks_stop_code": bool(re.search(r"\$r\.ReturnValue\s+-eq\s+0\s+-or\s+\$r\.ReturnValue\s+-eq\s+4096", code)),
    }


def record(root, script, text, stdin, inp):
    with open("/proc/self/cmdline", "rb") as f:
        argv = f.read().decode("utf-8", "replace")
    with open("/proc/self/environ", "rb") as f:
        environ = f.read().decode("utf-8", "replace")
    line = json.dumps({"script": script, "text": text, "argv": argv, "environ": environ,
                       "stdin": stdin, "input": inp, "pid": os.getpid(), "pgid": os.getpgid(0)})
    fd = os.open(os.path.join(root, "calls.jsonl"), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    os.write(fd, (line + "\n").encode())
    os.close(fd)


def version_tuple(v):
    return tuple(int(x) for x in re.findall(r"\d+", str(v))[:2])


def main():
    argv = sys.argv[1:]
    if argv[:1] == ["--writer"]:
        host.writer_main(argv[1])
        return
    if len(argv) != 6 or argv[0] != "--state" or argv[2:5] != ["-NoProfile", "-NonInteractive", "-EncodedCommand"]:
        sys.stderr.write(f"stand-in: unexpected arguments {argv[2:]}\n")
        sys.exit(64)
    root = argv[1]
    text = base64.b64decode(argv[5]).decode("utf-16-le")
    script = checked_script(text)
    model = script_model(text)
    with host.State(root) as s:
        oem = "cp" + str(s.get("oem_code_page", 437))
        ps_version = s.get("ps_version", "7.4.6")
        remote = s.get("remote", {})
    # The console's code pages: OEM unless the script set UTF-8 first.
    host.OUT_ENCODING = "utf-8" if model["utf8_out"] else oem
    raw = sys.stdin.buffer.read()
    stdin = raw.decode("utf-8" if model["utf8_in"] else oem, errors="replace")
    try:
        inp = json.loads(stdin)
    except ValueError as e:
        host.fail("InvalidArgument", "System.ArgumentException,Microsoft.PowerShell.Commands.ConvertFromJsonCommand",
                  f"Invalid JSON primitive: {e}")
    record(root, script, text, stdin, inp)
    ctx = {"root": root, "session": "local", "authentication": None}
    if script == "remote":
        inner_text = inp["script"]
        inner = checked_script(inner_text)
        if inner == "remote":
            sys.exit(66)
        if inp["transport"] == "ssh" and version_tuple(ps_version) < (6, 0):
            if model["checks_ps_version"]:
                host.fail("NotImplemented", "PowerShellTooOldForSsh",
                          "PowerShell remoting over SSH needs PowerShell 6 or later (pwsh); this is "
                          f"Desktop PowerShell {ps_version}")
            # Windows PowerShell 5.1's Invoke-Command has no -HostName.
            host.fail("InvalidArgument", "NamedParameterNotFound,Microsoft.PowerShell.Commands.InvokeCommandCommand",
                      "A parameter cannot be found that matches parameter name 'HostName'.")
        if inp["transport"] != remote.get("transport") or inp["host"] != remote.get("host"):
            host.fail("OpenError", "PSRemotingTransportException", f"Connecting to remote server {inp['host']} failed")
        if inp.get("username") != remote.get("username") or inp.get("password") != remote.get("password"):
            host.fail("OpenError", "AccessDenied,PSSessionStateBroken", "Access is denied.")
        host.REMOTE_PASSWORD = inp.get("password")
        auth = (inp.get("authentication") if model["passes_authentication"] else None) or "Default"
        ctx = {"root": root, "session": "remote", "authentication": auth}
        script, inp = inner, json.loads(inp["input"])
        model = script_model(inner_text)
    ctx["model"] = model
    host.ACTIONS[script](ctx, inp)


if __name__ == "__main__":
    main()
