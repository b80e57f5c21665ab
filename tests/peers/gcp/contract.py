"""The official contract the GCP stand-in holds requests to: Google's discovery documents.

compute.v1, cloudbuild.v1, storage.v1, cloudresourcemanager.v1, serviceusage.v1 and
artifactregistry.v1, iam.v1 are read from
the google-api-python-client package of the stand-in's venv (googleapiclient/discovery_cache/
documents). A request is matched to its method by HTTP method and path template; its query
parameters must be the method's or the API's standard ones (of the right type, enum value,
required ones present), and its JSON body must fit the method's request schema: an unknown field
or a value of the wrong type is refused with Google's 400 (INVALID_ARGUMENT, "Invalid JSON
payload received. Unknown name ..."), as the real front end refuses it. Cloud Storage's JSON API
ignores unknown query parameters, so only its bodies and typed parameters are checked.
"""

import json
import os
import re

_DOCS = {}
_METHODS = {}  # api -> [(httpMethod, regex, method)]


def _documents_dir():
    import googleapiclient  # the venv's package: its JSON files are the contract

    return os.path.join(os.path.dirname(googleapiclient.__file__), "discovery_cache", "documents")


def load():
    d = _documents_dir()
    for api in ("compute.v1", "cloudbuild.v1", "storage.v1", "cloudresourcemanager.v1", "serviceusage.v1",
                "artifactregistry.v1", "iam.v1"):
        with open(os.path.join(d, api + ".json")) as f:
            doc = json.load(f)
        _DOCS[api] = doc
        flat, loose = [], []

        def walk(res):
            for m in res.get("methods", {}).values():
                # flatPath names every segment; `{+name}` paths match several methods
                # (builds' and operations' `v1/{+name}:cancel`), so they are tried last.
                flat.append((m["httpMethod"], _regex(doc["servicePath"] + (m.get("flatPath") or m["path"])), m))
                loose.append((m["httpMethod"], _regex(doc["servicePath"] + m["path"]), m))
                for proto in m.get("mediaUpload", {}).get("protocols", {}).values():
                    flat.append((m["httpMethod"], _regex(proto["path"].lstrip("/")), m))
            for r in res.get("resources", {}).values():
                walk(r)
        walk(doc)
        _METHODS[api] = flat + loose


def _regex(tmpl):
    out, pos = "", 0
    for m in re.finditer(r"\{(\+?)([^}]+)\}", tmpl):
        out += re.escape(tmpl[pos:m.start()])
        out += "(.+)" if m.group(1) else "([^/:]+)"
        pos = m.end()
    return re.compile("^" + out + re.escape(tmpl[pos:]) + "$")


def api_of(parts):
    """Which API a path (its segments, without the leading slash) belongs to."""
    if parts[:2] == ["compute", "v1"]:
        return "compute.v1"
    if parts[:1] in (["storage"], ["download"], ["upload"]):
        return "storage.v1"
    if parts[:1] == ["v1"]:
        if "repositories" in parts:
            return "artifactregistry.v1"
        if "roles" in parts:
            return "iam.v1"
        if "services" in parts:
            return "serviceusage.v1"
        if any(p.startswith("builds") for p in parts):
            return "cloudbuild.v1"
        return "cloudresourcemanager.v1"
    return None


def bad_request(message, field=None):
    err = {"code": 400, "message": message, "status": "INVALID_ARGUMENT",
           "errors": [{"message": message, "domain": "global", "reason": "invalid"}]}
    if field is not None:
        err["details"] = [{"@type": "type.googleapis.com/google.rpc.BadRequest",
                           "fieldViolations": [{"field": field, "description": message}]}]
    return 400, {"error": err}


