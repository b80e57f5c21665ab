#!/usr/bin/env bash
# EBS snapshot download benchmark: hypersdk's snapshot method against awslabs/coldsnap on the
# same peer and the same snapshot. The peer is the test suite's moto with its EBS stand-in
# (tests/peers/moto: EBS direct APIs, 512 KiB blocks with SHA-256); a 1 GiB volume holding
# DATA_MIB of random data at its start (the rest never written: holes for both tools) is
# snapshotted once, then each tool downloads that snapshot into a 1 GiB raw file, in
# interleaved rounds; median of RUNS wall times, ratio to coldsnap, peak RSS; every output
# compared with the volume. moto is single-process Python: it, not the tools, is the ceiling
# here, so the number says "no slower than coldsnap on the same server", not cloud speed.
#
# usage: benches/ebs.sh   (cargo-installs coldsnap into ~/.cache/hypersdk-tools if missing;
#                          needs the moto venv the tests make, ~/.cache/hypersdk-tools/moto-venv)
set -euo pipefail
cd "$(dirname "$0")/.."
. benches/lib.sh
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/hypersdk-target}"
RUNS="${RUNS:-3}"
DATA_MIB="${DATA_MIB:-256}"
HS_OPTIONS="${HS_OPTIONS:-}" # hypersdk's export options (JSON), e.g. '{"max_parts_in_flight": 64}'
[ -n "$HS_OPTIONS" ] || HS_OPTIONS='{}'
WORK="${BENCH_DIR:-/tmp/hs-bench-ebs}"
TOOLS="$HOME/.cache/hypersdk-tools"
PY="$TOOLS/moto-venv/bin/python"
need_tools /usr/bin/time:time bc:bc
[ -x "$PY" ] || { echo "no moto venv: run cargo test --test aws_snapshot once" >&2; exit 1; }
[ -x "$TOOLS/bin/coldsnap" ] || cargo install coldsnap --locked --root "$TOOLS"
cargo build --release --no-default-features --features aws --example fetch >&2
FETCH="$CARGO_TARGET_DIR/release/examples/fetch"

rm -rf "$WORK" && mkdir -p "$WORK/src" "$WORK/out"
SRC="$WORK/src/volume.raw"
head -c $((DATA_MIB << 20)) /dev/urandom >"$SRC"
truncate -s 1G "$SRC"
printf 'x' >"$WORK/fixture.vmdk"
coproc PEER { exec "$PY" tests/peers/moto/moto_peer.py --fixture "$WORK/fixture.vmdk" --snapshot-polls 1 2>"$WORK/peer.log"; }
trap 'kill $PEER_PID 2>/dev/null || true' EXIT
read -r INFO <&"${PEER[0]}"
field() { "$PY" -c "import json,sys; print(json.loads(sys.argv[1])[sys.argv[2]])" "$INFO" "$1"; }
EP=$(field endpoint)
export AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY AWS_REGION=us-east-1 AWS_DEFAULT_REGION=us-east-1
AWS_ACCESS_KEY_ID=$(field access_key_id)
AWS_SECRET_ACCESS_KEY=$(field secret_access_key)
CONTROL=$(field control)
VOL=$("$PY" -c "import json,sys,urllib.request as u; print(json.load(u.urlopen(u.Request(sys.argv[1], method='POST')))['volume'])" \
  "$CONTROL/ebs/volume?size=1&path=$SRC")
SNAP=$("$PY" - "$EP" "$VOL" <<'PYEOF'
import sys, boto3
ec2 = boto3.client("ec2", endpoint_url=sys.argv[1])
s = ec2.create_snapshot(VolumeId=sys.argv[2])["SnapshotId"]
while ec2.describe_snapshots(SnapshotIds=[s])["Snapshots"][0]["State"] != "completed":
    pass
print(s)
PYEOF
)
CONFIG="{\"region\": \"us-east-1\", \"endpoint_url\": \"$EP\", \"access_key_id\": \"$AWS_ACCESS_KEY_ID\", \"secret_access_key\": \"$AWS_SECRET_ACCESS_KEY\"}"

# coldsnap finds the endpoint through the SDK's standard variable.
COLD=(env AWS_ENDPOINT_URL="$EP" "$TOOLS/bin/coldsnap" download "$SNAP" "$WORK/out/cold.img")
add coldsnap 64 $((DATA_MIB << 20)) "$WORK/out/cold.img" "$SRC" "${COLD[@]}"
# hypersdk returns once the file is synced (before its rename): coldsnap, then `sync FILE`, is
# the same end point.
add coldsnap+sync 64 $((DATA_MIB << 20)) "$WORK/out/cold.img" "$SRC" \
  bash -c 'then_sync "$@"' _ "$WORK/out/cold.img" -- "${COLD[@]}"
add hypersdk 64 $((DATA_MIB << 20)) "$WORK/out/$SNAP.img" "$SRC" \
  "$FETCH" --provider aws --config "$CONFIG" --options "$HS_OPTIONS" "$WORK/out" "$SNAP"
run_all
echo "### EBS: one snapshot of a 1 GiB volume, $DATA_MIB MiB of data, from moto + the EBS stand-in (loopback; median of $RUNS in interleaved rounds, $(nproc) cores)"
echo
echo "| tool | seconds | MiB/s of data | vs coldsnap | vs coldsnap, then sync | peak RSS MiB |"
echo "|---|---:|---:|---:|---:|---:|"
for tool in coldsnap coldsnap+sync hypersdk; do
  s=${SECS[$tool]}
  printf '| %s | %.2f | %.0f | %.2f× | %.2f× | %d |\n' "$tool" "$s" "$(echo "$DATA_MIB / $s" | bc -l)" \
    "$(echo "${SECS[coldsnap]} / $s" | bc -l)" "$(echo "${SECS[coldsnap+sync]} / $s" | bc -l)" \
    $((${RSS[$tool]} / 1024))
done
echo
echo "(\"then sync\": coldsnap, then \`sync FILE\`: until the bytes are on disk, which is when hypersdk returns.)"
