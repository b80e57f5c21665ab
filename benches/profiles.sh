#!/usr/bin/env bash
# Release profiles side by side: for each candidate, a clean `cargo build --release --lib` (what
# `make install` builds: the .so and the .a, every provider) in its own target folder, timed
# (wall and user+sys CPU); the stripped .so's size; then, in one run, a 2 GiB download over
# loopback through each profile's libhypersdk.so — the artifact that ships — driven by the same
# C program (tests/c/installed.c, dynamically linked; LD_LIBRARY_PATH picks the profile), median
# of RUNS, interleaved so the machine's noise hits all alike. Prints a Markdown table;
# docs/BENCHMARKS.md keeps a copy and says which profile ships.
#
# The profiles are `--config` overrides of [profile.release], so what Cargo.toml ships is one of
# the rows ("shipping"). A profile whose build results are already in $WORK/profiles/NAME/ is
# not rebuilt when REUSE=1 (a fat-LTO build takes ~25 minutes on 2 cores).
#
# usage: benches/profiles.sh [PROFILE...]   (default: all; installs nginx-light, time, bc)
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS="${RUNS:-3}"
PORT="${PORT:-18081}"
WORK="${BENCH_DIR:-/tmp/hs-bench}"
ROOT_TARGET="${PROFILE_TARGETS:-$HOME/.cache/hypersdk-profiles}"

. benches/lib.sh
need_tools nginx:nginx-light /usr/bin/time:time bc:bc

# The generated cloud SDK crates: hundreds of thousands of lines each, on the control plane only
# (a few API calls per export); the bytes go through reqwest/hyper/rustls and our own code.
SDK=(aws-sdk-sts google-cloud-compute-v1
  google-cloud-build-v1 google-cloud-longrunning azure_storage_blob)
sdk_opt() {
  local level=$1 out=()
  for p in "${SDK[@]}"; do out+=(--config "profile.release.package.$p.opt-level=$level"); done
  printf '%s\n' "${out[@]}"
}

# name → cargo arguments (one per line). "shipping" is [profile.release] as Cargo.toml has it;
# the others undo its per-package opt-levels.
profile_args() {
  case $1 in
    shipping) ;;
    fat-lto) printf '%s\n' --config 'profile.release.lto="fat"' --config 'profile.release.codegen-units=1'; sdk_opt 3 ;;
    thin-lto) printf '%s\n' --config 'profile.release.lto="thin"' --config 'profile.release.codegen-units=16'; sdk_opt 3 ;;
    no-lto) printf '%s\n' --config 'profile.release.lto=false' --config 'profile.release.codegen-units=16'; sdk_opt 3 ;;
    *) echo "unknown profile $1" >&2; exit 2 ;;
  esac
}

if [ $# -gt 0 ]; then profiles=("$@"); else profiles=(fat-lto shipping no-lto thin-lto); fi

declare -A BUILD CPU SIZE
mkdir -p "$WORK/data" "$WORK/out" "$WORK/nginx"
for p in "${profiles[@]}"; do
  mapfile -t args < <(profile_args "$p")
  d="$WORK/profiles/$p"
  if [ "${REUSE:-0}" = 1 ] && [ -f "$d/build.txt" ] && [ -f "$d/libhypersdk.so.0" ]; then
    read -r BUILD[$p] CPU[$p] <"$d/build.txt"
  else
    t="$ROOT_TARGET/$p"
    rm -rf "$t" "$d"
    mkdir -p "$d"
    t0=$(date +%s)
    CARGO_TARGET_DIR="$t" /usr/bin/time -f "%U %S" -o "$d/cpu" \
      cargo build --release --lib "${args[@]}" >&2
    BUILD[$p]=$(($(date +%s) - t0))
    CPU[$p]=$(awk '{printf "%d", $1 + $2}' "$d/cpu")
    echo "${BUILD[$p]} ${CPU[$p]}" >"$d/build.txt"
    cp "$t/release/libhypersdk.so" "$d/libhypersdk.so.0"
    rm -rf "$t"
  fi
  SIZE[$p]=$(stat -c %s "$d/libhypersdk.so.0")
  echo "$p: ${BUILD[$p]} s wall, ${CPU[$p]} s CPU, $((SIZE[$p] / 1048576)) MiB" >&2
done
# One C program for all: built against the header, the library chosen at run time.
DRIVER="$WORK/profiles/installed"
gcc -std=c11 -O2 -Iinclude -o "$DRIVER" tests/c/installed.c -L"$WORK/profiles/${profiles[0]}" \
  -l:libhypersdk.so.0

if [ ! -f "$WORK/data/full.bin" ]; then
  head -c $((2 << 30)) /dev/urandom >"$WORK/data/full.bin"
fi
start_nginx profiles "$PORT" "$WORK/data"
trap 'stop_nginx profiles' EXIT
sleep 0.5

declare -A TIMES
for _ in $(seq 1 "$RUNS"); do
  for p in "${profiles[@]}"; do
    r=$(LD_LIBRARY_PATH="$WORK/profiles/$p" measure "$DRIVER" "http://127.0.0.1:$PORT/full.bin" "$WORK/out")
    cmp -s "$WORK/out/full.bin" "$WORK/data/full.bin" || { echo "$p: full.bin differs" >&2; exit 1; }
    rm -f "$WORK/out/full.bin"
    TIMES[$p]="${TIMES[$p]:-} ${r% *}"
  done
done

first=${profiles[0]}
first_s=$(printf '%s\n' ${TIMES[$first]} | median)
echo "### Release profiles: clean build of the library with every provider, and download speed ($(nproc) cores)"
echo
echo "| profile | clean build (s) | CPU user+sys (s) | .so MiB | 2 GiB download (s, median of $RUNS) | speed vs $first |"
echo "|---|---:|---:|---:|---:|---:|"
for p in "${profiles[@]}"; do
  s=$(printf '%s\n' ${TIMES[$p]} | median)
  printf '| %s | %d | %d | %.1f | %.2f | %.2f× |\n' "$p" "${BUILD[$p]}" "${CPU[$p]}" "$(echo "${SIZE[$p]} / 1048576" | bc -l)" "$s" "$(echo "$first_s / $s" | bc -l)"
done
