#!/usr/bin/env bash
# "Cloud-like" download benchmark: nginx behind toxiproxy with a bandwidth limit PER CONNECTION
# (RATE_KB, default 50 000 KB/s ≈ 50 MB/s, what one S3 connection gets) and 20 ms of latency, so
# parallel connections matter as they do against a real object store. In one run, medians of
# RUNS:
#   - one file of BIG_MIB (2 GiB by default): curl (1 stream), aria2c -x16 -s16, rclone (http backend,
#     --multi-thread-streams 16), hypersdk (benches/fetch.c over the shipped libhypersdk.so,
#     default 8 parts in flight, and 16);
#   - 16 × 256 MiB files at once: aria2c -j16, rclone --transfers 16, hypersdk (16 exports);
#   - hypersdk's throughput against the number of parts in flight (1, 2, 4, 8, 16, 32);
#   - CPU per GiB (user+sys) of hypersdk and curl over raw loopback (no proxy), and hypersdk with
#     a C progress callback every 1 ms against none;
#   - a slower link (SLOW_RATE_KB, default 10 000 KB/s per connection, SLOW_LATENCY_MS 40 ms), one
#     1 GiB file: aria2c, rclone, hypersdk at defaults, fixed 16 and fixed 64 parts in flight;
#   - the machine's limits in the same run: dd of the same size with fdatasync, curl over raw loopback
#     to /dev/null;
#   - "+sync" rows (the tool, then `sync` of its files) for every other tool: hypersdk fsyncs
#     before it reports done, so its time is already "durable"; CPU seconds (user+sys) per GiB
#     for every row;
#   - throughput against time of one default hypersdk download on the slow link
#     (docs/bench-data/trace.csv; the part-count controller's steps).
# The library is the release build (`cargo build --release --lib`), or the libhypersdk.so in
# HS_LIB_DIR (e.g. one benches/profiles.sh kept).
# Tables go to stdout (Markdown), raw numbers to $OUT_CSV (benches/plot.py draws the charts).
#
# usage: benches/cloudlike.sh   (installs nginx-light, aria2, rclone, curl, time, bc from apt,
#                                toxiproxy with go install)
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/hypersdk-target}"
RUNS="${RUNS:-3}"
RATE_KB="${RATE_KB:-50000}"
LATENCY_MS="${LATENCY_MS:-20}"
PORT="${PORT:-18090}"
TPORT="${TPORT:-18474}"
LPORT="${LPORT:-18091}"
# File sizes (MiB): the single file (both links; 1024 fits a small disk) and each of the 16.
BIG_MIB="${BIG_MIB:-2048}"
Q_MIB="${Q_MIB:-256}"
SLOW_RATE_KB="${SLOW_RATE_KB:-10000}"
SLOW_LATENCY_MS="${SLOW_LATENCY_MS:-40}"
SLPORT="${SLPORT:-18092}"
WORK="${BENCH_DIR:-/tmp/hs-bench}"
OUT_CSV="${OUT_CSV:-docs/bench-data/cloudlike.csv}"

. benches/lib.sh
need_tools nginx:nginx-light aria2c:aria2 rclone:rclone curl:curl /usr/bin/time:time bc:bc

build_cfetch

