"""Patches to moto's EBS direct API backend (moto/ebs) and its EC2 snapshots, for what moto lacks: EC2 snapshots of a volume that hold blocks, 512 KiB blocks, paging, block tokens, throttling, peer-computed checksums, pending snapshots, the changed blocks between two snapshots.

moto implements the EBS direct APIs (ListSnapshotBlocks, GetSnapshotBlock, ...) but only for
snapshots made with StartSnapshot/PutSnapshotBlock, with 512-byte blocks, no paging, tokens
never checked and checksums taken at face value. Held to botocore's ebs/2019-11-02 model:

- EC2's CreateSnapshot / CreateSnapshots of a volume make an EBS snapshot whose blocks are the
  non-zero 524288-byte blocks of the raw file the test registered for that volume (control
  port: POST /ebs/volume?volume=vol-...&path=FILE); a volume without one has no block. The EC2
  snapshot stays "pending" (progress growing) for --snapshot-polls DescribeSnapshots calls, or
  for ever for a volume registered with hold=1.
- ListSnapshotBlocks: MaxResults checked against the model (100..10000, else
  ValidationException INVALID_PARAMETER_VALUE), NextToken pages (a token valid for 60 minutes,
  INVALID_PAGE_TOKEN otherwise), StartingBlockIndex, a fresh BlockToken per listing valid 7
  days, ExpiryTime. A volume registered with page=N gets at most N blocks a page (the model
  allows fewer than MaxResults).
- GetSnapshotBlock: the snapshot must exist (ResourceNotFoundException SNAPSHOT_NOT_FOUND) and
  be completed, the token must be the one listed for that block and not expired
  (ValidationException INVALID_BLOCK_TOKEN); the checksum (SHA256, base64) and DataLength are
  computed here from the block. Per volume: stale_tokens=1 makes the first listing hand out
  tokens that are then refused (as after 7 days); throttle=N answers the first N block reads
  with RequestThrottledException (HTTP 400, RESOURCE_LEVEL_THROTTLE); lie=I:N sends a wrong
  checksum for block I N times (N=-1: always).
- ListChangedBlocks (GET /snapshots/{second}/changedblocks?firstSnapshotId=…): moto walks only
  the first snapshot's blocks, so a block written only in the second was never reported. Here:
  every index in either snapshot whose data differs, FirstBlockToken when the first has it,
  SecondBlockToken when the second does (a block the second lacks reads as zeros there); the
  same MaxResults, NextToken and StartingBlockIndex rules and per-listing tokens as
  ListSnapshotBlocks; both snapshots must exist (ResourceNotFoundException SNAPSHOT_NOT_FOUND)
  and be completed, and be of one volume (ValidationException UNRELATED_SNAPSHOTS); VolumeSize
  is the second's. The model requires only SecondSnapshotId (a missing first lists the second's
  blocks against nothing on AWS); an export always names both, so an absent first is refused
  here (ValidationException INVALID_PARAMETER_VALUE) rather than modelled.
- DeleteSnapshot also drops the EBS snapshot; GET /ebs/stats reports listings, block reads per
  snapshot and per block, the snapshots and the deleted ones.
"""

import base64
import hashlib
import json
import secrets
import threading
import time

from moto.ebs.models import EBSSnapshot, ebs_backends
from moto.ebs.responses import EBSResponse
from moto.ec2.models.elastic_block_store import EBSBackend as Ec2Ebs
from moto.ec2.models.elastic_block_store import Snapshot
from moto.ec2.responses import EC2Response

from moto.iam.access_control import IAMRequestBase  # noqa: E402

_orig_aws_request = IAMRequestBase._create_aws_request


def _aws_request_of_a_get(self):
    """moto signs a request again over `body or data`, and for a GET with a query string `data`
    is the parsed query: the payload hash then differs from AWS's (a GET's payload is empty), so
    every signed EBS ListSnapshotBlocks/GetSnapshotBlock, boto3's too, got SignatureDoesNotMatch."""
    if self._method == "GET" and not self._body:
        saved, self._data = self._data, {}
        try:
            return _orig_aws_request(self)
        finally:
            self._data = saved
    return _orig_aws_request(self)


