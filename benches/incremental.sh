#!/usr/bin/env bash
# Incremental export benchmark (issue 35), AWS (then Azure, at the end): a 1 GiB volume full of random data (DATA_MIB,
# default 1024) on the test suite's moto with its EBS stand-in. A full export keeps its base
# (`keep_base`); then CHANGED_BLOCKS 512 KiB blocks spread over the volume are rewritten (20:
# 10 MiB, about 1 %), and an export with `incremental_from` the first result makes the new
# image. Reported: wall time of each, bytes fetched (the result's `bytes_fetched`) and the
# GetSnapshotBlock calls the peer answered for the new snapshot; the incremental image is
# compared with the new volume and with a fresh full export of the same snapshot (cmp).
# One run each (the full export is the incremental one's base); moto is single-process
# Python, so the seconds say "what the peer serves", the bytes are the point.
#
# vSphere (VSPHERE=1, or VSPHERE=only to skip AWS): the vcsim peer with a flat 1 GiB disk
# (VS_DATA_MIB of random data, default 256, the rest zeros) and changed block tracking; a
# format-raw export with keep_base, CHANGED_BLOCKS 512 KiB areas rewritten through the peer,
# an export with incremental_from; reported: bytes fetched, bytes the peer's /folder served,
# QueryChangedDiskAreas calls; the image is compared with the disk and a fresh full export.
#
# usage: benches/incremental.sh   (needs the moto venv the tests make,
#                                  ~/.cache/hypersdk-tools/moto-venv; VSPHERE=1 needs go)
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/hypersdk-target}"
DATA_MIB="${DATA_MIB:-1024}"
CHANGED_BLOCKS="${CHANGED_BLOCKS:-20}"
WORK="${BENCH_DIR:-/tmp/hs-bench-incremental}"
TOOLS="$HOME/.cache/hypersdk-tools"
PY="$TOOLS/moto-venv/bin/python"
VSPHERE="${VSPHERE:-}"
if [ "$VSPHERE" = only ]; then
  exec bash benches/incremental_vsphere.sh
fi
[ -x "$PY" ] || { echo "no moto venv: run cargo test --test aws_snapshot once" >&2; exit 1; }
cargo build --release --no-default-features --features aws --example fetch >&2
FETCH="$CARGO_TARGET_DIR/release/examples/fetch"

rm -rf "$WORK" && mkdir -p "$WORK/src" "$WORK/out" "$WORK/full"
SRC="$WORK/src/volume.raw"
head -c $((DATA_MIB << 20)) /dev/urandom >"$SRC"
truncate -s 1G "$SRC"
printf 'x' >"$WORK/fixture.vmdk"
coproc PEER { exec "$PY" tests/peers/moto/moto_peer.py --fixture "$WORK/fixture.vmdk" --snapshot-polls 1 2>"$WORK/peer.log"; }
trap 'kill $PEER_PID 2>/dev/null || true' EXIT
read -r INFO <&"${PEER[0]}"
field() { "$PY" -c "import json,sys; print(json.loads(sys.argv[1])[sys.argv[2]])" "$INFO" "$1"; }
EP=$(field endpoint)
CONTROL=$(field control)
post() { "$PY" -c "import sys,urllib.request as u; print(u.urlopen(u.Request(sys.argv[1], method='POST')).read().decode())" "$1"; }
VOL=$(post "$CONTROL/ebs/volume?size=1&path=$SRC" | "$PY" -c "import json,sys; print(json.load(sys.stdin)['volume'])")
CONFIG="{\"region\": \"us-east-1\", \"endpoint_url\": \"$EP\", \"access_key_id\": \"$(field access_key_id)\", \"secret_access_key\": \"$(field secret_access_key)\"}"
echo "$CONFIG" >"$WORK/config.json" && chmod 600 "$WORK/config.json"
jq_() { "$PY" -c "import json,sys; v=json.load(open(sys.argv[1])); print(eval(sys.argv[2]))" "$@"; }
timed() { local t0; t0=$(date +%s.%N); "$@" >/dev/null; echo "$(date +%s.%N) - $t0" | bc -l; }

OPTS='{"keep_base": true, "poll_interval_ms": 100}'
T_FULL=$(timed "$FETCH" --provider aws --config "@$WORK/config.json" --options "$OPTS" \
  --result "$WORK/r1.json" "$WORK/out" "$VOL")