def check(api, method, raw_path, query, body):
    """None when the request fits its discovery method, else (400, Google's error body)."""
    doc = _DOCS[api]
    path = raw_path.lstrip("/")
    if path.startswith("download/"):
        path = path[len("download/"):]
    found = None
    for http_method, rx, m in _METHODS[api]:
        if http_method == method and rx.match(path):
            found = m
            break
    if found is None:
        return 404, {"error": {"code": 404, "message": f"The requested URL /{path} was not found on this server.",
                               "status": "NOT_FOUND", "errors": [{"reason": "notFound", "message": "Not Found"}]}}
    params = dict(doc.get("parameters", {}))
    params.update(found.get("parameters", {}))
    for k, values in query.items():
        spec = params.get(k)
        if spec is None:
            if api == "storage.v1":
                continue
            return bad_request(f'Invalid JSON payload received. Unknown name "{k}": Cannot bind query parameter. '
                               f"Field '{k}' could not be found in request message.", k)
        for v in values:
            why = _scalar(spec, v, from_query=True)
            if why:
                return bad_request(f"Invalid value for query parameter '{k}': {why}", k)
    for k, spec in found.get("parameters", {}).items():
        if spec.get("location") == "query" and spec.get("required") and k not in query:
            return bad_request(f"Required parameter: {k}", k)
    req = found.get("request")
    if req and body is not None and method in ("POST", "PUT", "PATCH") and not found.get("supportsMediaUpload"):
        try:
            value = json.loads(body or b"{}")
        except ValueError as e:
            return bad_request(f"Invalid JSON payload received. {e}")
        where = _value(doc, {"$ref": req["$ref"]}, value, "")
        if where:
            return bad_request(*where)
    return None


def _scalar(spec, v, from_query=False):
    t, fmt = spec.get("type"), spec.get("format", "")
    if "enum" in spec and v not in spec["enum"]:
        return f"{v!r} is not one of {spec['enum']}"
    if t == "integer" or fmt in ("int64", "uint64", "int32", "uint32"):
        if isinstance(v, bool) or not re.fullmatch(r"-?\d+", str(v)):
            return f"{v!r} is not an integer"
    elif t == "boolean":
        if from_query and v not in ("true", "false"):
            return f"{v!r} is not a boolean"
        if not from_query and not isinstance(v, bool):
            return f"{v!r} is not a boolean"
    elif t == "number":
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            return f"{v!r} is not a number"
    elif t == "string":
        if not isinstance(v, str):
            return f"{v!r} is not a string"
        if fmt == "google-duration" and not re.fullmatch(r"-?\d+(\.\d{1,9})?s", v):
            return f"{v!r} is not a duration"
    return None


def _value(doc, schema, v, at):
    """None, or (message, field path) for the first place `v` does not fit `schema`."""
    if "$ref" in schema:
        schema = doc["schemas"][schema["$ref"]]
    t = schema.get("type")
    if t == "any" or (t is None and "properties" not in schema):
        return None
    if t == "object" or "properties" in schema:
        if not isinstance(v, dict):
            return (f"Invalid value at '{at}' ({schema.get('id', 'object')}), {json.dumps(v)}", at)
        props = schema.get("properties", {})
        extra = schema.get("additionalProperties")
        for k, x in v.items():
            sub = props.get(k) or extra
            path = f"{at}.{k}" if at else k
            if sub is None:
                return (f"Invalid JSON payload received. Unknown name \"{k}\" at '{at}': Cannot find field.", path)
            why = _value(doc, sub, x, path)
            if why:
                return why
        return None
    if t == "array":
        if not isinstance(v, list):
            return (f"Invalid value at '{at}' (array), {json.dumps(v)}", at)
        for i, x in enumerate(v):
            why = _value(doc, schema.get("items", {}), x, f"{at}[{i}]")
            if why:
                return why
        return None
    # JSON numbers and strings both carry 64-bit integers.
    why = _scalar(schema, v)
    if why and not (schema.get("format") in ("int64", "uint64") and isinstance(v, str) and re.fullmatch(r"-?\d+", v)):
        return (f"Invalid value at '{at}' ({schema.get('format') or t}), {json.dumps(v)}: {why}", at)
    return None
