# Stand-in for the managed-disk blob front end's own checks ONLY (Entra ID on a disk's SAS, the Get Page Ranges timeout, the page-range diff of two incremental snapshots, which Azurite lacks: its issue #812); the blobs are the real Azurite's, to which every other request is forwarded.
"""
A disk's grant (`accessSAS`) points at a blob endpoint of the disk service, not at a storage
account of the user's. Two things it does that Azurite cannot show sit in this small proxy in
front of Azurite, used for the SAS of disks whose faults ask for them (arm_standin.py):

- `data_access_auth_mode: AzureActiveDirectory` (DiskProperties/SnapshotProperties
  `dataAccessAuthMode` in azure-mgmt-compute): "When export/upload URL is used, the system
  checks if the user has an identity in Azure Active Directory and has necessary permissions to
  export/upload the data" (aka.ms/DisksAzureADAuth). A read without `Authorization: Bearer` is
  refused as Azure Storage refuses a request without credentials it needs (401
  `NoAuthenticationInformation`, with the `WWW-Authenticate` challenge naming
  https://disk.azure.com/, the managed-disk audience), a token this peer's Entra ID did not issue
  for that audience (scope `https://disk.azure.com//.default`; a Storage token too) with 401
  `InvalidAuthenticationInfo`, and a bearer request with an `x-ms-version` older than
  2017-11-09 (the first that takes OAuth) with 400 `InvalidHeaderValue`. The SAS still
  authorizes the read at Azurite: the bearer header is not forwarded.
- `pagelist_max_span` (bytes): Get Page Ranges (`comp=pagelist`) over a span larger than this,
  on a blob larger than it, answers 500 `OperationTimedOut` ("Operation could not be completed
  within the specified time."), as the service did on a 1.6 TB snapshot, so only a listing in
  segments gets through.

- Get Page Ranges with `x-ms-previous-snapshot-url` (version 2019-07-07 and later, managed
  disks only: "returns the list of page ranges that differ between a previousSnapshotUri and
  this page blob. Changed pages include both updated and cleared pages"), which Azurite does
  not implement (issue #812): answered from the two snapshots' pages by the stand-in
  (`PageRange` for pages that differ and hold data, `ClearRange` for pages that became
  zeros), refused with the Blob service's codes (`PreviousSnapshotNotFound`,
  `PreviousSnapshotOperationNotSupported`, `PreviousSnapshotCannotBeNewer`) and
  `InvalidHeaderValue` for an older `x-ms-version`.

Counters per disk (bytes_read: bytes of blob reads answered; diff_calls; entra_reads, entra_refused, pagelist_calls, pagelist_timeouts,
pagelist_max_asked) go to the stand-in's per-disk stats.
"""

import http.client
import ssl
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

OAUTH_MIN_VERSION = "2017-11-09"
DIFF_MIN_VERSION = "2019-07-07"
# Request headers a blob read carries that Azurite needs; the rest (Authorization above all)
# stay here.
FORWARD = ("range", "x-ms-range", "x-ms-version", "x-ms-range-get-content-md5", "x-ms-date",
           "x-ms-client-request-id", "if-match", "if-none-match", "accept")
# Response headers not passed on as they are (the body is re-framed here).
HOP = ("transfer-encoding", "connection", "keep-alive")


def _span(header, size):
    """Bytes covered by a `bytes=S-E` range header (the whole blob without one)."""
    if not header or not header.startswith("bytes="):
        return size
    try:
        s, e = header[6:].split("-", 1)
        return min(int(e), size - 1) - int(s) + 1 if e else size - int(s)
    except ValueError:
        return size


def error_xml(code, message):
    return (f'<?xml version="1.0" encoding="utf-8"?><Error><Code>{code}</Code>'
            f"<Message>{message}</Message></Error>").encode()


