#!/usr/bin/env bash
# vSphere export benchmark: a VM with 4 disks of 512 MiB (random data, VMDK from qemu-img) on
# the vcsim peer (tests/peers/vcsim). In the same run: `govc export.ovf` (govc from the same
# govmomi) without and with a SHA-256 manifest (`-sha 256`), hypersdk with its defaults (2 disks
# at a time, SHA-256 manifest hashed as the bytes arrive), with parallel_disks=4, and with
# `manifest: none` (the pairing for plain govc). Median of RUNS wall times, ratio to govc, peak
# RSS; every disk compared with the datastore's bytes.
#
# CLOUDLIKE=1 sends the disks' NFC downloads (not the SOAP calls) through toxiproxy with RATE_KB
# per connection (default 25 000 KB/s: one NFC stream gets 20–30 MB/s) and LATENCY_MS (5), the
# link where parallel disks are what beats the per-stream limit.
#
# usage: benches/vsphere.sh   (needs go, qemu-img; installs time/bc from apt if missing)
set -euo pipefail
cd "$(dirname "$0")/.."
. benches/lib.sh
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/hypersdk-target}"
RUNS="${RUNS:-3}"
WORK="${BENCH_DIR:-/tmp/hs-bench-vsphere}"
need=()
[ -x /usr/bin/time ] || need+=(time)
command -v bc >/dev/null || need+=(bc)
command -v qemu-img >/dev/null || need+=(qemu-utils)
if [ ${#need[@]} -gt 0 ]; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}"
fi

cargo build --release --example fetch >&2
FETCH="$CARGO_TARGET_DIR/release/examples/fetch"
mkdir -p "$WORK/fixtures" "$WORK/bin"
(cd tests/peers/vcsim && go build -o "$WORK/bin/vcsim-peer" . && go build -o "$WORK/bin/govc" ./cmd/govc)
disks=()
for i in 0 1 2 3; do
  f="$WORK/fixtures/disk$i.vmdk"
  if [ ! -f "$f" ]; then
    head -c $((512 << 20)) /dev/urandom >"$WORK/fixtures/disk$i.raw"
    qemu-img convert -f raw -O vmdk "$WORK/fixtures/disk$i.raw" "$f"
    rm "$WORK/fixtures/disk$i.raw"
  fi
  disks+=(-disk "$f")
done

LINK="loopback"
peer_args=()
if [ "${CLOUDLIKE:-0}" = 1 ]; then
  RATE_KB="${RATE_KB:-25000}" LATENCY_MS="${LATENCY_MS:-5}" TPORT="${TPORT:-18476}" LPORT="${LPORT:-19002}"
  start_toxiproxy "$TPORT" "$WORK/toxiproxy.log"
  peer_args=(-device-port "$LPORT")
  LINK="NFC through toxiproxy: $RATE_KB KB/s per connection, $LATENCY_MS ms"
fi
rm -f "$WORK/ready.json"
"$WORK/bin/vcsim-peer" -dir "$WORK" "${peer_args[@]}" "${disks[@]}" >"$WORK/ready.json" 2>/dev/null &
PEER=$!
trap 'kill $PEER ${TOXI_PID:-} 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do [ -s "$WORK/ready.json" ] && break; sleep 0.1; done
URL=$(python3 -c "import json;print(json.load(open('$WORK/ready.json'))['url'])")
if [ "${CLOUDLIKE:-0}" = 1 ]; then
  up=$(python3 -c "import urllib.parse;print(urllib.parse.urlparse('$URL').netloc)")
  toxi_link nfc "$LPORT" "$up" "$RATE_KB" "$LATENCY_MS"
fi
CA=$(python3 -c "import json;print(json.load(open('$WORK/ready.json'))['ca_file'])")
mapfile -t SRC < <(python3 -c "import json;print('\n'.join(json.load(open('$WORK/ready.json'))['disk_files']))")
CONFIG="{\"url\": \"$URL\", \"username\": \"admin\", \"password\": \"s3cret-pass\", \"ca_bundle_path\": \"$CA\"}"
export GOVC_URL="$URL" GOVC_USERNAME=admin GOVC_PASSWORD=s3cret-pass GOVC_TLS_CA_CERTS="$CA" GOVC_PERSIST_SESSION=false
# The peer refuses ExportVm on a powered-on VM as vCenter does; govc export.ovf does no snapshot,
# so both tools export the powered-off VM directly (the same NFC work).
"$WORK/bin/govc" vm.power -off -force DC0_H0_VM0 >/dev/null

check() { # dir prefix: every exported disk equals its datastore file
  for i in 0 1 2 3; do cmp -s "$1/$2disk-$i.vmdk" "${SRC[$i]}" || { echo "disk $i differs in $1" >&2; exit 1; }; done
}

declare -A SECS RSS
for tool in govc govcsha hypersdk hypersdk4 hypersdknomf; do
  times=(); maxrss=0
  for _ in $(seq 1 "$RUNS"); do
    case $tool in
      govc) r=$(measure "$WORK/bin/govc" export.ovf -vm DC0_H0_VM0 "$WORK/out"); check "$WORK/out/DC0_H0_VM0" DC0_H0_VM0- ;;
      govcsha) r=$(measure "$WORK/bin/govc" export.ovf -sha 256 -vm DC0_H0_VM0 "$WORK/out"); check "$WORK/out/DC0_H0_VM0" DC0_H0_VM0- ;;
      hypersdk) r=$(measure "$FETCH" --provider vsphere --config "$CONFIG" "$WORK/out" /DC0/vm/DC0_H0_VM0); check "$WORK/out" "" ;;
      hypersdk4) r=$(measure "$FETCH" --provider vsphere --config "$CONFIG" --options '{"parallel_disks": 4}' "$WORK/out" /DC0/vm/DC0_H0_VM0); check "$WORK/out" "" ;;
      hypersdknomf) r=$(measure "$FETCH" --provider vsphere --config "$CONFIG" --options '{"manifest": "none"}' "$WORK/out" /DC0/vm/DC0_H0_VM0); check "$WORK/out" "" ;;
    esac
    times+=("${r% *}")
    rss=${r#* }; [ "$rss" -gt "$maxrss" ] && maxrss=$rss
  done
  SECS[$tool]=$(printf '%s\n' "${times[@]}" | median)
  RSS[$tool]=$maxrss
done

echo "### vSphere: VM with 4 × 512 MiB disks on vcsim ($LINK; median of $RUNS, $(nproc) cores)"
echo
echo "| tool | seconds | MiB/s | vs govc (no manifest) | peak RSS MiB |"
echo "|---|---:|---:|---:|---:|"
for tool in govc govcsha hypersdk hypersdk4 hypersdknomf; do
  s=${SECS[$tool]}
  name=$tool
  [ "$tool" = hypersdk ] && name="hypersdk (parallel_disks 2, default)"
  [ "$tool" = hypersdk4 ] && name="hypersdk (parallel_disks 4)"
  [ "$tool" = hypersdknomf ] && name="hypersdk (manifest none, like plain govc)"
  [ "$tool" = govc ] && name="govc export.ovf (no manifest)"
  [ "$tool" = govcsha ] && name="govc export.ovf -sha 256 (manifest, like hypersdk)"
  printf '| %s | %.2f | %.0f | %.2f× | %d |\n' "$name" "$s" "$(echo "2048 / $s" | bc -l)" "$(echo "${SECS[govc]} / $s" | bc -l)" $((${RSS[$tool]} / 1024))
done
