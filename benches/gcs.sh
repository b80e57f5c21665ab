#!/usr/bin/env bash
# Cloud Storage benchmark: a 2 GiB object in fake-gcs-server v1.56.1 (tests/peers/gcp/install.sh)
# on loopback, plain HTTP. In the same run: hypersdk (examples/fetch, provider gcp,
# gs://bucket/object, the JSON API with ranged parallel GETs, crc32c verified), rclone
# (`copyto`, GCS backend, 8 multi-thread streams) and aria2c (16 connections on the object's
# media URL, what a signed URL would be). Reports the median wall time of RUNS and peak RSS;
# every output is compared with the source.
#
# usage: benches/gcs.sh   (installs aria2, rclone, time, bc from apt; fake-gcs-server with go)
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/hypersdk-target}"
RUNS="${RUNS:-3}"
WORK="${BENCH_DIR:-/tmp/hs-bench-gcs}"
need=()
[ -x /usr/bin/time ] || need+=(time)
command -v bc >/dev/null || need+=(bc)
command -v aria2c >/dev/null || need+=(aria2)
command -v rclone >/dev/null || need+=(rclone)
if [ ${#need[@]} -gt 0 ]; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}"
fi
FAKE_GCS=$(tests/peers/gcp/install.sh)
cargo build --release --example fetch >&2
FETCH="$CARGO_TARGET_DIR/release/examples/fetch"

mkdir -p "$WORK" && rm -rf "$WORK/out" && mkdir -p "$WORK/out"
[ -f "$WORK/src.bin" ] || head -c $((2 << 30)) /dev/urandom >"$WORK/src.bin"
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$FAKE_GCS" -scheme http -host 127.0.0.1 -port "$PORT" -backend memory \
  -public-host "127.0.0.1:$PORT" -log-level error >"$WORK/gcs.log" 2>&1 &
GCS=$!
trap 'kill $GCS 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do curl -s "http://127.0.0.1:$PORT/storage/v1/b" >/dev/null && break; sleep 0.1; done
BASE="http://127.0.0.1:$PORT"
curl -sS -X POST -H 'content-type: application/json' -d '{"name":"bench"}' "$BASE/storage/v1/b?project=p" >/dev/null
curl -sS -X POST -T "$WORK/src.bin" -H "content-type: application/octet-stream" \
  "$BASE/upload/storage/v1/b/bench/o?uploadType=media&name=big.bin" >/dev/null
CONFIG="{\"anonymous\": true, \"storage_endpoint\": \"$BASE\"}"
RCLONE_CONF="$WORK/rclone.conf"
printf '[bench]\ntype = google cloud storage\nanonymous = true\nendpoint = %s/storage/v1/\n' "$BASE" >"$RCLONE_CONF"

. benches/lib.sh

declare -A SECS RSS
for tool in rclone aria2c hypersdk; do
  times=(); maxrss=0
  for _ in $(seq 1 "$RUNS"); do
    case $tool in
      rclone) r=$(measure rclone --config "$RCLONE_CONF" copyto --multi-thread-streams 8 \
        bench:bench/big.bin "$WORK/out/big.bin") ;;
      aria2c) r=$(measure aria2c -q -x 16 -s 16 -k 8M --file-allocation=none -d "$WORK/out" \
        -o big.bin "$BASE/storage/v1/b/bench/o/big.bin?alt=media") ;;
      hypersdk) r=$(measure "$FETCH" --provider gcp --config "$CONFIG" "$WORK/out" gs://bench/big.bin) ;;
    esac
    cmp -s "$WORK/out/big.bin" "$WORK/src.bin" || { echo "$tool: output differs" >&2; exit 1; }
    times+=("${r% *}")
    rss=${r#* }; [ "$rss" -gt "$maxrss" ] && maxrss=$rss
  done
  SECS[$tool]=$(printf '%s\n' "${times[@]}" | median)
  RSS[$tool]=$maxrss
done
fastest=$(printf '%s\n' "${SECS[rclone]}" "${SECS[aria2c]}" | sort -n | head -1)
echo "### GCS: a 2 GiB object from fake-gcs-server v1.56.1 on loopback (median of $RUNS, $(nproc) cores)"
echo
echo "| tool | wall s | peak RSS MiB | ratio to the faster of rclone/aria2c |"
echo "|---|---|---|---|"
for tool in rclone aria2c hypersdk; do
  printf '| %s | %.2f | %d | %.2f× |\n' "$tool" "${SECS[$tool]}" $((RSS[$tool] / 1024)) \
    "$(echo "$fastest / ${SECS[$tool]}" | bc -l)"
done
echo
echo "Ratio > 1 means faster than the faster of rclone and aria2c."