def start(azurite_url, ca, cert, key, settings_for, valid_token, count, tenant, page_diff=None):
    """Serves the proxy on 127.0.0.1 (HTTPS, the tests' certificate); returns its base URL,
    which replaces `azurite_url` (https://127.0.0.1:PORT/devstoreaccount1) in a SAS.

    settings_for(container) -> (owner disk name, its faults, blob size) or None;
    valid_token(token) -> whether this peer issued it for the managed-disk audience;
    count(owner, key, value=None) adds one to (or sets) a counter of the disk."""
    up = urllib.parse.urlsplit(azurite_url)
    up_ctx = ssl.create_default_context(cafile=ca)

    class Proxy(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *a):
            pass

        def refuse(self, status, code, message, headers=None):
            body = error_xml(code, message) if self.command != "HEAD" else b""
            self.send_response(status)
            self.send_header("Content-Type", "application/xml")
            self.send_header("x-ms-error-code", code)
            self.send_header("Content-Length", str(len(body)))
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self):
            self.serve()

        def do_HEAD(self):
            self.serve()

        def serve(self):
            u = urllib.parse.urlsplit(self.path)
            parts = [p for p in u.path.split("/") if p]
            found = settings_for(parts[1]) if len(parts) >= 3 else None
            if found is None:
                return self.refuse(404, "ContainerNotFound", "The specified container does not exist.")
            owner, faults, size = found
            self.owner = owner
            q = urllib.parse.parse_qs(u.query)
            if faults.get("data_access_auth_mode") == "AzureActiveDirectory":
                auth = self.headers.get("Authorization", "")
                if not auth.startswith("Bearer "):
                    bump(owner, "entra_refused", None)
                    return self.refuse(
                        401,
                        "NoAuthenticationInformation",
                        "Server failed to authenticate the request. Please refer to the information in the www-authenticate header.",
                        {"WWW-Authenticate": f"Bearer authorization_uri=https://login.microsoftonline.com/{tenant}/oauth2/authorize resource_id=https://disk.azure.com/"},
                    )
                if not valid_token(auth[7:]):
                    bump(owner, "entra_refused", None)
                    return self.refuse(401, "InvalidAuthenticationInfo", "Server failed to authenticate the request. The token is not valid.")
                if (self.headers.get("x-ms-version") or "") < OAUTH_MIN_VERSION:
                    bump(owner, "entra_refused", None)
                    return self.refuse(400, "InvalidHeaderValue", "The value for one of the HTTP headers is not in the correct format: x-ms-version (OAuth needs 2017-11-09 or later).")
                bump(owner, "entra_reads", None)
            prev = self.headers.get("x-ms-previous-snapshot-url")
            if prev and q.get("comp") == ["pagelist"] and self.command == "GET":
                return self.diff(parts[1], prev, size, owner)
            max_span = faults.get("pagelist_max_span")
            if max_span and q.get("comp") == ["pagelist"]:
                rng = self.headers.get("x-ms-range") or self.headers.get("range")
                span = _span(rng, size)
                bump(owner, "pagelist_max_asked", max(span, _get(owner, "pagelist_max_asked")))
                if size > max_span and span > max_span:
                    bump(owner, "pagelist_timeouts", None)
                    return self.refuse(500, "OperationTimedOut", "Operation could not be completed within the specified time.")
                bump(owner, "pagelist_calls", None)
            self.forward()

        def diff(self, container, prev, size, owner):
            if (self.headers.get("x-ms-version") or "") < DIFF_MIN_VERSION:
                return self.refuse(400, "InvalidHeaderValue", "x-ms-previous-snapshot-url needs x-ms-version 2019-07-07 or later.")
            rng = self.headers.get("x-ms-range") or self.headers.get("range")
            s, e = 0, size - 1
            if rng and rng.startswith("bytes="):
                a, b = rng[6:].split("-", 1)
                s, e = int(a), min(int(b), size - 1) if b else size - 1
            got = page_diff(container, prev, s, e)
            if isinstance(got, tuple) and len(got) == 3:
                return self.refuse(*got)
            changed, cleared = got
            bump(owner, "diff_calls", None)
            items = sorted([(a, b, "PageRange") for a, b in changed] + [(a, b, "ClearRange") for a, b in cleared])
            body = ('<?xml version="1.0" encoding="utf-8"?><PageList>'
                    + "".join(f"<{t}><Start>{a}</Start><End>{b}</End></{t}>" for a, b, t in items)
                    + "<NextMarker /></PageList>").encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/xml")
            self.send_header("x-ms-blob-content-length", str(size))
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def forward(self):
            conn = http.client.HTTPSConnection(up.hostname, up.port, context=up_ctx, timeout=60)
            try:
                headers = {k: v for k, v in self.headers.items() if k.lower() in FORWARD}
                conn.request(self.command, self.path, headers=headers)
                r = conn.getresponse()
                self.send_response(r.status)
                length = r.getheader("Content-Length")
                for k, v in r.getheaders():
                    if k.lower() not in HOP:
                        self.send_header(k, v)
                body = b"" if self.command == "HEAD" else None
                if length is None and self.command != "HEAD":
                    body = r.read()
                    self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if body is None:
                    sent = 0
                    while True:
                        chunk = r.read(1 << 20)
                        if not chunk:
                            break
                        self.wfile.write(chunk)
                        sent += len(chunk)
                    if "comp=" not in self.path and self.command == "GET" and self.owner:
                        with counters_lock:
                            total = counters.get((self.owner, "bytes_read"), 0) + sent
                            counters[(self.owner, "bytes_read")] = total
                        count(self.owner, "bytes_read", total)
                elif body:
                    self.wfile.write(body)
            finally:
                conn.close()

    counters = {}
    counters_lock = threading.Lock()

    def _get(owner, key):
        with counters_lock:
            return counters.get((owner, key), 0)

    def bump(owner, key, value):
        with counters_lock:
            counters[(owner, key)] = counters.get((owner, key), 0) + 1 if value is None else value
        count(owner, key, value)

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Proxy)
    httpd.daemon_threads = True
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    httpd.socket = ctx.wrap_socket(httpd.socket, server_side=True)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    return f"https://127.0.0.1:{httpd.server_address[1]}{up.path}"