mkdir -p "$WORK/data" "$WORK/out" "$WORK/nginx" "$(dirname "$OUT_CSV")"
# Sources of the sizes asked for (a source of another size from an earlier run is replaced).
for f in "full.bin:$BIG_MIB" "q.bin:$Q_MIB"; do
  p="$WORK/data/${f%%:*}"
  [ "$(stat -c %s "$p" 2>/dev/null || echo 0)" = $((${f#*:} << 20)) ] || head -c $((${f#*:} << 20)) /dev/urandom >"$p"
done
for i in $(seq 0 15); do ln -sf q.bin "$WORK/data/q$i.bin"; done

start_nginx cloudlike "$PORT" "$WORK/data" "autoindex on;"
start_toxiproxy "$TPORT" "$WORK/toxiproxy.log"
trap 'stop_nginx cloudlike; kill $TOXI_PID 2>/dev/null || true' EXIT
toxi_link cloud "$LPORT" "127.0.0.1:$PORT" "$RATE_KB" "$LATENCY_MS"
toxi_link slow "$SLPORT" "127.0.0.1:$PORT" "$SLOW_RATE_KB" "$SLOW_LATENCY_MS"
CLOUD="http://127.0.0.1:$LPORT"
SLOW="http://127.0.0.1:$SLPORT"
RAW="http://127.0.0.1:$PORT"
echo "kind,tool,streams,seconds,mib_per_s,peak_rss_mib" >"$OUT_CSV"

BIG=$((BIG_MIB << 20))
OUTF="$WORK/out/full.bin" SRCF="$WORK/data/full.bin"
ARIA_ONE=(aria2c -q -x16 -s16 -k1M --file-allocation=none --allow-overwrite=true -d "$WORK/out" -o full.bin "$CLOUD/full.bin")
RCLONE_ONE=(rclone copyto -q --http-url "$CLOUD" ":http:full.bin" "$OUTF" --multi-thread-streams 16 --multi-thread-cutoff 1M)
# The machine's limits, in the same rounds: the disk (BIG_MIB with fdatasync) and raw loopback.
add "limits:dd-fdatasync" 1 $BIG /dev/null /dev/null dd if=/dev/zero of="$WORK/out/dd.bin" bs=1M count="$BIG_MIB" conv=fdatasync status=none
add "limits:loopback-devnull" 1 $BIG /dev/null /dev/null curl -s -o /dev/null "$RAW/full.bin"
add "single:curl" 1 $BIG "$OUTF" "$SRCF" curl -s -o "$OUTF" "$CLOUD/full.bin"
add "single:curl+sync" 1 $BIG "$OUTF" "$SRCF" bash -c 'then_sync "$@"' _ "$OUTF" -- curl -s -o "$OUTF" "$CLOUD/full.bin"
add "single:aria2c" 16 $BIG "$OUTF" "$SRCF" "${ARIA_ONE[@]}"
add "single:aria2c+sync" 16 $BIG "$OUTF" "$SRCF" bash -c 'then_sync "$@"' _ "$OUTF" -- "${ARIA_ONE[@]}"
add "single:rclone" 16 $BIG "$OUTF" "$SRCF" "${RCLONE_ONE[@]}"
add "single:rclone+sync" 16 $BIG "$OUTF" "$SRCF" bash -c 'then_sync "$@"' _ "$OUTF" -- "${RCLONE_ONE[@]}"
# The default: 16 parts in flight at the start, more while they pay (up to 64), parts of 8 to 64 MiB.
add "single:hypersdk" 64 $BIG "$OUTF" "$SRCF" "$FETCH" "$WORK/out" "$CLOUD/full.bin"
# The same with fixed 8 MiB parts (before guided part sizes).
add "single:hypersdk-8m" 64 $BIG "$OUTF" "$SRCF" "$FETCH" --options '{"max_part_size": 8388608}' "$WORK/out" "$CLOUD/full.bin"

MANY=$((16 * (Q_MIB << 20)))
urls=() files=() outs=()
for i in $(seq 0 15); do urls+=("$CLOUD/q$i.bin"); files+=("q$i.bin"); outs+=("$WORK/out/q$i.bin"); done
printf '%s\n' "${urls[@]}" >"$WORK/urls.txt"
printf '%s\n' "${files[@]}" >"$WORK/files.txt"
OUTQ="$WORK/out/q15.bin" SRCQ="$WORK/data/q.bin"
RCLONE_MANY=(rclone copy -q --http-url "$CLOUD" :http: "$WORK/out" --files-from "$WORK/files.txt" --transfers 16 --multi-thread-streams 1)
ARIA_MANY=(aria2c -q -j16 -x1 --file-allocation=none --allow-overwrite=true -d "$WORK/out" -i "$WORK/urls.txt")
add "many:aria2c" 16 $MANY "$OUTQ" "$SRCQ" "${ARIA_MANY[@]}"
add "many:aria2c+sync" 16 $MANY "$OUTQ" "$SRCQ" bash -c 'then_sync "$@"' _ "${outs[@]}" -- "${ARIA_MANY[@]}"
add "many:rclone" 16 $MANY "$OUTQ" "$SRCQ" "${RCLONE_MANY[@]}"
add "many:rclone+sync" 16 $MANY "$OUTQ" "$SRCQ" bash -c 'then_sync "$@"' _ "${outs[@]}" -- "${RCLONE_MANY[@]}"
add "many:hypersdk" 16 $MANY "$OUTQ" "$SRCQ" "$FETCH" --global '{"max_concurrent_exports": 16}' --options '{"parts_in_flight": 1, "max_parts_in_flight": 1}' "$WORK/out" "${urls[@]}"
add "many:hypersdk-auto" 16 $MANY "$OUTQ" "$SRCQ" "$FETCH" --global '{"max_concurrent_exports": 16}' "$WORK/out" "${urls[@]}"

# hypersdk against a fixed count of parts in flight.
for n in 1 2 4 8 16 32; do
  add "streams:hypersdk-$n" "$n" $BIG "$OUTF" "$SRCF" "$FETCH" --options "{\"parts_in_flight\": $n, \"max_parts_in_flight\": $n}" "$WORK/out" "$CLOUD/full.bin"
done
# The slow link (10 MB/s per connection, 40 ms), the same file.
G1=$BIG
OUTG="$OUTF" SRCG="$SRCF"
ARIA_SLOW=(aria2c -q -x16 -s16 -k1M --file-allocation=none --allow-overwrite=true -d "$WORK/out" -o full.bin "$SLOW/full.bin")
RCLONE_SLOW=(rclone copyto -q --http-url "$SLOW" ":http:full.bin" "$OUTG" --multi-thread-streams 16 --multi-thread-cutoff 1M)
add "slow:aria2c" 16 $G1 "$OUTG" "$SRCG" "${ARIA_SLOW[@]}"
add "slow:aria2c+sync" 16 $G1 "$OUTG" "$SRCG" bash -c 'then_sync "$@"' _ "$OUTG" -- "${ARIA_SLOW[@]}"
add "slow:rclone" 16 $G1 "$OUTG" "$SRCG" "${RCLONE_SLOW[@]}"
add "slow:rclone+sync" 16 $G1 "$OUTG" "$SRCG" bash -c 'then_sync "$@"' _ "$OUTG" -- "${RCLONE_SLOW[@]}"
add "slow:hypersdk" 64 $G1 "$OUTG" "$SRCG" "$FETCH" "$WORK/out" "$SLOW/full.bin"
add "slow:hypersdk-fixed16" 16 $G1 "$OUTG" "$SRCG" "$FETCH" --options '{"parts_in_flight": 16, "max_parts_in_flight": 16}' "$WORK/out" "$SLOW/full.bin"
add "slow:hypersdk-fixed64" 64 $G1 "$OUTG" "$SRCG" "$FETCH" --options '{"parts_in_flight": 64, "max_parts_in_flight": 64}' "$WORK/out" "$SLOW/full.bin"
run_all
SECS[single:hypersdk-16]=${SECS[streams:hypersdk-16]} RSS[single:hypersdk-16]=${RSS[streams:hypersdk-16]} CPUS[single:hypersdk-16]=${CPUS[streams:hypersdk-16]}

# CPU per GiB over raw loopback (user + sys of the client only), median of RUNS (one run is
# noisy: ±40 % on this shared machine).
cpu() {
  local log out=()
  log="$(mktemp)"
  for _ in $(seq 1 "$RUNS"); do
    rm -rf "$WORK/out" && mkdir -p "$WORK/out" && sync
    /usr/bin/time -f "%U %S" -o "$log" "$@" >/dev/null
    out+=("$(awk -v gib="$(echo "$BIG_MIB / 1024" | bc -l)" '{printf "%.2f", ($1 + $2) / gib}' "$log")")
  done
  rm -f "$log"
  printf '%s\n' "${out[@]}" | median
}
declare -A CPU
CPU[curl]=$(cpu curl -s -o "$WORK/out/full.bin" "$RAW/full.bin")
CPU[curl+sync]=$(cpu bash -c 'then_sync "$@"' _ "$WORK/out/full.bin" -- curl -s -o "$WORK/out/full.bin" "$RAW/full.bin")
CPU[hypersdk]=$(cpu "$FETCH" "$WORK/out" "$RAW/full.bin")
CPU[hypersdk-cb1ms]=$(cpu "$FETCH" --count-progress --options '{"progress_interval_ms": 1}' "$WORK/out" "$RAW/full.bin")

ceiling() { echo "$1 * $RATE_KB * 1000 / 1048576" | bc -l; }
best() { printf '%s\n' "$@" | sort -n | head -1; }
ratio() { echo "$1 / $2" | bc -l | cut -c1-4; }
echo "### Cloud-like link: ${RATE_KB} KB/s per connection, ${LATENCY_MS} ms latency (toxiproxy), median of $RUNS, $(nproc) cores"
echo
echo "| download | tool | streams | seconds | MiB/s | of streams × limit | CPU s per GiB | peak RSS MiB |"
echo "|---|---|---:|---:|---:|---:|---:|---:|"
for label in single:curl single:curl+sync single:aria2c single:aria2c+sync single:rclone single:rclone+sync single:hypersdk single:hypersdk-8m single:hypersdk-16 many:aria2c many:aria2c+sync many:rclone many:rclone+sync many:hypersdk many:hypersdk-auto; do
  case $label in single:*) bytes=$BIG ;; *) bytes=$MANY ;; esac
  case $label in single:hypersdk) streams=64 ;; single:hypersdk-16) streams=16 ;;
    *) streams=$(grep "^${label%%:*},${label#*:}," "$OUT_CSV" | cut -d, -f3) ;; esac
  mibs=$(echo "$bytes / 1048576 / ${SECS[$label]}" | bc -l)
  printf '| %s | %s | %s | %.1f | %.0f | %.0f %% | %.2f | %d |\n' "${label%%:*}" "${label#*:}" "$streams" "${SECS[$label]}" "$mibs" \
    "$(echo "100 * $mibs / $(ceiling "$streams")" | bc -l)" "$(echo "${CPUS[$label]} * 1073741824 / $bytes" | bc -l)" $((${RSS[$label]} / 1024))