IAMRequestBase._create_aws_request = _aws_request_of_a_get

BLOCK = 524288
TOKEN_TTL = 7 * 24 * 3600
PAGE_TTL = 3600
ACCOUNT = "123456789012"

LOCK = threading.Lock()
VOLUMES: dict = {}  # volume id -> {"path", "hold", "page", "stale_tokens", "throttle", "lie"}
SNAPS: dict = {}  # snapshot id -> {"volume", "polls", "tokens": {idx: (token, expiry)}, "lists"}
PAGES: dict = {}  # page token -> (snapshot id, next index, expiry)
GETS: dict = {}  # snapshot id -> count
BLOCK_GETS: dict = {}  # "snap:idx" -> count
DELETED: list = []
SETTINGS = {"polls": 2}
_API = threading.local()


def backend(region="us-east-1"):
    return ebs_backends[ACCOUNT][region]


def blocks_of(path):
    """The non-zero 512 KiB blocks of a raw file: {index: bytes}."""
    out = {}
    if not path:
        return out
    with open(path, "rb") as f:
        i = 0
        while True:
            data = f.read(BLOCK)
            if not data:
                break
            if data.count(0) != len(data):
                out[i] = data
            i += 1
    return out


_orig_create = Ec2Ebs.create_snapshot


def create_snapshot(self, volume_id, description, owner_id=None, from_ami=None):
    snap = _orig_create(self, volume_id, description, owner_id=owner_id, from_ami=from_ami)
    if not getattr(_API, "active", False):
        return snap
    vol = VOLUMES.get(volume_id, {})
    snap.status = "pending"
    ebs = EBSSnapshot(account_id=self.account_id, snapshot=snap)
    ebs.block_size = BLOCK
    ebs.status = "completed"
    for idx, data in blocks_of(vol.get("path")).items():
        ebs.put_block(idx, data, None, "SHA256", len(data))
    backend(self.region_name).snapshots[snap.id] = ebs
    with LOCK:
        SNAPS[snap.id] = {"volume": volume_id, "polls": 0, "tokens": {}, "lists": 0}
    return snap


Ec2Ebs.create_snapshot = create_snapshot


def advance(snap):
    st = SNAPS.get(snap.id)
    if st is None or snap.status != "pending":
        return
    if VOLUMES.get(st["volume"], {}).get("hold"):
        return
    st["polls"] += 1
    if st["polls"] >= SETTINGS["polls"]:
        snap.status = "completed"


_orig_describe = Ec2Ebs.describe_snapshots


def describe_snapshots(self, snapshot_ids=None, filters=None):
    found = _orig_describe(self, snapshot_ids=snapshot_ids, filters=filters)
    with LOCK:
        for s in found:
            advance(s)
    return found


Ec2Ebs.describe_snapshots = describe_snapshots


def progress(self):
    st = SNAPS.get(self.id)
    if st is None or self.status == "completed":
        return "100%"
    return f"{min(99, st['polls'] * 100 // (SETTINGS['polls'] + 1))}%"


Snapshot.progress = property(progress)

_orig_delete = Ec2Ebs.delete_snapshot


def delete_snapshot(self, snapshot_id):
    s = _orig_delete(self, snapshot_id)
    backend(self.region_name).snapshots.pop(snapshot_id, None)
    with LOCK:
        DELETED.append(snapshot_id)
    return s


Ec2Ebs.delete_snapshot = delete_snapshot


def api_call(name):
    orig = getattr(EC2Response, name)

    def call(self):
        _API.active = True
        try:
            return orig(self)
        finally:
            _API.active = False

    setattr(EC2Response, name, call)


api_call("create_snapshot")
api_call("create_snapshots")


