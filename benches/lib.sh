# Sourced by the benchmark scripts.
# measure CMD... → "seconds peak_rss_kib"; $WORK/out is emptied before each run, and what an
# earlier run left in the page cache is written back first (not during this one).
measure() {
  rm -rf "$WORK/out" && mkdir -p "$WORK/out" && sync
  local t0 t1 log
  log="$(mktemp)"
  t0=$(date +%s.%N)
  /usr/bin/time -v "$@" >/dev/null 2>"$log" || { cat "$log" >&2; rm -f "$log"; return 1; }
  t1=$(date +%s.%N)
  echo "$(echo "$t1 - $t0" | bc -l) $(sed -n 's/.*Maximum resident set size (kbytes): //p' "$log")"
  # CPU seconds (user + sys) of the command and its children, for run_all's CPUS.
  awk -F': ' '/User time|System time/ {s += $2} END {printf "%.2f\n", s}' "$log" >"$WORK/.cpu"
  rm -f "$log"
}

# median of the numbers on stdin
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

# Every measured command is added with `add LABEL STREAMS BYTES OUT SRC CMD...` (OUT is compared
# with SRC after every run), then `run_all` runs them in interleaved rounds (A B C, A B C, …) so
# the drift of this shared machine (its disk speed moves by 2× within minutes) hits every tool
# alike; medians of RUNS into SECS[label], CPU seconds (user+sys) into CPUS[label] (and a CSV row
# per label into $OUT_CSV when set).
LABELS=()
declare -A CMD META SECS RSS CPUS
add() {
  local label=$1
  LABELS+=("$label")
  META[$label]="$2 $3 $4 $5"
  shift 5
  CMD[$label]=$(printf '%q ' "$@")
}
same() { cmp -s "$1" "$2" || { echo "$1 differs from $2" >&2; exit 1; }; }
run_all() {
  local label r streams bytes out src
  declare -A times maxrss cpus
  for _ in $(seq 1 "$RUNS"); do
    for label in "${LABELS[@]}"; do
      read -r streams bytes out src <<<"${META[$label]}"
      r=$(eval "measure ${CMD[$label]}")
      same "$out" "$src"
      times[$label]+="${r% *} "
      cpus[$label]+="$(cat "$WORK/.cpu") "
      [ "${r#* }" -gt "${maxrss[$label]:-0}" ] && maxrss[$label]=${r#* }
    done
  done
  for label in "${LABELS[@]}"; do
    read -r streams bytes out src <<<"${META[$label]}"
    SECS[$label]=$(printf '%s\n' ${times[$label]} | median)
    RSS[$label]=${maxrss[$label]}
    CPUS[$label]=$(printf '%s\n' ${cpus[$label]} | median)
    [ -n "${OUT_CSV:-}" ] || continue
    printf '%s,%s,%s,%.3f,%.1f,%d\n' "${label%%:*}" "${label#*:}" "$streams" "${SECS[$label]}" \
      "$(echo "$bytes / 1048576 / ${SECS[$label]}" | bc -l)" $((RSS[$label] / 1024)) >>"$OUT_CSV"
  done
}
# then_sync FILE... -- CMD...: the command, then `sync FILE...` (fsync of each): the time until
# the bytes are on disk, which is when hypersdk returns (it syncs before the rename).
then_sync() {
  local files=()
  while [ "$1" != -- ]; do files+=("$1"); shift; done
  shift
  "$@" && sync "${files[@]}"
}
export -f then_sync


# need_tools CMD:PACKAGE... → installs from apt the packages whose command is missing
# ("/usr/bin/time:time" checks a path).
need_tools() {
  local need=() pair cmd
  for pair in "$@"; do
    cmd=${pair%%:*}
    if [ "${cmd#/}" != "$cmd" ]; then [ -x "$cmd" ] && continue; else command -v "$cmd" >/dev/null && continue; fi
    need+=("${pair#*:}")
  done
  if [ ${#need[@]} -gt 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}"
  fi
}

# start_nginx NAME PORT ROOT [DIRECTIVES] → nginx serving ROOT on 127.0.0.1:PORT, config and pid
# under $WORK/nginx/NAME.*; stop it with stop_nginx NAME.
start_nginx() {
  mkdir -p "$WORK/nginx"
  cat >"$WORK/nginx/$1.conf" <<CONF
worker_processes 2;
pid $WORK/nginx/$1.pid;
error_log $WORK/nginx/$1-error.log;
events { worker_connections 1024; }
http {
  access_log off;
  sendfile on;
  tcp_nopush on;
  keepalive_requests 100000;
  server { listen 127.0.0.1:$2; root $3; ${4:-} }
}
CONF
  nginx -c "$WORK/nginx/$1.conf"
}
stop_nginx() { nginx -c "$WORK/nginx/$1.conf" -s stop 2>/dev/null || true; }

# start_toxiproxy API_PORT LOG → toxiproxy (tests/peers/toxiproxy) serving its API on API_PORT;
# sets TOXI_PID (the caller's trap kills it).
start_toxiproxy() {
  local server
  server="$(tests/peers/toxiproxy/install.sh)"
  "$server" -host 127.0.0.1 -port "$1" >"$2" 2>&1 &
  TOXI_PID=$!
  TOXI_API="http://127.0.0.1:$1"
  sleep 1
}
toxi_api() { curl -sf --max-time 10 -X "$1" "$TOXI_API$2" ${3:+-d "$3"} >/dev/null; }

# toxi_link NAME LISTEN_PORT UPSTREAM RATE_KB LATENCY_MS → a proxy on 127.0.0.1:LISTEN_PORT to
# UPSTREAM (host:port) whose every connection gets RATE_KB KB/s downstream and LATENCY_MS of
# latency (±2 ms).
toxi_link() {
  toxi_api POST /proxies "{\"name\":\"$1\",\"listen\":\"127.0.0.1:$2\",\"upstream\":\"$3\",\"enabled\":true}"
  toxi_api POST "/proxies/$1/toxics" "{\"name\":\"bw\",\"type\":\"bandwidth\",\"stream\":\"downstream\",\"attributes\":{\"rate\":$4}}"
  toxi_api POST "/proxies/$1/toxics" "{\"name\":\"lat\",\"type\":\"latency\",\"stream\":\"downstream\",\"attributes\":{\"latency\":$5,\"jitter\":2}}"
}

# build_cfetch → $WORK/cfetch (benches/fetch.c) over the release library in HS_LIB_DIR, built
# here (`cargo build --release --lib`) when HS_LIB_DIR is unset; sets FETCH.
build_cfetch() {
  if [ -z "${HS_LIB_DIR:-}" ]; then
    cargo build --release --lib >&2
    HS_LIB_DIR="$CARGO_TARGET_DIR/release"
    ln -sf libhypersdk.so "$HS_LIB_DIR/libhypersdk.so.0"
  fi
  mkdir -p "$WORK"
  FETCH="$WORK/cfetch"
  gcc -std=c11 -O2 -Iinclude -o "$FETCH" benches/fetch.c -L"$HS_LIB_DIR" -l:libhypersdk.so.0 \
    -Wl,-rpath,"$HS_LIB_DIR"
}