done
echo
echo "Machine limits in the same rounds: dd of $BIG_MIB MiB with fdatasync $(printf %.2f "${SECS[limits:dd-fdatasync]}") s ($(echo "$BIG_MIB / ${SECS[limits:dd-fdatasync]}" | bc -l | cut -d. -f1) MiB/s); curl of $BIG_MIB MiB over raw loopback to /dev/null $(printf %.2f "${SECS[limits:loopback-devnull]}") s ($(echo "$BIG_MIB / ${SECS[limits:loopback-devnull]}" | bc -l | cut -d. -f1) MiB/s)."
echo
echo "Files: one of $BIG_MIB MiB; 16 of $Q_MIB MiB."
echo
echo "### Slow link: ${SLOW_RATE_KB} KB/s per connection, ${SLOW_LATENCY_MS} ms latency, one $BIG_MIB MiB file, median of $RUNS"
echo
echo "| tool | seconds | MiB/s | CPU s per GiB | peak RSS MiB |"
echo "|---|---:|---:|---:|---:|"
for label in slow:aria2c slow:aria2c+sync slow:rclone slow:rclone+sync slow:hypersdk slow:hypersdk-fixed16 slow:hypersdk-fixed64; do
  printf '| %s | %.2f | %.0f | %.2f | %d |\n' "${label#*:}" "${SECS[$label]}" "$(echo "$BIG_MIB / ${SECS[$label]}" | bc -l)" "$(echo "${CPUS[$label]} * 1024 / $BIG_MIB" | bc -l)" $((${RSS[$label]} / 1024))
