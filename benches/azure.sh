#!/usr/bin/env bash
# Azure page blob benchmark: a 4 GiB page blob with 25 % of its pages written (scattered 4 MiB
# runs), served by Azurite 3.35.0 over HTTPS on loopback, read through a SAS. In the same run:
# hypersdk (examples/fetch, provider azure, the blob URL), azcopy v10.28.1 (`azcopy copy`) and
# aria2c (16 connections on the SAS URL). Reports the median wall time of RUNS, bytes that crossed
# loopback during a run (/sys/class/net/lo: payload plus TLS and HTTP overhead), bytes allocated
# on disk, peak RSS; every output is compared with the source.
#
# usage: benches/azure.sh   (installs aria2/time/bc from apt, Azurite + the Python SDK with
#                            tests/peers/azure/install.sh, azcopy with go into ~/.cache/hypersdk-tools)
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/hypersdk-target}"
RUNS="${RUNS:-3}"
WORK="${BENCH_DIR:-/tmp/hs-bench-azure}"
TOOLS="$HOME/.cache/hypersdk-tools"
need=()
[ -x /usr/bin/time ] || need+=(time)
command -v bc >/dev/null || need+=(bc)
command -v aria2c >/dev/null || need+=(aria2)
if [ ${#need[@]} -gt 0 ]; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}"
fi
tests/peers/azure/install.sh
if [ ! -x "$TOOLS/bin/azcopy" ]; then
  d=$(mktemp -d)
  printf 'module azbuild\n\ngo 1.22\n\nrequire github.com/Azure/azure-storage-azcopy/v10 v10.28.1\n' >"$d/go.mod"
  (cd "$d" && GOFLAGS=-mod=mod go build -o "$TOOLS/bin/azcopy" github.com/Azure/azure-storage-azcopy/v10)
fi
cargo build --release --example fetch >&2
FETCH="$CARGO_TARGET_DIR/release/examples/fetch"

mkdir -p "$WORK" && rm -rf "$WORK/azurite" "$WORK/out" && mkdir -p "$WORK/azurite" "$WORK/out"
if [ ! -f "$WORK/cert.pem" ]; then
  openssl req -x509 -newkey rsa:2048 -nodes -keyout "$WORK/key.pem" -out "$WORK/cert.pem" -days 30 \
    -subj "/CN=127.0.0.1" -addext "subjectAltName=IP:127.0.0.1" \
    -addext "basicConstraints=critical,CA:FALSE" >/dev/null 2>&1
fi
# The source: 4 GiB, one 4 MiB run written in every 16 MiB (25 %), the rest never written.
if [ ! -f "$WORK/src.vhd" ]; then
  python3 - "$WORK/src.vhd" <<'PY'
import os, sys
size, run, step = 4 << 30, 4 << 20, 16 << 20
with open(sys.argv[1], "wb") as f:
    f.truncate(size)
    for off in range(0, size, step):
        f.seek(off)
        f.write(os.urandom(run))
PY
fi
# The stand-in starts Azurite and uploads the written pages; we read its SAS for the blob.
exec 3< <(tail -f /dev/null)
"$TOOLS/azure-venv/bin/python" tests/peers/azure/arm_standin.py --azurite \
  "$TOOLS/azurite/node_modules/.bin/azurite-blob" --cert "$WORK/cert.pem" --key "$WORK/key.pem" \
  --workdir "$WORK/azurite" --exit-on-stdin-eof <&3 >"$WORK/peer.json" 2>"$WORK/peer.log" &
PEER=$!
trap 'kill $PEER 2>/dev/null || true; pkill -f "azurite-blob.*$WORK" 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do [ -s "$WORK/peer.json" ] && break; sleep 0.2; done
ARM=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['arm'])" "$WORK/peer.json")
CURL=(curl -sS --cacert "$WORK/cert.pem")
"${CURL[@]}" -X POST "$ARM/_admin/disks" -d "{\"name\": \"bench\", \"rg\": \"rg1\", \"path\": \"$WORK/src.vhd\"}" >/dev/null
SAS=$("${CURL[@]}" -X POST "$ARM/_admin/sas" -d '{"name": "bench", "rg": "rg1"}' |
  python3 -c "import json,sys; print(json.load(sys.stdin)['sas'])")
CONFIG_FILE="$WORK/config.json"
python3 - "$WORK/peer.json" "$WORK/cert.pem" >"$CONFIG_FILE" <<'PY'
import json, sys
i = json.load(open(sys.argv[1]))
print(json.dumps({"subscription_id": i["subscription"], "arm_endpoint": i["arm"],
                  "authority_host": i["arm"], "tenant_id": i["tenant"], "client_id": i["client_id"],
                  "client_secret": i["client_secret"], "ca_bundle_path": sys.argv[2]}))
PY
# azcopy and aria2c trust the test certificate through the usual variables / flags.
export SSL_CERT_FILE="$WORK/cert.pem"
export AZCOPY_LOG_LOCATION="$WORK/azcopy-logs" AZCOPY_JOB_PLAN_LOCATION="$WORK/azcopy-plans"

. benches/lib.sh

declare -A SECS RSS DISK WIRE
lo() { cat /sys/class/net/lo/statistics/rx_bytes; }
for tool in azcopy aria2c hypersdk; do
  times=(); maxrss=0
  for _ in $(seq 1 "$RUNS"); do
    before=$(lo)
    case $tool in
      azcopy) r=$(measure "$TOOLS/bin/azcopy" copy "$SAS" "$WORK/out/bench.vhd" --from-to BlobLocal --log-level ERROR) ;;
      aria2c) r=$(measure aria2c -q -x 16 -s 16 -k 4M --ca-certificate="$WORK/cert.pem" \
        --file-allocation=none -d "$WORK/out" -o bench.vhd "$SAS") ;;
      hypersdk) r=$(measure "$FETCH" --provider azure --config "@$CONFIG_FILE" \
        --options '{"file_name": "bench.vhd"}' "$WORK/out" "$SAS") ;;
    esac
    WIRE[$tool]=$(( $(lo) - before ))
    cmp -s "$WORK/out/bench.vhd" "$WORK/src.vhd" || { echo "$tool: output differs" >&2; exit 1; }
    times+=("${r% *}")
    rss=${r#* }; [ "$rss" -gt "$maxrss" ] && maxrss=$rss
    DISK[$tool]=$(( $(stat -c %b "$WORK/out/bench.vhd") * 512 ))
  done
  SECS[$tool]=$(printf '%s\n' "${times[@]}" | median)
  RSS[$tool]=$maxrss
done
written=$((1 << 30))
echo "### Azure: a 4 GiB page blob, 25 % written, from Azurite 3.35.0 over HTTPS on loopback (median of $RUNS, $(nproc) cores)"
echo
echo "| tool | wall s | over loopback MiB | on disk MiB | peak RSS MiB | ratio to azcopy |"
echo "|---|---|---|---|---|---|"
for tool in azcopy aria2c hypersdk; do
  printf '| %s | %.2f | %d | %d | %d | %.2f× |\n' "$tool" "${SECS[$tool]}" \
    $((WIRE[$tool] >> 20)) $((DISK[$tool] >> 20)) $((RSS[$tool] / 1024)) \
    "$(echo "${SECS[azcopy]} / ${SECS[$tool]}" | bc -l)"
done
echo
echo "Written pages: $((written >> 20)) MiB. Ratio > 1 means faster than azcopy."
