#!/usr/bin/env bash
# What one hypersdk-worker sustains: waves of 8 × 256 MiB from nginx on loopback, through a
# Temporal dev server and one worker at --concurrency 1, 2 and 4, against benches/fetch.c
# exporting the same files in one process with the same number of exports at once (the library
# alone). Wall time from submit to the wave's result (hypersdk-wave polls every 100 ms), median
# of RUNS, every output compared with its source. The library is the release build, or the
# libhypersdk.so in HS_LIB_DIR.
#
# usage: benches/temporal.sh   (installs nginx-light, time, bc from apt; the Temporal CLI with
#                               go install, as the tests do)
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/hypersdk-target}"
RUNS="${RUNS:-3}"
PORT="${PORT:-18095}"
TEMPORAL_PORT="${TEMPORAL_PORT:-17233}"
WORK="${BENCH_DIR:-/tmp/hs-bench}/temporal"
FILES=8

. benches/lib.sh
need_tools nginx:nginx-light /usr/bin/time:time bc:bc
TEMPORAL="$(tests/peers/temporal/install.sh)"

if [ -z "${HS_LIB_DIR:-}" ]; then
  cargo build --release --lib >&2
  HS_LIB_DIR="$CARGO_TARGET_DIR/release"
  ln -sf libhypersdk.so "$HS_LIB_DIR/libhypersdk.so.0"
fi
mkdir -p "$WORK/bin" "$WORK/data" "$WORK/out" "$WORK/pkgconfig"
gcc -std=c11 -O2 -Iinclude -o "$WORK/bin/cfetch" benches/fetch.c -L"$HS_LIB_DIR" -l:libhypersdk.so.0 \
  -Wl,-rpath,"$HS_LIB_DIR"
# The Go programs find the library through pkg-config, as once installed.
sed -e "s|@PREFIX@|$PWD|" -e "s|@VERSION@|0|" -e "s|@LIBS_PRIVATE@||" -e "s|^libdir=.*|libdir=$HS_LIB_DIR|" \
  hypersdk.pc.in >"$WORK/pkgconfig/hypersdk.pc"
(cd bindings/go/temporal &&
  PKG_CONFIG_PATH="$WORK/pkgconfig" CGO_LDFLAGS="-Wl,-rpath,$HS_LIB_DIR" \
    go build -o "$WORK/bin/" ./cmd/hypersdk-worker ./cmd/hypersdk-wave)

[ -f "$WORK/data/q.bin" ] || head -c $((256 << 20)) /dev/urandom >"$WORK/data/q.bin"
for i in $(seq 0 $((FILES - 1))); do ln -sf q.bin "$WORK/data/q$i.bin"; done
start_nginx temporal "$PORT" "$WORK/data"
"$TEMPORAL" server start-dev --headless --ip 127.0.0.1 --port "$TEMPORAL_PORT" --log-level error \
  --db-filename "$WORK/temporal.db" >"$WORK/temporal.log" 2>&1 &
SERVER=$!
WORKER=
trap 'stop_nginx temporal; [ -n "$WORKER" ] && kill $WORKER 2>/dev/null; kill $SERVER 2>/dev/null || true' EXIT
echo '{"web": {"provider": "http", "config": {}}}' >"$WORK/accounts.json"
for _ in $(seq 1 100); do
  # Up once it answers that a wave does not exist.
  said=$("$WORK/bin/hypersdk-wave" --address "127.0.0.1:$TEMPORAL_PORT" watch no-such-wave 2>&1 || true)
  [[ $said == *"not found"* ]] && break
  sleep 0.3
done

check() {
  for f in "$WORK"/out/*/q*.bin "$WORK"/out/q*.bin; do
    [ -e "$f" ] || continue
    cmp -s "$f" "$WORK/data/q.bin" || { echo "$f differs" >&2; exit 1; }
  done
}
urls=()
for i in $(seq 0 $((FILES - 1))); do urls+=("http://127.0.0.1:$PORT/q$i.bin"); done
BYTES=$((FILES * (256 << 20)))

echo "| exports at once | one worker via Temporal (s) | MiB/s | library alone, fetch.c (s) | MiB/s | worker / library |"
echo "|---:|---:|---:|---:|---:|---:|"
for c in 1 2 4; do
  "$WORK/bin/hypersdk-worker" --address "127.0.0.1:$TEMPORAL_PORT" --task-queue bench \
    --accounts "$WORK/accounts.json" --output-root "$WORK/out" --concurrency "$c" 2>"$WORK/worker.log" &
  WORKER=$!
  wave=() lib=()
  for r in $(seq 1 "$RUNS"); do
    {
      printf '{"exports": ['
      for i in $(seq 0 $((FILES - 1))); do
        [ "$i" -gt 0 ] && printf ','
        printf '{"account": "web", "provider": "http", "source": "%s", "dest": "c%s-r%s-%s"}' "${urls[$i]}" "$c" "$r" "$i"
      done
      printf '], "progress_every": "5s"}\n'
    } >"$WORK/wave.json"
    t=$(measure "$WORK/bin/hypersdk-wave" --address "127.0.0.1:$TEMPORAL_PORT" --task-queue bench --every 100ms submit "$WORK/wave.json")
    check
    wave+=("${t% *}")
    t=$(measure "$WORK/bin/cfetch" --global "{\"max_concurrent_exports\": $c}" "$WORK/out" "${urls[@]}")
    check
    lib+=("${t% *}")
  done
  kill "$WORKER" && wait "$WORKER" 2>/dev/null || true
  WORKER=
  ws=$(printf '%s\n' "${wave[@]}" | median)
  ls=$(printf '%s\n' "${lib[@]}" | median)
  printf '| %d | %.2f | %.0f | %.2f | %.0f | %.2f× |\n' "$c" "$ws" "$(echo "$BYTES / 1048576 / $ws" | bc -l)" \
    "$ls" "$(echo "$BYTES / 1048576 / $ls" | bc -l)" "$(echo "$ls / $ws" | bc -l)"
done
