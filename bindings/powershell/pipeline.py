"""What a pipeline passes between the module's cmdlets, checked statically (no PowerShell here).

The module is read with tree-sitter-powershell: each function's parameters (type, [PSTypeName()],
[Alias()], Mandatory, ValueFromPipeline, ValueFromPipelineByPropertyName, parameter sets), its
[OutputType()] and the properties of every `[pscustomobject]@{ PSTypeName = 'X'; ... }` it builds.
Then every pipeline written in the help's .EXAMPLE blocks and in the README's powershell blocks
is bound the way PowerShell binds pipeline input (about_Parameters "Accepts pipeline input":
first by value, then by property name, a parameter set whose mandatory parameters are all bound):

- `A | B` where B is a module cmdlet: some parameter of B takes what A outputs, by value (a
  parameter typed for it: [string] for strings, [PSTypeName('X')] for the module's objects) or
  by property name (a parameter or alias named like one of its properties);
- a ValueFromPipeline parameter typed [object]/[psobject] without [PSTypeName()] is refused: it
  binds anything, so `Get-HsExport | Wait-HsExport` passed HyperSdk.Progress objects where
  HyperSdk.Export ones were read (no `.Export`; StrictMode 3 throws);
- `-Name` parameters written in an example exist; `Format-Table`/`Select-Object`/`Sort-Object`
  property names and `$_.Name` in script blocks are properties of the objects piped in.
"""

import re

OBJECT_TYPES = {"object", "psobject", "pscustomobject", "system.object", "system.management.automation.psobject"}
# Commands of other modules that the examples pipe in: what they output and its properties.
EXTERNAL = {
    "get-vm": ("Microsoft.HyperV.PowerShell.VirtualMachine", {"Name", "VMName", "VMId", "Id", "State", "Path"}),
}
# Commands that pass on the objects piped into them.
PASS_THROUGH = {"where-object", "where", "?", "sort-object", "sort", "tee-object", "tee"}
PROPERTY_LIST_COMMANDS = {"format-table", "format-list", "select-object", "sort-object", "ft", "fl", "select", "sort"}


def _nodes(n, kind):
    if n.type == kind:
        yield n
    for c in n.children:
        yield from _nodes(c, kind)


def _attr_name(a):
    t = next(_nodes(a, "type_identifier"), None)
    return t.text.decode().lower() if t is not None else ""


def _attr_args(a):
    """(named {name: text}, positional [text]) of an attribute's arguments."""
    named, pos = {}, []
    for arg in _nodes(a, "attribute_argument"):
        name = next((c for c in arg.children if c.type == "simple_name"), None)
        strings = [s.text.decode().strip("'\"") for s in _nodes(arg, "string_literal")]
        if name is not None:
            value = arg.children[-1].text.decode().strip()
            named[name.text.decode().lower()] = strings[0] if strings else value
        else:
            pos += strings
    return named, pos


def _true(v):
    return v is not None and v.lower() in ("$true", "true")


class Param:
    def __init__(self, name):
        self.name = name
        self.type = "object"  # PowerShell's default for an untyped parameter
        self.array = False
        self.pstypename = None
        self.aliases = []
        self.sets = {}  # set name -> {mandatory, vfp, vfpbpn}

    def names(self):
        return [self.name.lower()] + [a.lower() for a in self.aliases]

    def in_set(self, s):
        return "__all" in self.sets or s in self.sets

    def flag(self, s, key):
        e = self.sets.get(s) or self.sets.get("__all") or {}
        return e.get(key, False)

    def takes_by_value(self, type_name):
        if self.pstypename:
            return type_name == self.pstypename
        if self.type in OBJECT_TYPES:
            # PowerShell binds anything here; definition_problems() refuses such a parameter,
            # and a pipeline counts as bound only by a parameter typed for what it passes.
            return False
        return self.type == type_name.lower()