done
echo
echo "hypersdk (default) vs the best other tool, slow link: $(ratio "$(best "${SECS[slow:aria2c]}" "${SECS[slow:rclone]}")" "${SECS[slow:hypersdk]}")× to exit, $(ratio "$(best "${SECS[slow:aria2c+sync]}" "${SECS[slow:rclone+sync]}")" "${SECS[slow:hypersdk]}")× to bytes on disk; CPU per GiB $(ratio "${CPUS[slow:hypersdk]}" "${CPUS[slow:aria2c]}")× aria2c's"
echo "hypersdk (default) CPU per GiB on the ${RATE_KB} KB/s link: $(ratio "${CPUS[single:hypersdk]}" "${CPUS[single:aria2c]}")× aria2c's"
echo
echo "hypersdk (default) vs the best other tool, single file: $(ratio "$(best "${SECS[single:aria2c]}" "${SECS[single:rclone]}")" "${SECS[single:hypersdk]}")× to exit, $(ratio "$(best "${SECS[single:aria2c+sync]}" "${SECS[single:rclone+sync]}")" "${SECS[single:hypersdk]}")× to bytes on disk; 16 files: $(ratio "$(best "${SECS[many:aria2c]}" "${SECS[many:rclone]}")" "${SECS[many:hypersdk-auto]}")× to exit, $(ratio "${SECS[many:rclone+sync]}" "${SECS[many:hypersdk-auto]}")× rclone to bytes on disk"
echo
echo "| parts in flight | 1 | 2 | 4 | 8 | 16 | 32 |"
echo "|---|---:|---:|---:|---:|---:|---:|"
printf '| MiB/s |'
for n in 1 2 4 8 16 32; do printf ' %.0f |' "$(echo "$BIG / 1048576 / ${SECS[streams:hypersdk-$n]}" | bc -l)"; done
echo
echo
echo "CPU seconds per GiB over raw loopback: curl ${CPU[curl]}, curl then sync ${CPU[curl+sync]}, hypersdk ${CPU[hypersdk]} ($(ratio "${CPU[hypersdk]}" "${CPU[curl]}")× curl, $(ratio "${CPU[hypersdk]}" "${CPU[curl+sync]}")× curl then sync), hypersdk with a progress callback every 1 ms ${CPU[hypersdk-cb1ms]}"
echo "cpu,curl,1,${CPU[curl]},," >>"$OUT_CSV"
echo "cpu,curl+sync,1,${CPU[curl+sync]},," >>"$OUT_CSV"
echo "cpu,hypersdk,8,${CPU[hypersdk]},," >>"$OUT_CSV"
echo "cpu,hypersdk-cb1ms,8,${CPU[hypersdk-cb1ms]},," >>"$OUT_CSV"