def error(status, code, message, reason=None):
    body = {"message": message}
    if reason:
        body["Reason"] = reason
    # moto takes the status from the headers' "status", not from the tuple.
    headers = {"x-amzn-ErrorType": code, "Content-Type": "application/json", "status": str(status)}
    return status, headers, json.dumps(body)


def param(self, name, query):
    v = self._get_param(name)
    if v is None:
        v = (self.querystring.get(query) or [None])[0]
    return v


def path_parts(self):
    return [p for p in self.path.split("?")[0].split("/") if p]


def not_completed(ebs, snap_id):
    """The EBS direct APIs read only completed snapshots."""
    snap = ebs.ec2_backend.snapshots.get(snap_id) if hasattr(ebs, "ec2_backend") else None
    if snap is None:
        snap = backend().ec2_backend.snapshots.get(snap_id)
    if snap is not None and snap.status != "completed":
        return error(400, "ValidationException", f"The snapshot '{snap_id}' is not completed.",
                     "INVALID_SNAPSHOT_ID")
    return None


def list_snapshot_blocks(self):
    parts = path_parts(self)  # snapshots/{id}/blocks
    snap_id = parts[1]
    max_results = param(self, "MaxResults", "maxResults")
    page_token = param(self, "NextToken", "pageToken")
    start = param(self, "StartingBlockIndex", "startingBlockIndex")
    ebs = backend(self.region).snapshots.get(snap_id)
    if ebs is None or snap_id not in SNAPS:
        return error(404, "ResourceNotFoundException", f"The snapshot '{snap_id}' does not exist.",
                     "SNAPSHOT_NOT_FOUND")
    if max_results is not None:
        try:
            max_results = int(max_results)
        except ValueError:
            max_results = -1
        if not 100 <= max_results <= 10000:
            return error(400, "ValidationException", "MaxResults must be between 100 and 10000.",
                         "INVALID_PARAMETER_VALUE")
    else:
        max_results = 100
    if not_completed(ebs, snap_id):
        return not_completed(ebs, snap_id)
    now = time.time()
    with LOCK:
        st = SNAPS[snap_id]
        vol = VOLUMES.get(st["volume"], {})
        if page_token is not None:
            p = PAGES.get(page_token)
            if p is None or p[0] != snap_id or p[2] < now:
                return error(400, "ValidationException", "The pagination token is not valid.",
                             "INVALID_PAGE_TOKEN")
            first = p[1]
        else:
            first = int(start or 0)
            st["lists"] += 1
        limit = min(max_results, vol.get("page") or max_results)
        idxs = sorted(i for i in ebs.blocks if i >= first)
        page, rest = idxs[:limit], idxs[limit:]
        stale = vol.get("stale_tokens") and st["lists"] == 1
        blocks = []
        for i in page:
            token = base64.b64encode(secrets.token_bytes(24)).decode()
            st["tokens"][i] = (token, now - 1 if stale else now + TOKEN_TTL)
            blocks.append({"BlockIndex": i, "BlockToken": token})
        out = {
            "Blocks": blocks, "ExpiryTime": now + TOKEN_TTL,
            "VolumeSize": ebs.volume_size, "BlockSize": BLOCK,
        }
        if rest:
            t = base64.b64encode(secrets.token_bytes(24)).decode()
            PAGES[t] = (snap_id, rest[0], now + PAGE_TTL)
            out["NextToken"] = t
    return 200, {"Content-Type": "application/json"}, json.dumps(out)


