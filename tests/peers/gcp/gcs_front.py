"""Cloud Storage for the GCP stand-in: fake-gcs-server (real objects, ranges, crc32c,
generations, versioning) behind a token check, with what it does not model added: the hostile
listing switch, ifGenerationMatch on DELETE, buckets that belong to the project that made them,
the JSON API's ETag following the metageneration, a lying crc32c switch.
"""

import http.client
import json
import urllib.parse

import project_model
from standin_state import LOCK, PORT, STATE, fault, gcs, gerror, object_etag


class GcsFront:
    # -- Storage (fake-gcs-server behind a token check) -----------------------------------------
    def proxy(self, method, path, query, parts):
        # Hostile switch (faults of "list:{bucket}", page_token_loop): an object listing whose
        # every page names the same nextPageToken, as a broken or malicious endpoint could send.
        if method == "GET" and len(parts) == 5 and parts[4] == "o" and fault(f"list:{parts[3]}", "page_token_loop"):
            with LOCK:
                STATE["stats"]["list_loop_gets"] = STATE["stats"].get("list_loop_gets", 0) + 1
            q = urllib.parse.urlencode([(k, v) for k, v in urllib.parse.parse_qsl(query or "") if k != "pageToken"])
            status, data = gcs("GET", f"{path}?{q}")
            if status != 200:
                return self.send(status, json.loads(data or b"{}"))
            page = json.loads(data)
            page["nextPageToken"] = "the-same-token"
            return self.send(200, page)
        # objects.delete with ifGenerationMatch (Cloud Storage JSON API): deletes only while the
        # live generation is that one, else 412 conditionNotMet. fake-gcs-server 1.56.1 ignores
        # the condition on DELETE (it deleted a generation it was not asked for), so it is held here.
        if method == "DELETE" and len(parts) >= 6 and parts[4] == "o":
            want = urllib.parse.parse_qs(query or "").get("ifGenerationMatch", [None])[0]
            if want is not None:
                obj = urllib.parse.quote("/".join(parts[5:]), safe="")
                status, data = gcs("GET", f"/storage/v1/b/{parts[3]}/o/{obj}")
                # A missing object is fake-gcs-server's 404, as Cloud Storage answers it.
                live = json.loads(data).get("generation") if status == 200 else None
                if live is not None and str(live) != want:
                    with LOCK:
                        STATE["stats"]["precondition_failures"] = STATE["stats"].get("precondition_failures", 0) + 1
                    return self.send(*gerror(412, "At least one of the pre-conditions you specified did not hold.",
                                             "conditionNotMet", "FAILED_PRECONDITION"))
        body = self.body() if method in ("POST", "PUT", "PATCH") else None
        headers = {k: v for k, v in self.headers.items() if k.lower() in ("range", "content-type", "if-match", "if-none-match")}
        c = http.client.HTTPConnection("127.0.0.1", PORT["gcs"], timeout=120)
        c.request(method, path + ("?" + query if query else ""), body=body, headers=headers)
        r = c.getresponse()
        media = "alt=media" in (query or "")
        q = urllib.parse.parse_qs(query or "")
        # buckets.insert / buckets.get: the bucket belongs to the project that made it
        # (fake-gcs-server says projectNumber "0" for every bucket).
        if parts[:3] == ["storage", "v1", "b"] and ((len(parts) == 4 and method == "GET")
                                                     or (len(parts) == 3 and method == "POST")):
            data = r.read()
            c.close()
            if r.status != 200:
                return self.send(r.status, json.loads(data or b"{}"))
            v = json.loads(data)
            with LOCK:
                if method == "POST":
                    STATE["bucket_project"][v["name"]] = q.get("project", [""])[0]
                owner = STATE["bucket_project"].get(v["name"]) or next(iter(project_model.PROJECTS), "")
                v["projectNumber"] = project_model.PROJECTS.get(owner, {}).get("number", "0")
            return self.send(200, v)
        # objects.patch bumps the metageneration (fake-gcs-server does not count it).
        if method == "PATCH" and len(parts) >= 6 and parts[4] == "o" and r.status == 200:
            data = json.loads(r.read())
            c.close()
            with LOCK:
                k = (parts[3], "/".join(parts[5:]), str(data.get("generation")))
                STATE["metagen"][k] = STATE["metagen"].get(k, 1) + 1
                data["metageneration"] = str(STATE["metagen"][k])
                data["etag"] = object_etag(data.get("generation"), STATE["metagen"][k])
            return self.send(200, data)
        if not media and r.status == 200 and method == "GET" and len(parts) >= 6 and parts[4] == "o":
            data = json.loads(r.read())
            c.close()
            with LOCK:
                STATE["stats"]["object_gets"] += 1
                if f"{parts[3]}/{parts[5]}" in STATE["lie_crc32c"]:
                    data["crc32c"] = "AAAAAA=="
                mg = STATE["metagen"].get((parts[3], "/".join(parts[5:]), str(data.get("generation"))), 1)
                data["metageneration"] = str(mg)
                data["etag"] = object_etag(data.get("generation"), mg)
            return self.send(200, data)
        self.send_response(r.status)
        length = r.getheader("Content-Length")
        if media and method == "GET" and r.status in (200, 206) and len(parts) >= 6:
            # Media bytes served per object: a download that starts over is seen here.
            with LOCK:
                k = f"media_bytes:{parts[3]}/{'/'.join(parts[5:])}"
                STATE["stats"][k] = STATE["stats"].get(k, 0) + int(length or 0)
        gen = r.getheader("X-Goog-Generation")
        for k, v in r.getheaders():
            if k.lower() == "etag" and media and gen and len(parts) >= 6:
                # Cloud Storage's JSON API ETag follows the metageneration too: a label edit
                # changes it, the bytes (the generation) stay.
                with LOCK:
                    mg = STATE["metagen"].get((parts[3], urllib.parse.unquote("/".join(parts[5:])), gen), 1)
                v = '"' + object_etag(gen, mg) + '"'
            if k.lower() in ("content-type", "content-length", "content-range", "etag", "accept-ranges",
                             "x-goog-generation", "x-goog-hash", "x-goog-stored-content-length", "last-modified"):
                self.send_header(k, v)
        if length is None:
            self.send_header("Content-Length", "0")
        self.end_headers()
        if method != "HEAD":
            while True:
                chunk = r.read(256 * 1024)
                if not chunk:
                    break
                try:
                    self.wfile.write(chunk)
                except (BrokenPipeError, ConnectionResetError):
                    break
        c.close()
