#!/usr/bin/env bash
# Download benchmark on loopback: nginx serves a 2 GiB file of random bytes and a 2 GiB file that
# is 75% zeros (in every 4 MiB: 1 MiB of data, 3 MiB of zeros). In the same run, each of curl -o,
# aria2c -x16 -s16 and hypersdk (examples/fetch, release build) downloads each file; we report
# the median of RUNS wall times, the ratio to aria2c, peak RSS (/usr/bin/time -v), and the disk
# space the output takes (holes). Then 32 concurrent 256 MiB downloads through hypersdk for
# peak RSS. Results go to stdout as Markdown; docs/BENCHMARKS.md keeps a copy.
#
# usage: benches/run.sh   (installs nginx-light, aria2, curl, time from apt if missing)
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/hypersdk-target}"
RUNS="${RUNS:-3}"
PORT="${PORT:-18080}"
WORK="${BENCH_DIR:-/tmp/hs-bench}"

need=()
command -v nginx >/dev/null || need+=(nginx-light)
command -v aria2c >/dev/null || need+=(aria2)
command -v curl >/dev/null || need+=(curl)
[ -x /usr/bin/time ] || need+=(time)
command -v bc >/dev/null || need+=(bc)
if [ ${#need[@]} -gt 0 ]; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}"
fi

cargo build --release --example fetch >&2
FETCH="$CARGO_TARGET_DIR/release/examples/fetch"

mkdir -p "$WORK/data" "$WORK/out" "$WORK/nginx"
if [ ! -f "$WORK/data/full.bin" ]; then
  head -c $((2 << 30)) /dev/urandom >"$WORK/data/full.bin"
fi
if [ ! -f "$WORK/data/sparse.bin" ]; then
  python3 - "$WORK/data/sparse.bin" <<'PY'
import os, sys
with open(sys.argv[1], "wb") as f:
    for _ in range(512):
        f.write(os.urandom(1 << 20))
        f.write(bytes(3 << 20))
PY
fi
if [ ! -f "$WORK/data/q.bin" ]; then
  head -c $((256 << 20)) /dev/urandom >"$WORK/data/q.bin"
  for i in $(seq 0 31); do ln -sf q.bin "$WORK/data/q$i.bin"; done
fi

. benches/lib.sh
start_nginx run "$PORT" "$WORK/data"
trap 'stop_nginx run' EXIT
sleep 0.5
BASE="http://127.0.0.1:$PORT"

declare -A SECS RSS USED
tools=(curl aria2c hypersdk)
for file in full.bin sparse.bin; do
  size=$(stat -c %s "$WORK/data/$file")
  for tool in "${tools[@]}" devnull; do
    times=()
    maxrss=0
    for _ in $(seq 1 "$RUNS"); do
      case $tool in
        devnull) r=$(measure curl -s -o /dev/null "$BASE/$file") ;;
        curl) r=$(measure curl -s -o "$WORK/out/$file" "$BASE/$file") ;;
        aria2c) r=$(measure aria2c -q -x16 -s16 -k1M --file-allocation=none --allow-overwrite=true -d "$WORK/out" -o "$file" "$BASE/$file") ;;
        hypersdk) r=$(measure "$FETCH" "$WORK/out" "$BASE/$file") ;;
      esac
      times+=("${r% *}")
      rss=${r#* }
      [ "$rss" -gt "$maxrss" ] && maxrss=$rss
      if [ "$tool" != devnull ]; then
        cmp -s "$WORK/out/$file" "$WORK/data/$file" || { echo "$tool: $file differs" >&2; exit 1; }
        USED[$tool.$file]=$(($(stat -c %b "$WORK/out/$file") * 512))
      fi
    done
    SECS[$tool.$file]=$(printf '%s\n' "${times[@]}" | median)
    RSS[$tool.$file]=$maxrss
  done
done

echo "### Single 2 GiB download over loopback (nginx, median of $RUNS, $(nproc) cores)"
echo
echo "| file | tool | seconds | MiB/s | vs aria2c | peak RSS MiB | disk used MiB |"
echo "|---|---|---:|---:|---:|---:|---:|"
for file in full.bin sparse.bin; do
  size=$(stat -c %s "$WORK/data/$file")
  for tool in devnull "${tools[@]}"; do
    s=${SECS[$tool.$file]}
    mibs=$(echo "$size / 1048576 / $s" | bc -l)
    ratio=$(echo "${SECS[aria2c.$file]} / $s" | bc -l)
    used="-"
    [ "$tool" != devnull ] && used=$((${USED[$tool.$file]} / 1048576))
    name=$tool
    [ "$tool" = devnull ] && name="curl → /dev/null (server limit)"
    printf '| %s | %s | %.2f | %.0f | %.2f× | %d | %s |\n' "$file" "$name" "$s" "$mibs" "$ratio" $((${RSS[$tool.$file]} / 1024)) "$used"
  done
done

urls=()
for i in $(seq 0 31); do urls+=("$BASE/q$i.bin"); done
r=$(measure "$FETCH" --global '{"max_concurrent_exports": 32}' "$WORK/out" "${urls[@]}")
echo
echo "### 32 concurrent 256 MiB downloads through hypersdk (one process)"
echo
printf '| exports | total GiB | seconds | peak RSS MiB |\n|---:|---:|---:|---:|\n| 32 | 8 | %.2f | %d |\n' "${r% *}" $((${r#* } / 1024))
