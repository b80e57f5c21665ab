#!/usr/bin/env bash
# The vSphere row of benches/incremental.sh (issue 35): vcsim with a flat 1 GiB disk
# (VS_DATA_MIB of random data, default 256; the rest zeros) and changed block tracking
# (tests/peers/vcsim/cbt.go). A format-raw export with keep_base (CBT turned on), then
# CHANGED_BLOCKS areas of 512 KiB rewritten through the peer (20: 10 MiB, about 1 %), then an
# export with incremental_from the first result. Reported: wall time, the result's bytes
# fetched, the bytes the peer's /folder served and its QueryChangedDiskAreas calls; the image
# is compared with the disk and with a fresh full export (cmp).
#
# usage: VSPHERE=only benches/incremental.sh, or benches/incremental_vsphere.sh (needs go and
# about 2 GB in BENCH_DIR while it runs; the disks and images are removed at the end)
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/hypersdk-target}"
VS_DATA_MIB="${VS_DATA_MIB:-256}"
CHANGED_BLOCKS="${CHANGED_BLOCKS:-20}"
WORK="${BENCH_DIR:-/tmp/hs-bench-incremental}/vsphere"
cargo build --release --no-default-features --features vsphere --example fetch >&2
FETCH="$CARGO_TARGET_DIR/release/examples/fetch"
rm -rf "$WORK" && mkdir -p "$WORK/peer" "$WORK/out" "$WORK/full"
(cd tests/peers/vcsim && go build -o "$WORK/vcsim-peer" .)
SRC="$WORK/disk.raw"
head -c $((VS_DATA_MIB << 20)) /dev/urandom >"$SRC"
truncate -s 1G "$SRC"
coproc PEER { exec "$WORK/vcsim-peer" -dir "$WORK/peer" -flat -disk "$SRC" 2>"$WORK/peer.log"; }
trap 'kill $PEER_PID 2>/dev/null || true; rm -rf "$WORK/peer" "$WORK/out" "$WORK/full" "$SRC"' EXIT
read -r INFO <&"${PEER[0]}"
field() { python3 -c "import json,sys; print(json.loads(sys.argv[1])[sys.argv[2]])" "$INFO" "$1"; }
URL=$(field url)
CA=$(field ca_file)
FLAT=$(python3 -c "import json,sys; print(json.loads(sys.argv[1])['disk_files'][0])" "$INFO")
BASE="${URL%/sdk}"
echo "{\"url\": \"$URL\", \"username\": \"admin\", \"password\": \"s3cret-pass\", \"ca_bundle_path\": \"$CA\"}" >"$WORK/config.json"
chmod 600 "$WORK/config.json"
stat_() { curl -s --cacert "$CA" "$BASE/hs-stats" | python3 -c "import json,sys; print(json.load(sys.stdin)[sys.argv[1]])" "$1"; }
jq_() { python3 -c "import json,sys; v=json.load(open(sys.argv[1])); print(eval(sys.argv[2]))" "$@"; }
timed() { local t0; t0=$(date +%s.%N); "$@" >/dev/null; echo "$(date +%s.%N) - $t0" | bc -l; }
VM=DC0_H0_VM0

B0=$(stat_ folder_bytes)
T_FULL=$(timed "$FETCH" --provider vsphere --config "@$WORK/config.json" \
  --options '{"format": "raw", "keep_base": true}' --result "$WORK/r1.json" "$WORK/out" "$VM")
F_FULL=$(jq_ "$WORK/r1.json" "v['bytes_fetched']")
S_FULL=$(( $(stat_ folder_bytes) - B0 ))

# CHANGED_BLOCKS areas rewritten through the peer (tracked), spread over the disk.
for k in $(seq 0 $((CHANGED_BLOCKS - 1))); do
  off=$(( (k * 2048 / CHANGED_BLOCKS) * 524288 ))
  head -c 524288 /dev/urandom >"$WORK/block"
  curl -sf --cacert "$CA" --data-binary "@$WORK/block" "$BASE/hs-write?disk=0&offset=$off"
done
B1=$(stat_ folder_bytes)
Q1=$(stat_ cbt_queries)
T_INC=$(timed "$FETCH" --provider vsphere --config "@$WORK/config.json" \
  --options "{\"format\": \"raw\", \"keep_base\": true, \"overwrite\": true, \"incremental_from\": \"$WORK/r1.json\"}" \
  --result "$WORK/r2.json" "$WORK/out" "$VM")
F_INC=$(jq_ "$WORK/r2.json" "v['bytes_fetched']")
MODE=$(jq_ "$WORK/r2.json" "v['incremental']['files'][0]['mode']")
S_INC=$(( $(stat_ folder_bytes) - B1 ))
Q_INC=$(( $(stat_ cbt_queries) - Q1 ))
IMG="$WORK/out/$VM-disk-0.img"
cmp "$IMG" "$FLAT" || { echo "the incremental image differs from the disk" >&2; exit 1; }
T_FRESH=$(timed "$FETCH" --provider vsphere --config "@$WORK/config.json" --options '{"format": "raw"}' \
  "$WORK/full" "$VM")
cmp "$IMG" "$WORK/full/$VM-disk-0.img" || { echo "the incremental image differs from a full export" >&2; exit 1; }

echo "### Incremental export, vSphere: 1 GiB flat disk, $VS_DATA_MIB MiB of data, $CHANGED_BLOCKS areas of 512 KiB changed (vcsim + CBT, loopback, $(nproc) cores)"
echo
echo "| export | seconds | bytes fetched | % of the disk | served by /folder | QueryChangedDiskAreas |"
echo "|---|---:|---:|---:|---:|---:|"
printf '| full (base, keep_base) | %.2f | %d | %.1f %% | %d | |\n' "$T_FULL" "$F_FULL" "$(echo "$F_FULL * 100 / 1073741824" | bc -l)" "$S_FULL"
printf '| incremental (%s) | %.2f | %d | %.2f %% | %d | %d |\n' "$MODE" "$T_INC" "$F_INC" "$(echo "$F_INC * 100 / 1073741824" | bc -l)" "$S_INC" "$Q_INC"
printf '| fresh full | %.2f | | | | |\n' "$T_FRESH"
echo
echo "The incremental image equals the disk and the fresh full export (cmp)."
