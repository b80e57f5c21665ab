"""Stand-in for the one EC2 feature moto lacks, the VM export-task API (CreateInstanceExportTask, DescribeExportTasks, CancelExportTask, ExportImage, DescribeExportImageTasks), registered into moto's own EC2 responses and serialized by moto's serializer; everything else (EC2 instances and AMIs, S3, IAM, SigV4 checking, XML) is moto's.

A task checks moto's real state (the instance or AMI exists, the bucket exists), stays
"active" for --polls describe calls, then writes the disk fixture (a VMDK made with qemu-img)
into moto's S3 under the key real AWS uses ({prefix}{task id}.{format}) and completes.

IAM is enforced (moto's "IAM-like Access Control"): every request must carry a valid
signature, and the test user holds exactly the policies in policies/*.json, each a copy of one
AWS documents (vm-import-export.json: "Required permissions for VM Import/Export", the bucket
placeholder "amzn-s3-demo-export-bucket" read as the test bucket; ebs-snapshots.json: the
snapshot method's EC2 calls plus the EBS direct APIs' read actions as AWS's "IAM permissions for
EBS direct APIs" lists them, on Resource "*" because moto checks every action against "*"). Setup and the control port
use a second user allowed everything ("admin_…" keys). Two rules moto lacks are added as S3
states them (botocore s3 service-2.json): HeadBucket needs s3:ListBucket (moto asked for a
made-up "s3:HeadBucket"), and HeadObject with x-amz-checksum-mode ENABLED on an SSE-KMS
object needs kms:Decrypt (a 403 without a body otherwise).

Prints one JSON line when ready: endpoint, region, the test user's access key with its secret
and the admin's, an instance id, an AMI id, a bucket,
and a control URL (/ebs/...: the EBS direct API patches of ebs_stand_in.py; POST /corrupt?bucket=&key= flips bytes of an object but keeps its stored
checksum; GET /tasks lists the tasks; PUT /object?bucket=&key=[&checksum=sha256|crc64nvme]
[&sse=aws:kms] stores the body through moto's S3 API with boto3, GET /object?bucket=&key= answers whether it exists — test
setup without an S3 SDK in the tests). A prefix holding "slowcreate/" makes the create call
take 0.8 s (to cancel during it); one starting with the --slow-prefix never finishes.
EC2's eventual consistency (EC2 API reference, "Eventual consistency in the Amazon EC2 API"):
a task under a prefix holding "lagging/" is unknown to the first two describe calls naming it
(InvalidExportTaskID.NotFound), one under "lagempty/" is missing from their answer. A task
under "doomed/" is ended by AWS at its first describe (instance tasks "cancelled", image tasks
"deleted") with the reason in StatusMessage, as a failed conversion is; CancelExportTask on a
task that is not active is refused with IncorrectState and counted in the task's
"cancel_calls".
"""

import argparse
import glob
import json
import os
import secrets
import socket
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlparse

# Every request must carry a valid signature of a key that exists in moto's IAM.
os.environ["INITIAL_NO_AUTH_ACTION_COUNT"] = "0"

import boto3  # noqa: E402
from moto.core.responses import ActionResult  # noqa: E402
from moto.ec2.exceptions import EC2ClientError, InvalidAMIIdError, InvalidInstanceIdError  # noqa: E402
from moto.ec2.responses import EC2Response  # noqa: E402
from moto.iam.access_control import IAMPolicy, PermissionResult, create_access_key  # noqa: E402
from moto.iam.models import iam_backends  # noqa: E402
from moto.s3 import responses as s3_responses  # noqa: E402
from moto.s3.models import s3_backends  # noqa: E402
from moto.server import ThreadedMotoServer  # noqa: E402

from moto.core.responses import BaseResponse  # noqa: E402

import ebs_stand_in  # noqa: E402  (the EBS direct API patches; see its docstring)

_setup_class = BaseResponse.setup_class


def _setup_class_with_raw_body(self, request, *args, **kwargs):
    """moto checks a form-encoded request's signature over its parsed parameters encoded again
    (a space as "+"), not over the bytes that were signed; AWS hashes the bytes as received, so
    a body that encodes a space as "%20" (RFC 3986, as SigV4 canonicalizes) was refused with
    AuthFailure. Reading the body before werkzeug parses the form keeps those bytes."""
    request.get_data(cache=True)
    return _setup_class(self, request, *args, **kwargs)