class Function:
    def __init__(self, name):
        self.name = name
        self.params = {}
        self.default_set = None
        self.outputs = []

    def sets(self):
        named = {s for p in self.params.values() for s in p.sets if s != "__all"}
        return sorted(named) or ["__all"]

    def resolve(self, written):
        w = written.lower()
        exact = [p for p in self.params.values() if w in p.names()]
        if exact:
            return exact[0]
        pref = [p for p in self.params.values() if any(n.startswith(w) for n in p.names())]
        return pref[0] if len(pref) == 1 else None


def model(parser, src):
    """(functions by lower-case name, object types {PSTypeName: properties}) of a module."""
    tree = parser.parse(src)
    functions, types = {}, {}
    for h in _nodes(tree.root_node, "hash_literal_expression"):
        entries = [e for e in _nodes(h, "hash_entry") if e.parent.parent == h or e.parent == h]
        keys = {}
        for e in entries:
            k = next(_nodes(e, "key_expression")).text.decode().strip()
            keys[k] = e
        if "PSTypeName" in keys:
            tn = next(_nodes(keys["PSTypeName"], "string_literal")).text.decode().strip("'\"")
            types.setdefault(tn, set()).update(k for k in keys if k != "PSTypeName")
    for f in _nodes(tree.root_node, "function_statement"):
        fn = Function(next(_nodes(f, "function_name")).text.decode())
        block = next(_nodes(f, "param_block"), None)
        if block is not None:
            for al in (c for c in block.children if c.type == "attribute_list"):
                for a in (c for c in al.children if c.type == "attribute"):
                    named, pos = _attr_args(a)
                    if _attr_name(a) == "cmdletbinding":
                        fn.default_set = named.get("defaultparametersetname")
                    elif _attr_name(a) == "outputtype":
                        fn.outputs += pos
            for sp in _nodes(block, "script_parameter"):
                var = next(c for c in sp.children if c.type == "variable")
                p = Param(var.text.decode().lstrip("$"))
                for a in _nodes(sp, "attribute"):
                    lit = next((c for c in a.children if c.type == "type_literal"), None)
                    if lit is not None:
                        p.array = next(_nodes(lit, "array_type_name"), None) is not None
                        p.type = next(_nodes(lit, "type_identifier")).text.decode().lower()
                        continue
                    named, pos = _attr_args(a)
                    kind = _attr_name(a)
                    if kind == "parameter":
                        p.sets[named.get("parametersetname", "__all")] = {
                            "mandatory": _true(named.get("mandatory")),
                            "vfp": _true(named.get("valuefrompipeline")),
                            "vfpbpn": _true(named.get("valuefrompipelinebypropertyname")),
                        }
                    elif kind == "pstypename":
                        p.pstypename = pos[0] if pos else None
                    elif kind == "alias":
                        p.aliases += pos
                if not p.sets:
                    p.sets["__all"] = {}
                fn.params[p.name.lower()] = p
        functions[fn.name.lower()] = fn
    return functions, types


def definition_problems(functions, exported):
    out = []
    for name in exported:
        fn = functions.get(name.lower())
        if fn is None:
            continue
        for p in fn.params.values():
            for s, e in p.sets.items():
                if e.get("vfp") and p.type in OBJECT_TYPES and not p.pstypename:
                    out.append(f"{fn.name}: -{p.name} takes any object from the pipeline by value "
                               f"([{p.type}{'[]' if p.array else ''}] without [PSTypeName()]); "
                               "say which objects it reads, or bind by property name")
    return out


def split_top(text, sep):
    """`text` split at `sep` outside quotes and brackets."""
    parts, depth, quote, cur = [], 0, None, ""
    for ch in text:
        if quote:
            quote = None if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch in "({[":
            depth += 1
        elif ch in ")}]":
            depth -= 1
        elif depth == 0 and (ch == sep or (sep == " " and ch.isspace())):
            parts.append(cur)
            cur = ""
            continue
        cur += ch
    parts.append(cur)
    return [p.strip() for p in parts if p.strip()]


def strip_comment(line):
    quote = None
    for i, ch in enumerate(line):
        if quote:
            quote = None if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch == "#":
            return line[:i]
    return line


