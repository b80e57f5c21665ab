# Sourced by scripts: start_serve COUNT SIZE [PACE] [ZERO_PCT] starts examples/serve in the
# background, sets SERVE_PID and SERVE_URL, and kills it when the calling script exits.
start_serve() {
  local log
  log="$(mktemp)"
  "$CARGO_TARGET_DIR/debug/examples/serve" "$@" >"$log" 2>&1 &
  SERVE_PID=$!
  trap 'kill $SERVE_PID 2>/dev/null || true' EXIT
  for _ in $(seq 1 600); do
    if grep -q '^READY ' "$log"; then
      SERVE_URL="$(sed -n 's/^READY //p' "$log")"
      return 0
    fi
    kill -0 "$SERVE_PID" 2>/dev/null || break
    sleep 0.1
  done
  echo "the test server did not start:" >&2
  cat "$log" >&2
  return 1
}