BaseResponse.setup_class = _setup_class_with_raw_body

# HeadBucket: "you must have permissions to perform the s3:ListBucket action" (S3 API reference).
s3_responses.ACTION_MAP["BUCKET"]["HEAD"]["DEFAULT"] = "ListBucket"

_head_object = s3_responses.S3Response.head_object


def caller_may(headers, action, resource):
    """Whether the signer of this request holds `action` on `resource` by its IAM policies."""
    auth = headers.get("Authorization", "")
    key_id = auth.split("Credential=", 1)[-1].split("/", 1)[0]
    key = create_access_key(account_id=ACCOUNT, partition="aws", access_key_id=key_id, headers=headers)
    results = [IAMPolicy(p).is_action_permitted(action, resource) for p in key.collect_policies()]
    return PermissionResult.DENIED not in results and PermissionResult.PERMITTED in results


def head_object_kms_rule(self, bucket_name, query, key_name, headers):
    """HeadObject's ChecksumMode (botocore s3 service-2.json): "If you enable checksum mode and
    the object is uploaded with a checksum and encrypted with an KMS key, you must have
    permission to use the kms:Decrypt action to retrieve the checksum." Refused as S3 refuses
    a HEAD: 403, no body."""
    status, response_headers, body = _head_object(self, bucket_name, query, key_name, headers)
    if status == 200 and headers.get("x-amz-checksum-mode") == "ENABLED":
        key = s3_backend().get_object(bucket_name, key_name)
        if key is not None and key.encryption == "aws:kms" and key.checksum_algorithm:
            arn = f"arn:aws:kms:us-east-1:{ACCOUNT}:key/{key.kms_key_id or 'aws/s3'}"
            if not caller_may(self.headers, "kms:Decrypt", arn):
                return 403, {}, ""
    return status, response_headers, body


s3_responses.S3Response.head_object = head_object_kms_rule


def wrong_region(request, full_url):
    """A request for a bucket of another region than the one it is signed for (moto has one
    endpoint for every region) is answered as S3 answers one sent to the wrong regional
    endpoint: 301 PermanentRedirect with the bucket's region in x-amz-bucket-region (no body
    for HEAD). GetBucketLocation answers from anywhere."""
    u = urlparse(full_url)
    name = unquote(u.path.split("/")[1]) if u.path.count("/") >= 1 else ""
    auth = request.headers.get("Authorization", "")
    if not name or "Credential=" not in auth:
        return None
    try:
        bucket = s3_backend().get_bucket(name)
    except Exception:
        return None
    signed_for = auth.split("Credential=", 1)[1].split("/")[2]
    if signed_for == bucket.region_name or (request.method == "GET" and "location" in parse_qs(u.query, keep_blank_values=True)):
        return None
    headers = {"x-amz-bucket-region": bucket.region_name, "content-type": "application/xml"}
    body = "" if request.method == "HEAD" else (
        '<?xml version="1.0" encoding="UTF-8"?><Error><Code>PermanentRedirect</Code><Message>The bucket you are '
        'attempting to access must be addressed using the specified endpoint. Please send all future requests to '
        f'this endpoint.</Message><Bucket>{name}</Bucket><Endpoint>s3.{bucket.region_name}.amazonaws.com</Endpoint></Error>')
    return 301, headers, body


def with_region_rule(handler):
    def wrapped(self, request, full_url, headers):
        moved = wrong_region(request, full_url)
        return moved if moved is not None else handler(self, request, full_url, headers)
    return wrapped


s3_responses.S3Response.bucket_response = with_region_rule(s3_responses.S3Response.bucket_response)
s3_responses.S3Response.key_response = with_region_rule(s3_responses.S3Response.key_response)

ACCOUNT = "123456789012"
TASKS: dict = {}
LOCK = threading.Lock()
ARGS = None
S3 = None  # boto3's S3 client on moto, for the control port's object calls
SESSION = None  # the admin's boto3 session
ENDPOINT = None
EC2 = None  # boto3's EC2 client on moto (the admin's), for the control port's EBS setup


def s3_backend():
    return s3_backends[ACCOUNT]["aws"]


def check_bucket(bucket):
    try:
        s3_backend().get_bucket(bucket)
    except Exception:
        raise EC2ClientError("InvalidParameter", f"The S3 bucket '{bucket}' does not exist")


DOOMED = "ClientError: Unsupported kernel version 5.10.0-aws"