def get_snapshot_block(self):
    parts = path_parts(self)  # snapshots/{id}/blocks/{index}
    snap_id = parts[1]
    token = param(self, "BlockToken", "blockToken")
    try:
        idx = int(parts[3])
    except (IndexError, ValueError):
        return error(400, "ValidationException", "The block index is not valid.", "INVALID_BLOCK")
    ebs = backend(self.region).snapshots.get(snap_id)
    if ebs is None or snap_id not in SNAPS:
        return error(404, "ResourceNotFoundException", f"The snapshot '{snap_id}' does not exist.",
                     "SNAPSHOT_NOT_FOUND")
    if not_completed(ebs, snap_id):
        return not_completed(ebs, snap_id)
    now = time.time()
    with LOCK:
        st = SNAPS[snap_id]
        vol = VOLUMES.get(st["volume"], {})
        GETS[snap_id] = GETS.get(snap_id, 0) + 1
        key = f"{snap_id}:{idx}"
        BLOCK_GETS[key] = BLOCK_GETS.get(key, 0) + 1
        if vol.get("throttle", 0) > 0:
            vol["throttle"] -= 1
            return error(400, "RequestThrottledException",
                         "The request rate for this snapshot exceeds the limit.",
                         "RESOURCE_LEVEL_THROTTLE")
        issued = st["tokens"].get(idx)
        if token is None or issued is None or issued[0] != token or issued[1] < now:
            return error(400, "ValidationException", "The block token is not valid.",
                         "INVALID_BLOCK_TOKEN")
        block = ebs.blocks.get(idx)
        if block is None:
            return error(400, "ValidationException", "The block is not in the snapshot.",
                         "INVALID_BLOCK")
        data = block.block_data
        checksum = base64.b64encode(hashlib.sha256(data).digest()).decode()
        lie = vol.get("lie")
        if lie and lie[0] == idx and lie[1] != 0:
            lie[1] -= 1 if lie[1] > 0 else 0
            checksum = base64.b64encode(hashlib.sha256(data + b"x").digest()).decode()
    headers = {
        "Content-Type": "application/octet-stream", "x-amz-Data-Length": str(len(data)),
        "x-amz-Checksum": checksum, "x-amz-Checksum-Algorithm": "SHA256",
    }
    return 200, headers, data


def list_changed_blocks(self):
    parts = path_parts(self)  # snapshots/{second}/changedblocks
    second_id = parts[1]
    first_id = param(self, "FirstSnapshotId", "firstSnapshotId")
    max_results = param(self, "MaxResults", "maxResults")
    page_token = param(self, "NextToken", "pageToken")
    start = param(self, "StartingBlockIndex", "startingBlockIndex")
    if not first_id:
        return error(400, "ValidationException", "FirstSnapshotId must be given with SecondSnapshotId.",
                     "INVALID_PARAMETER_VALUE")
    snaps = {}
    for sid in (first_id, second_id):
        e = backend(self.region).snapshots.get(sid)
        if e is None or sid not in SNAPS:
            return error(404, "ResourceNotFoundException", f"The snapshot '{sid}' does not exist.",
                         "SNAPSHOT_NOT_FOUND")
        if not_completed(e, sid):
            return not_completed(e, sid)
        snaps[sid] = e
    if max_results is not None:
        try:
            max_results = int(max_results)
        except ValueError:
            max_results = -1
        if not 100 <= max_results <= 10000:
            return error(400, "ValidationException", "MaxResults must be between 100 and 10000.",
                         "INVALID_PARAMETER_VALUE")
    else:
        max_results = 100
    now = time.time()
    with LOCK:
        st1, st2 = SNAPS[first_id], SNAPS[second_id]
        if st1["volume"] != st2["volume"]:
            return error(400, "ValidationException",
                         "The snapshots are not of the same volume/snapshot lineage.",
                         "UNRELATED_SNAPSHOTS")
        vol = VOLUMES.get(st2["volume"], {})
        if page_token is not None:
            p = PAGES.get(page_token)
            if p is None or p[0] != f"{first_id}>{second_id}" or p[2] < now:
                return error(400, "ValidationException", "The pagination token is not valid.",
                             "INVALID_PAGE_TOKEN")
            first = p[1]
        else:
            first = int(start or 0)
            st2["changed_lists"] = st2.get("changed_lists", 0) + 1
        b1, b2 = snaps[first_id].blocks, snaps[second_id].blocks
        changed = sorted(i for i in set(b1) | set(b2) if i >= first and (
            i not in b1 or i not in b2 or b1[i].block_data != b2[i].block_data))
        limit = min(max_results, vol.get("page") or max_results)
        page, rest = changed[:limit], changed[limit:]
        blocks = []
        for i in page:
            b = {"BlockIndex": i}
            for sid, key, have in ((first_id, "FirstBlockToken", b1), (second_id, "SecondBlockToken", b2)):
                if i in have:
                    token = base64.b64encode(secrets.token_bytes(24)).decode()
                    SNAPS[sid]["tokens"][i] = (token, now + TOKEN_TTL)
                    b[key] = token
            blocks.append(b)
        out = {
            "ChangedBlocks": blocks, "ExpiryTime": now + TOKEN_TTL,
            "VolumeSize": snaps[second_id].volume_size, "BlockSize": BLOCK,
        }
        if rest:
            t = base64.b64encode(secrets.token_bytes(24)).decode()
            PAGES[t] = (f"{first_id}>{second_id}", rest[0], now + PAGE_TTL)
            out["NextToken"] = t
    return 200, {"Content-Type": "application/json"}, json.dumps(out)


