# Sourced by the benchmark scripts.
# measure CMD... → "seconds peak_rss_kib"; $WORK/out is emptied before each run.
measure() {
  rm -rf "$WORK/out" && mkdir -p "$WORK/out"
  local t0 t1 log
  log="$(mktemp)"
  t0=$(date +%s.%N)
  /usr/bin/time -v "$@" >/dev/null 2>"$log" || { cat "$log" >&2; rm -f "$log"; return 1; }
  t1=$(date +%s.%N)
  echo "$(echo "$t1 - $t0" | bc -l) $(sed -n 's/.*Maximum resident set size (kbytes): //p' "$log")"
  rm -f "$log"
}

# median of the numbers on stdin
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

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