F_FULL=$(jq_ "$WORK/r1.json" "v['bytes_fetched']")

# CHANGED_BLOCKS blocks rewritten, spread evenly over the volume.
"$PY" - "$SRC" "$CHANGED_BLOCKS" <<'PYEOF'
import os, sys
path, n = sys.argv[1], int(sys.argv[2])
blocks = os.path.getsize(path) // 524288
with open(path, "r+b") as f:
    for k in range(n):
        f.seek((k * blocks // n) * 524288)
        f.write(os.urandom(524288))
PYEOF
OPTS2="{\"keep_base\": true, \"poll_interval_ms\": 100, \"overwrite\": true, \"incremental_from\": \"$WORK/r1.json\"}"
T_INC=$(timed "$FETCH" --provider aws --config "@$WORK/config.json" --options "$OPTS2" \
  --result "$WORK/r2.json" "$WORK/out" "$VOL")
F_INC=$(jq_ "$WORK/r2.json" "v['bytes_fetched']")
MODE=$(jq_ "$WORK/r2.json" "v['incremental']['files'][0]['mode']")
SNAP2=$(jq_ "$WORK/r2.json" "v['snapshots'][0]['snapshot_id']")
GETS=$("$PY" -c "import json,sys,urllib.request as u; print(json.load(u.urlopen(sys.argv[1]))['gets'].get(sys.argv[2], 0))" \
  "$CONTROL/ebs/stats" "$SNAP2")
IMG="$WORK/out/$VOL.img"
cmp "$IMG" "$SRC" || { echo "the incremental image differs from the volume" >&2; exit 1; }
T_FRESH=$(timed "$FETCH" --provider aws --config "@$WORK/config.json" --options '{"poll_interval_ms": 100}' \
  "$WORK/full" "$SNAP2")
cmp "$IMG" "$WORK/full/$SNAP2.img" || { echo "the incremental image differs from a full export" >&2; exit 1; }

echo "### Incremental export, AWS: 1 GiB volume, $DATA_MIB MiB of data, $CHANGED_BLOCKS blocks of 512 KiB changed (moto + EBS stand-in, loopback, $(nproc) cores)"
echo
echo "| export | seconds | bytes fetched | % of the volume | GetSnapshotBlock at the peer |"
echo "|---|---:|---:|---:|---:|"
printf '| full (base) | %.2f | %d | %.1f %% | |\n' "$T_FULL" "$F_FULL" "$(echo "$F_FULL * 100 / 1073741824" | bc -l)"
printf '| incremental (%s) | %.2f | %d | %.2f %% | %d |\n' "$MODE" "$T_INC" "$F_INC" "$(echo "$F_INC * 100 / 1073741824" | bc -l)" "$GETS"
printf '| fresh full of the new snapshot | %.2f | | | |\n' "$T_FRESH"
echo
echo "The incremental image equals the volume and the fresh full export (cmp)."

# Azure: the same measure on a managed disk (Azurite behind the ARM stand-in and the blob proxy
# that counts the bytes it serves), through the test suite's harness, which starts those peers:
# tests/azure_incremental.rs's ignored `measure_a_1_gib_disk_with_1_percent_changed` (1 GiB disk,
# 256 MiB of data, 20 ranges of 512 KiB rewritten; it asserts the peer served only those bytes and
# that the image equals a fresh full export). A debug build (the suite's): its seconds are the
# peer's, the bytes are the point. AZURE=0 skips it.
if [ "${AZURE:-1}" = 1 ]; then
  LINE=$(cargo test --no-default-features --features azure --test azure_incremental \
    measure_a_1_gib_disk_with_1_percent_changed -- --ignored --nocapture --exact 2>&1 |
    tee "$WORK/azure.log" | grep '^full: ' || true)
  [ -n "$LINE" ] || { echo "the Azure measure failed (see $WORK/azure.log)" >&2; exit 1; }
  echo
  echo "### Incremental export, Azure: 1 GiB managed disk, 256 MiB of data, 20 ranges of 512 KiB changed (Azurite + ARM stand-in, loopback)"
  echo
  echo "$LINE"
  echo
  echo "The incremental image equals the disk and a fresh full export of the new snapshot."
fi
if [ -n "$VSPHERE" ]; then
  echo
  bash benches/incremental_vsphere.sh
fi