EBSResponse.list_changed_blocks = list_changed_blocks
EBSResponse.list_snapshot_blocks = list_snapshot_blocks
EBSResponse.get_snapshot_block = get_snapshot_block


def control(handler, method, path, query, ec2):
    """Routes /ebs/... of the peer's control port; returns the JSON answer."""
    one = {k: v[0] for k, v in query.items()}
    if method == "POST" and path == "/ebs/volume":
        vol = one.get("volume")
        if vol is None:
            r = ec2.create_volume(Size=int(one.get("size", 1)), AvailabilityZone="us-east-1a",
                                  Encrypted=one.get("encrypted") == "1")
            vol = r["VolumeId"]
            if one.get("attach"):
                ec2.attach_volume(VolumeId=vol, InstanceId=one["attach"], Device=one.get("device", "/dev/sdf"))
        cfg = {"path": one.get("path"), "hold": one.get("hold") == "1",
               "page": int(one["page"]) if "page" in one else None,
               "stale_tokens": one.get("stale_tokens") == "1",
               "throttle": int(one.get("throttle", 0))}
        if "lie" in one:
            i, n = one["lie"].split(":")
            cfg["lie"] = [int(i), int(n)]
        with LOCK:
            VOLUMES[vol] = cfg
        return {"volume": vol}
    if method == "POST" and path == "/ebs/instance":
        ami = next(i["ImageId"] for i in ec2.describe_images(Owners=["amazon"])["Images"]
                   if i.get("Platform") != "windows")
        inst = ec2.run_instances(ImageId=ami, MinCount=1, MaxCount=1)["Instances"][0]
        root = [m["Ebs"]["VolumeId"] for m in inst["BlockDeviceMappings"]
                if m["DeviceName"] == inst["RootDeviceName"]][0]
        size = ec2.describe_volumes(VolumeIds=[root])["Volumes"][0]["Size"]
        return {"instance": inst["InstanceId"], "root": root, "root_gib": size}
    if method == "POST" and path == "/ebs/delete-snapshot":
        ec2.delete_snapshot(SnapshotId=one["snapshot"])
        return {}
    if method == "POST" and path == "/ebs/resize":
        ec2.modify_volume(VolumeId=one["volume"], Size=int(one["size"]))
        return {}
    if method == "POST" and path == "/ebs/release":
        with LOCK:
            VOLUMES.get(one["volume"], {})["hold"] = False
        return {}
    if method == "GET" and path == "/ebs/stats":
        with LOCK:
            snaps = []
            for sid, st in SNAPS.items():
                snaps.append({"id": sid, "volume": st["volume"], "lists": st["lists"],
                              "changed_lists": st.get("changed_lists", 0),
                              "deleted": sid in DELETED})
            return {"gets": dict(GETS), "block_gets": dict(BLOCK_GETS), "snapshots": snaps,
                    "deleted": list(DELETED)}
    return None