def hidden(task):
    """Whether this describe call does not see the task yet (eventual consistency): raises
    NotFound for "lagging/", answers None for "lagempty/"; two calls each."""
    prefix = task["key"]
    if ("lagging/" in prefix or "lagempty/" in prefix) and task.setdefault("hidden", 0) < 2:
        task["hidden"] += 1
        if "lagging/" in prefix:
            raise EC2ClientError(
                "InvalidExportTaskID.NotFound" if task["kind"] == "instance" else "InvalidExportImageTaskId.NotFound",
                f"The export task ID '{task['id']}' does not exist")
        return True
    return False


def advance(task):
    """One describe call: active for ARGS.polls calls, then the object appears in S3."""
    if task["state"] != "active":
        return
    if "doomed/" in task["key"]:
        task["state"] = "cancelled" if task["kind"] == "instance" else "deleted"
        task["message"] = DOOMED
        return
    if ARGS.slow_prefix and task["key"].startswith(ARGS.slow_prefix):
        task["message"] = "converting the disk image (this one never finishes)"
        return
    task["polls"] += 1
    pct = min(99, task["polls"] * 100 // (ARGS.polls + 1))
    task["progress"] = str(pct)
    task["message"] = f"converting the disk image ({pct}%)"
    if task["polls"] >= ARGS.polls:
        with open(ARGS.fixture, "rb") as f:
            data = f.read()
        s3_backend().put_object(task["bucket"], task["key"], data)
        task["state"] = "completed"
        task["progress"] = "100"
        task["message"] = ""


def nested(self, *names):
    """A structure parameter as a dict, whichever way moto's parser keyed it."""
    for name in names:
        v = self._get_param(name)
        if isinstance(v, dict) and v:
            return v
        flat = {k.split(".", 1)[1]: self._get_param(k) for k in self._get_params() if k.startswith(name + ".")}
        if flat:
            return flat
    return {}


def create_instance_export_task(self):
    instance_id = self._get_param("InstanceId")
    env = self._get_param("TargetEnvironment")
    spec = nested(self, "ExportToS3Task", "ExportToS3")
    fmt = spec.get("DiskImageFormat") or "vmdk"
    container = spec.get("ContainerFormat")
    bucket = spec.get("S3Bucket")
    prefix = spec.get("S3Prefix") or ""
    self.ec2_backend.get_instance(instance_id)  # InvalidInstanceID.NotFound
    check_bucket(bucket)
    if "slowcreate/" in prefix:
        # A create call that takes its time, so a test can cancel while it is in flight.
        time.sleep(0.8)
    task_id = "export-i-" + secrets.token_hex(9)[:17]
    ext = "ova" if container == "ova" else fmt.lower()
    task = {
        "kind": "instance", "id": task_id, "state": "active", "polls": 0, "progress": "0",
        "message": "", "bucket": bucket, "key": f"{prefix}{task_id}.{ext}",
        "resource": instance_id, "env": env, "format": fmt.upper(), "container": container,
    }
    with LOCK:
        TASKS[task_id] = task
    return ActionResult({"ExportTask": instance_task_shape(task)})


def instance_task_shape(t):
    s3 = {"DiskImageFormat": t["format"], "S3Bucket": t["bucket"], "S3Key": t["key"]}
    if t["container"]:
        s3["ContainerFormat"] = t["container"]
    return {
        "ExportTaskId": t["id"], "Description": "hypersdk test export", "State": t["state"],
        "StatusMessage": t["message"],
        "InstanceExportDetails": {"InstanceId": t["resource"], "TargetEnvironment": t["env"]},
        "ExportToS3Task": s3,
    }


def describe_export_tasks(self):
    ids = self._get_param("ExportTaskIds") or []
    out = []
    with LOCK:
        for i in ids or [k for k, v in TASKS.items() if v["kind"] == "instance"]:
            t = TASKS.get(i)
            if t is None or t["kind"] != "instance":
                raise EC2ClientError("InvalidExportTaskID.NotFound", f"The export task ID '{i}' does not exist")
            if ids and hidden(t):
                continue
            advance(t)
            out.append(instance_task_shape(t))
    return ActionResult({"ExportTasks": out})


def cancel_export_task(self):
    task_id = self._get_param("ExportTaskId")
    with LOCK:
        t = TASKS.get(task_id)
        if t is None:
            raise EC2ClientError("InvalidExportTaskID.NotFound", f"The export task ID '{task_id}' does not exist")
        t["cancel_calls"] = t.get("cancel_calls", 0) + 1
        if t["state"] not in ("active", "cancelling"):
            raise EC2ClientError("IncorrectState", f"The export task '{task_id}' is {t['state']}")
        t["state"] = "cancelled" if t["kind"] == "instance" else "deleted"
        t["cancelled"] = True
    return ActionResult({})


def export_image(self):
    image_id = self._get_param("ImageId")
    fmt = self._get_param("DiskImageFormat") or "VMDK"
    loc = nested(self, "S3ExportLocation")
    bucket = loc.get("S3Bucket")
    prefix = loc.get("S3Prefix") or ""
    try:
        self.ec2_backend.describe_images(ami_ids=[image_id])
    except InvalidAMIIdError:
        raise
    check_bucket(bucket)
    task_id = "export-ami-" + secrets.token_hex(9)[:17]
    task = {
        "kind": "image", "id": task_id, "state": "active", "polls": 0, "progress": "0",
        "message": "", "bucket": bucket, "key": f"{prefix}{task_id}.{fmt.lower()}",
        "resource": image_id, "format": fmt.upper(), "prefix": prefix,
    }
    with LOCK:
        TASKS[task_id] = task
    shape = image_task_shape(task)
    shape["DiskImageFormat"] = task["format"]
    return ActionResult(shape)


def image_task_shape(t):
    return {
        "ExportImageTaskId": t["id"], "ImageId": t["resource"], "Status": t["state"],
        "StatusMessage": t["message"], "Progress": t["progress"],
        "S3ExportLocation": {"S3Bucket": t["bucket"], "S3Prefix": t["prefix"]},
    }


def describe_export_image_tasks(self):
    ids = self._get_param("ExportImageTaskIds") or []
    out = []
    with LOCK:
        for i in ids:
            t = TASKS.get(i)
            if t is None or t["kind"] != "image":  # noqa: SIM102
                raise EC2ClientError("InvalidExportImageTaskId.NotFound", f"The export image task ID '{i}' does not exist")
            if hidden(t):
                continue
            advance(t)
            out.append(image_task_shape(t))
    return ActionResult({"ExportImageTasks": out})


_describe_images = EC2Response.describe_images
IMAGE_PAGE = 2


def describe_images(self):
    """moto answers every image at once; EC2 pages when asked (MaxResults 5-1000, not with
    ImageIds; botocore ec2 service-2.json) and a page may hold fewer items than asked: this one
    holds at most IMAGE_PAGE, so a client that does not follow NextToken misses images."""
    max_results = self._get_param("MaxResults")
    if max_results is None:
        return _describe_images(self)
    if self._get_param("ImageIds"):
        raise EC2ClientError("InvalidParameterCombination", "The parameter imageIdsSet cannot be used with the parameter maxResults")
    if not 5 <= int(max_results) <= 1000:
        raise EC2ClientError("InvalidParameterValue", f"Value ( {max_results} ) for parameter maxResults is invalid. Expecting a value between 5 and 1000")
    everything = _describe_images(self).result["Images"]
    start = int(self._get_param("NextToken") or 0)
    page = everything[start:start + min(IMAGE_PAGE, int(max_results))]
    result = {"Images": page}
    if start + len(page) < len(everything):
        result["NextToken"] = str(start + len(page))
    return ActionResult(result)


for fn in (create_instance_export_task, describe_export_tasks, cancel_export_task, export_image,
           describe_export_image_tasks, describe_images):
    setattr(EC2Response, fn.__name__, fn)


class Control(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def reply(self, value):
        body = json.dumps(value).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def ebs(self, method):
        """/ebs/...: the EBS stand-in's setup and counters (ebs_stand_in.control)."""
        u = urlparse(self.path)
        if not u.path.startswith("/ebs/"):
            return False
        self.reply(ebs_stand_in.control(self, method, u.path, parse_qs(u.query), EC2))
        return True

    def do_GET(self):
        if self.ebs("GET"):
            return
        u = urlparse(self.path)
        if u.path == "/object":
            q = parse_qs(u.query)
            try:
                S3.head_object(Bucket=q["bucket"][0], Key=q["key"][0])
                self.reply([True])
            except S3.exceptions.ClientError:
                self.reply([False])
            return
        with LOCK:
            self.reply(list(TASKS.values()))

    def do_PUT(self):
        q = parse_qs(urlparse(self.path).query)
        data = self.rfile.read(int(self.headers["Content-Length"]))
        extra = {}
        if q.get("checksum"):
            extra["ChecksumAlgorithm"] = q["checksum"][0].upper()
        if q.get("sse"):
            extra["ServerSideEncryption"] = q["sse"][0]
        region = s3_backend().get_bucket(q["bucket"][0]).region_name
        client = S3 if region == "us-east-1" else SESSION.client("s3", endpoint_url=ENDPOINT, region_name=region)
        client.put_object(Bucket=q["bucket"][0], Key=q["key"][0], Body=data, **extra)
        self.reply([])

    def do_POST(self):
        if self.ebs("POST"):
            return
        q = parse_qs(urlparse(self.path).query)
        key = s3_backend().get_object(q["bucket"][0], q["key"][0])
        data = bytearray(key.value)
        data[len(data) // 2] ^= 0xFF
        # Same stored checksum and ETag, different bytes: what a corrupted copy looks like.
        key._value_buffer.seek(0)
        key._value_buffer.write(bytes(data))
        self.send_response(204)
        self.end_headers()


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main():
    global ARGS, S3, SESSION, ENDPOINT, EC2
    p = argparse.ArgumentParser()
    p.add_argument("--fixture", required=True)
    p.add_argument("--polls", type=int, default=3)
    p.add_argument("--slow-prefix", default="slow/", help="tasks writing under this prefix stay active")
    p.add_argument("--snapshot-polls", type=int, default=2,
                   help="DescribeSnapshots calls an EC2 snapshot of a volume stays pending for")
    p.add_argument("--exit-on-stdin-eof", action="store_true", help="exit when the parent goes away")
    ARGS = p.parse_args()
    ebs_stand_in.SETTINGS["polls"] = ARGS.snapshot_polls
    if ARGS.exit_on_stdin_eof:
        def watch():
            sys.stdin.read()
            os._exit(0)
        threading.Thread(target=watch, daemon=True).start()

    iam = iam_backends[ACCOUNT]["global"]
    iam.create_user("us-east-1", "hypersdk")
    here = os.path.dirname(os.path.abspath(__file__))
    for path in sorted(glob.glob(os.path.join(here, "policies", "*.json"))):
        with open(path) as f:
            doc = f.read().replace("amzn-s3-demo-export-bucket", "exports")
        iam.put_user_policy("hypersdk", os.path.basename(path)[:-5], doc)
    key = iam.create_access_key("hypersdk")
    iam.create_user("us-east-1", "hypersdk-admin")
    iam.put_user_policy("hypersdk-admin", "all", json.dumps(
        {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}))
    admin = iam.create_access_key("hypersdk-admin")

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    session = boto3.session.Session(aws_access_key_id=admin.access_key_id,
                                    aws_secret_access_key=admin.secret_access_key, region_name="us-east-1")
    ec2 = EC2 = session.client("ec2", endpoint_url=endpoint)
    s3 = S3 = session.client("s3", endpoint_url=endpoint)
    SESSION, ENDPOINT = session, endpoint
    # Not a Windows AMI: AWS's export task refuses Windows instances (moto lists those first).
    ami = next(i["ImageId"] for i in ec2.describe_images(Owners=["amazon"])["Images"]
               if i.get("Platform") != "windows")
    instance = ec2.run_instances(ImageId=ami, MinCount=1, MaxCount=1)["Instances"][0]["InstanceId"]
    s3.create_bucket(Bucket="exports")
    # A bucket in another region than the clients' (us-east-1).
    s3.create_bucket(Bucket="exports-west", CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
    # The account's own AMIs, more than one DescribeImages page of the peer.
    own_images = [ec2.create_image(InstanceId=instance, Name=f"own-{i}")["ImageId"] for i in range(3)]

    control = ThreadingHTTPServer(("127.0.0.1", 0), Control)
    threading.Thread(target=control.serve_forever, daemon=True).start()
    print(json.dumps({
        "endpoint": endpoint, "region": "us-east-1", "access_key_id": key.access_key_id,
        "secret_access_key": key.secret_access_key, "admin_access_key_id": admin.access_key_id,
        "admin_secret_access_key": admin.secret_access_key, "instance_id": instance, "image_id": ami, "own_image_ids": own_images,
        "bucket": "exports", "control": f"http://127.0.0.1:{control.server_address[1]}",
    }), flush=True)
    threading.Event().wait()


if __name__ == "__main__":
    sys.exit(main())
