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