# RSS over time of one 16-file run (sampled every 0.2 s), then the charts.
RSS_CSV="$(dirname "$OUT_CSV")/rss.csv"
echo "seconds,rss_mib" >"$RSS_CSV"
rm -rf "$WORK/out" && mkdir -p "$WORK/out"
"$FETCH" --global '{"max_concurrent_exports": 16}' "$WORK/out" "${urls[@]}" >/dev/null &
pid=$!
t0=$(date +%s.%N)
while kill -0 $pid 2>/dev/null; do
  kib=$(awk '/VmRSS/ {print $2}' /proc/$pid/status 2>/dev/null || true)
  [ -n "$kib" ] && printf '%.2f,%.1f\n' "$(echo "$(date +%s.%N) - $t0" | bc -l)" "$(echo "$kib / 1024" | bc -l)" >>"$RSS_CSV"
  sleep 0.2
done
wait $pid
# Throughput against time of one default download on the slow link (progress every 50 ms).
rm -rf "$WORK/out" && mkdir -p "$WORK/out" && sync
"$FETCH" --trace "$(dirname "$OUT_CSV")/trace.csv" --options '{"progress_interval_ms": 50}' "$WORK/out" "$SLOW/full.bin" >/dev/null
venv="${HS_TOOLS_DIR:-$HOME/.cache/hypersdk-tools}/plot-venv"
[ -x "$venv/bin/python" ] && "$venv/bin/python" -c "import matplotlib" 2>/dev/null ||
  { python3 -m venv "$venv" && "$venv/bin/pip" install -q matplotlib; }
RATE_KB=$RATE_KB SLOW_RATE_KB=$SLOW_RATE_KB SLOW_LATENCY_MS=$SLOW_LATENCY_MS "$venv/bin/python" benches/plot.py "$(dirname "$OUT_CSV")" >&2