def logical_lines(code):
    out, cur = [], ""
    for raw in code.splitlines():
        line = strip_comment(raw).rstrip()
        if line.endswith("`"):
            cur += line[:-1] + " "
            continue
        cur += line
        if cur.strip():
            out.append(cur.strip())
        cur = ""
    return out


def check_pipeline(line, functions, types):
    """Problems of one written pipeline."""
    out = []
    line = re.sub(r"^\$\w+\s*=\s*", "", line)
    segments = split_top(line, "|")
    left_types = None
    for seg in segments:
        tokens = split_top(seg, " ")
        cmd = tokens[0].lower()
        fn = functions.get(cmd)
        given = []
        if fn is not None:
            for t in tokens[1:]:
                if re.match(r"^-[A-Za-z]", t):
                    p = fn.resolve(t[1:].split(":", 1)[0])
                    if p is None:
                        out.append(f"`{line}`: {fn.name} has no parameter {t}")
                    else:
                        given.append(p)
        if left_types:
            out += _bind(line, left_types, fn, given, cmd, tokens, types)
        # What this segment passes on.
        if fn is not None:
            left_types = [(t, types.get(t)) for t in fn.outputs] or None
        elif cmd in PASS_THROUGH:
            pass
        elif cmd in EXTERNAL:
            left_types = [EXTERNAL[cmd]]
        elif re.match(r"^['\"]", cmd):
            left_types = [("string", {"Length"})]
        else:
            left_types = None
    return out


def _bind(line, left_types, fn, given, cmd, tokens, types):
    out = []
    for type_name, props in left_types:
        if props is None:
            if type_name.startswith("HyperSdk."):
                out.append(f"`{line}`: {type_name} is no object the module builds")
            continue
        lower_props = {p.lower() for p in props}
        if fn is None:
            if cmd in PROPERTY_LIST_COMMANDS:
                for t in tokens[1:]:
                    if t.startswith("-"):
                        break
                    for prop in split_top(t, ","):
                        if re.match(r"^\w+$", prop) and prop.lower() not in lower_props:
                            out.append(f"`{line}`: {type_name} has no property {prop}")
            for m in re.finditer(r"\$_\.(\w+)", " ".join(tokens[1:])):
                if m.group(1).lower() not in lower_props:
                    out.append(f"`{line}`: {type_name} has no property {m.group(1)} ($_.{m.group(1)})")
            continue
        working = []
        for s in fn.sets():
            if not all(p.in_set(s) for p in given):
                continue
            bound = {p.name for p in given}
            by_pipe = [p for p in fn.params.values() if p.in_set(s) and p.name not in bound and (
                (p.flag(s, "vfp") and p.takes_by_value(type_name))
                or (p.flag(s, "vfpbpn") and any(n in lower_props for n in p.names())))]
            bound |= {p.name for p in by_pipe}
            missing = [p.name for p in fn.params.values() if p.in_set(s) and p.flag(s, "mandatory") and p.name not in bound]
            if by_pipe and not missing:
                working.append(s)
        if not working:
            takes = [f"-{p.name}" for p in fn.params.values()
                     if any(e.get("vfp") or e.get("vfpbpn") for e in p.sets.values())]
            out.append(f"`{line}`: {fn.name} binds no parameter from a {type_name} "
                       f"(properties {', '.join(sorted(props))}; pipeline parameters {', '.join(takes) or 'none'})")
        elif len(working) > 1 and fn.default_set not in working:
            out.append(f"`{line}`: {fn.name}: parameter set ambiguous for a {type_name} ({', '.join(working)})")
    return out


def help_examples(help_text):
    """The code of each .EXAMPLE block: its lines up to the first blank line."""
    out = []
    for block in re.split(r"(?im)^\s*\.EXAMPLE\s*$", help_text)[1:]:
        block = re.split(r"(?m)^\s*\.[A-Z]+\b|#>", block)[0]
        code = block.strip("\n").split("\n\n", 1)[0]
        out += logical_lines(code)
    return out


def readme_pipelines(readme):
    out = []
    for m in re.finditer(r"```powershell\n(.*?)```", readme, re.S):
        out += logical_lines(m.group(1))
    return out
