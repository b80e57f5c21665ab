#!/usr/bin/env bash
# One link, the single-file rows only: nginx behind toxiproxy with RATE_KB per connection and
# LATENCY_MS, one file of MIB; hypersdk at defaults and with a fixed 64 parts in flight
# (benches/fetch.c over the release library), rclone (16 streams) and aria2c -x16, each also
# followed by `sync` of its file ("+sync": hypersdk fsyncs before it reports done). Medians of
# RUNS interleaved rounds, CPU seconds (user+sys) per GiB. The quick check beside
# benches/cloudlike.sh (the issue's 25 MB/s, 20 ms link is `RATE_KB=25000 LATENCY_MS=20
# MIB=512`).
#
# usage: RATE_KB=10000 LATENCY_MS=40 MIB=1024 benches/link.sh
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/hypersdk-target}"
RUNS="${RUNS:-3}"
RATE_KB="${RATE_KB:-10000}"
LATENCY_MS="${LATENCY_MS:-40}"
MIB="${MIB:-1024}"
PORT="${PORT:-18190}"
TPORT="${TPORT:-18574}"
LPORT="${LPORT:-18192}"
WORK="${BENCH_DIR:-/tmp/hs-bench-link}"

. benches/lib.sh
need_tools nginx:nginx-light aria2c:aria2 rclone:rclone curl:curl /usr/bin/time:time bc:bc
build_cfetch
mkdir -p "$WORK/data" "$WORK/out"
SRC="$WORK/data/full.bin"
[ "$(stat -c %s "$SRC" 2>/dev/null || echo 0)" = $((MIB << 20)) ] || head -c $((MIB << 20)) /dev/urandom >"$SRC"
start_nginx link "$PORT" "$WORK/data"
start_toxiproxy "$TPORT" "$WORK/toxiproxy.log"
trap 'stop_nginx link; kill $TOXI_PID 2>/dev/null || true' EXIT
toxi_link link "$LPORT" "127.0.0.1:$PORT" "$RATE_KB" "$LATENCY_MS"
URL="http://127.0.0.1:$LPORT/full.bin"
OUT="$WORK/out/full.bin"
BYTES=$((MIB << 20))

ARIA=(aria2c -q -x16 -s16 -k1M --file-allocation=none --allow-overwrite=true -d "$WORK/out" -o full.bin "$URL")
RCLONE=(rclone copyto -q --http-url "http://127.0.0.1:$LPORT" ":http:full.bin" "$OUT" --multi-thread-streams 16 --multi-thread-cutoff 1M)
add aria2c 16 $BYTES "$OUT" "$SRC" "${ARIA[@]}"
add aria2c+sync 16 $BYTES "$OUT" "$SRC" bash -c 'then_sync "$@"' _ "$OUT" -- "${ARIA[@]}"
add rclone 16 $BYTES "$OUT" "$SRC" "${RCLONE[@]}"
add rclone+sync 16 $BYTES "$OUT" "$SRC" bash -c 'then_sync "$@"' _ "$OUT" -- "${RCLONE[@]}"
add hypersdk 64 $BYTES "$OUT" "$SRC" "$FETCH" "$WORK/out" "$URL"
add hypersdk-fixed64 64 $BYTES "$OUT" "$SRC" "$FETCH" --options '{"parts_in_flight": 64, "max_parts_in_flight": 64}' "$WORK/out" "$URL"
run_all

best() { printf '%s\n' "$@" | sort -n | head -1; }
ratio() { echo "$1 / $2" | bc -l | cut -c1-4; }
echo "### ${RATE_KB} KB/s per connection, ${LATENCY_MS} ms (toxiproxy), one $MIB MiB file, median of $RUNS, $(nproc) cores"
echo
echo "| tool | seconds | MiB/s | CPU s per GiB | peak RSS MiB |"
echo "|---|---:|---:|---:|---:|"
for label in "${LABELS[@]}"; do
  printf '| %s | %.2f | %.0f | %.2f | %d |\n' "$label" "${SECS[$label]}" "$(echo "$MIB / ${SECS[$label]}" | bc -l)" \
    "$(echo "${CPUS[$label]} * 1024 / $MIB" | bc -l)" $((${RSS[$label]} / 1024))
done
echo
echo "hypersdk (defaults) vs the best of aria2c/rclone: $(ratio "$(best "${SECS[aria2c]}" "${SECS[rclone]}")" "${SECS[hypersdk]}")× to exit, $(ratio "$(best "${SECS[aria2c+sync]}" "${SECS[rclone+sync]}")" "${SECS[hypersdk]}")× to bytes on disk; CPU per GiB $(ratio "${CPUS[hypersdk]}" "${CPUS[aria2c]}")× aria2c's"
