#!/usr/bin/env bash
# S3 download benchmark: a 2 GiB object served by s3s-fs (a Rust S3 server over a folder; moto
# is far too slow to measure) on loopback. In the same run: hypersdk (examples/fetch,
# provider aws, s3://bucket/key), s5cmd and rclone download it; median of RUNS wall times,
# ratio to the faster of s5cmd and rclone, peak RSS; every output compared with the source.
#
# CLOUDLIKE=1 puts toxiproxy between the tools and the server: RATE_KB per connection (default
# 50 000 KB/s, what one S3 connection gets) and LATENCY_MS (20), as benches/cloudlike.sh does.
#
# usage: benches/s3.sh   (installs rclone/time/bc from apt; builds s3s-fs 0.14.1 with cargo and
#                         s5cmd v2.3.0 with go into ~/.cache/hypersdk-tools if missing)
set -euo pipefail
cd "$(dirname "$0")/.."
. benches/lib.sh
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/hypersdk-target}"
RUNS="${RUNS:-3}"
PORT="${PORT:-19000}"
WORK="${BENCH_DIR:-/tmp/hs-bench-s3}"
TOOLS="$HOME/.cache/hypersdk-tools"
need=()
[ -x /usr/bin/time ] || need+=(time)
command -v bc >/dev/null || need+=(bc)
command -v rclone >/dev/null || need+=(rclone)
if [ ${#need[@]} -gt 0 ]; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}"
fi
[ -x "$TOOLS/bin/s3s-fs" ] || cargo install s3s-fs@0.14.1 --features binary --locked --root "$TOOLS"
if [ ! -x "$TOOLS/bin/s5cmd" ]; then
  # The proxy serves v2.3.0 but not the version list `go install …@version` asks for.
  d=$(mktemp -d)
  printf 'module s5build\n\ngo 1.22\n\nrequire github.com/peak/s5cmd/v2 v2.3.0\n' >"$d/go.mod"
  (cd "$d" && GOFLAGS=-mod=mod go build -o "$TOOLS/bin/s5cmd" github.com/peak/s5cmd/v2)
fi
cargo build --release --example fetch >&2
FETCH="$CARGO_TARGET_DIR/release/examples/fetch"

# rclone cannot use a custom CA bundle with its transport (plain http here anyway).
unset AWS_CA_BUNDLE
export AWS_ACCESS_KEY_ID=benchkey AWS_SECRET_ACCESS_KEY=benchsecret AWS_REGION=us-east-1
rm -rf "$WORK/root" && mkdir -p "$WORK/root/bench" "$WORK/src" "$WORK/out"
[ -f "$WORK/src/big.bin" ] || head -c $((2 << 30)) /dev/urandom >"$WORK/src/big.bin"
"$TOOLS/bin/s3s-fs" --host 127.0.0.1 --port "$PORT" --access-key "$AWS_ACCESS_KEY_ID" \
  --secret-key "$AWS_SECRET_ACCESS_KEY" "$WORK/root" >"$WORK/s3s.log" 2>&1 &
SRV=$!
trap 'kill $SRV 2>/dev/null || true' EXIT
sleep 1
EP="http://127.0.0.1:$PORT"
LINK="loopback"
STREAMS=8 # rclone's streams; s5cmd's own default (5 parts) on loopback
S5OPT=()
if [ "${CLOUDLIKE:-0}" = 1 ]; then
  RATE_KB="${RATE_KB:-50000}" LATENCY_MS="${LATENCY_MS:-20}" TPORT="${TPORT:-18475}" LPORT="${LPORT:-19001}"
  start_toxiproxy "$TPORT" "$WORK/toxiproxy.log"
  trap 'kill $SRV $TOXI_PID 2>/dev/null || true' EXIT
  toxi_link s3 "$LPORT" "127.0.0.1:$PORT" "$RATE_KB" "$LATENCY_MS"
  EP="http://127.0.0.1:$LPORT"
  LINK="toxiproxy: $RATE_KB KB/s per connection, $LATENCY_MS ms; s5cmd and rclone with 16 streams"
  STREAMS=16
  S5OPT=(--concurrency 16)
fi
S5="$TOOLS/bin/s5cmd --endpoint-url $EP"
# Uploaded once through S3 so the server stores its ETag (it would hash the file per GET).
$S5 cp "$WORK/src/big.bin" s3://bench/big.bin >/dev/null
RCLONE_CONF="$WORK/rclone.conf"
cat >"$RCLONE_CONF" <<CONF
[bench]
type = s3
provider = Other
access_key_id = $AWS_ACCESS_KEY_ID
secret_access_key = $AWS_SECRET_ACCESS_KEY
endpoint = $EP
region = us-east-1
force_path_style = true
CONF
CONFIG="{\"region\": \"us-east-1\", \"endpoint_url\": \"$EP\", \"access_key_id\": \"$AWS_ACCESS_KEY_ID\", \"secret_access_key\": \"$AWS_SECRET_ACCESS_KEY\"}"


OUT="$WORK/out/big.bin" SRC="$WORK/src/big.bin"
S5_CP=($S5 cp "${S5OPT[@]}" s3://bench/big.bin "$OUT")
RCLONE_CP=(rclone --config "$RCLONE_CONF" copyto --multi-thread-streams "$STREAMS" bench:bench/big.bin "$OUT")
add s5cmd 0 0 "$OUT" "$SRC" "${S5_CP[@]}"
add s5cmd+sync 0 0 "$OUT" "$SRC" bash -c 'then_sync "$@"' _ "$OUT" -- "${S5_CP[@]}"
add rclone 0 0 "$OUT" "$SRC" "${RCLONE_CP[@]}"
add rclone+sync 0 0 "$OUT" "$SRC" bash -c 'then_sync "$@"' _ "$OUT" -- "${RCLONE_CP[@]}"
add hypersdk 0 0 "$OUT" "$SRC" "$FETCH" --provider aws --config "$CONFIG" "$WORK/out" s3://bench/big.bin
run_all
best=$(printf '%s\n' "${SECS[s5cmd]}" "${SECS[rclone]}" | sort -n | head -1)
best_on_disk=$(printf '%s\n' "${SECS[s5cmd+sync]}" "${SECS[rclone+sync]}" | sort -n | head -1)
echo "### S3: one 2 GiB object from s3s-fs 0.14.1 ($LINK; median of $RUNS in interleaved rounds, $(nproc) cores)"
echo
echo "| tool | seconds | MiB/s | vs faster of s5cmd/rclone | vs faster of them, then sync | peak RSS MiB |"
echo "|---|---:|---:|---:|---:|---:|"
for tool in s5cmd s5cmd+sync rclone rclone+sync hypersdk; do
  s=${SECS[$tool]}
  printf '| %s | %.2f | %.0f | %.2f× | %.2f× | %d |\n' "$tool" "$s" "$(echo "2048 / $s" | bc -l)" "$(echo "$best / $s" | bc -l)" "$(echo "$best_on_disk / $s" | bc -l)" $((${RSS[$tool]} / 1024))
done
echo
echo "(\"then sync\": the tool, then \`sync FILE\`: until the bytes are on disk, which is when hypersdk returns.)"
