#!/usr/bin/env bash
# Fuzzes every parser of outside input (fuzz/, cargo-fuzz + libFuzzer on the nightly compiler)
# for a bounded time each: HS_FUZZ_SECONDS per target (default 20; nine targets, ~3 minutes plus
# a warm build). Without a nightly toolchain it says SKIPPED and succeeds; cargo-fuzz is
# installed into ~/.cargo/bin on first use (kept there for later runs). A crash, a failed
# property or a hang fails the run: the input is under fuzz/artifacts/<target>/, replay it with
# `cargo +nightly fuzz run <target> <file>` and turn it into a regression test.
# The fuzz build has its own target dir (other RUSTFLAGS than the debug build) and the corpus
# grown by earlier runs is kept beside it; the committed seeds are in fuzz/corpus/<target>/.
set -euo pipefail
cd "$(dirname "$0")/.."

secs="${HS_FUZZ_SECONDS:-20}"
target_dir="${HS_FUZZ_TARGET_DIR:-$HOME/.cache/hypersdk-fuzz-target}"
corpus_dir="${HS_FUZZ_CORPUS_DIR:-$HOME/.cache/hypersdk-fuzz-corpus}"

if ! cargo +nightly --version >/dev/null 2>&1; then
  echo "SKIPPED: fuzzing (no nightly toolchain; rustup toolchain install nightly)"
  exit 0
fi
if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
  echo "fuzzing: installing cargo-fuzz (once, into ~/.cargo/bin)"
  if ! timeout 1200 cargo install cargo-fuzz --locked; then
    echo "SKIPPED: fuzzing (cargo-fuzz could not be installed)"
    exit 0
  fi
fi

# -s none: our code is safe Rust (the property is "no panic, no hang"), and without ASan the
# build is shorter and every target runs several times more inputs in its time.
fuzz=(cargo +nightly fuzz)
opts=(--fuzz-dir fuzz --sanitizer none --target-dir "$target_dir")
start=$(date +%s)
"${fuzz[@]}" build "${opts[@]}"
echo "fuzzing: build took $(($(date +%s) - start)) s"
for t in $("${fuzz[@]}" list --fuzz-dir fuzz); do
  mkdir -p "$corpus_dir/$t"
  log="$corpus_dir/$t.log"
  # New inputs go to the first folder (the cache); the seeds are read, never written.
  if "${fuzz[@]}" run "${opts[@]}" "$t" "$corpus_dir/$t" "fuzz/corpus/$t" -- \
    -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -close_fd_mask=1 \
    -print_final_stats=1 >"$log" 2>&1; then
    echo "fuzz $t: $(grep -o 'number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$') runs, $(find "$corpus_dir/$t" -type f | wc -l) inputs in the corpus"
  else
    tail -n 40 "$log" >&2
    echo "fuzzing: $t failed (the input is in fuzz/artifacts/$t/)" >&2
    exit 1
  fi
done
echo "fuzzing: every target ran ${secs} s without a finding ($(($(date +%s) - start)) s in all)"
