#!/usr/bin/env bash
# Runs each cargo-fuzz target under libFuzzer for a bounded time, on stable
# Rust: the instrumentation cargo-fuzz adds is made of stable -C flags, so we
# pass them ourselves and need neither nightly nor cargo-fuzz installed (with
# nightly, `cargo fuzz run TARGET` in fuzz/ or verifier/fuzz/ does the same,
# plus AddressSanitizer). The checked-in corpus seeds each run; new inputs go
# to a scratch directory. A crash fails CI and prints the input that caused it.
#
# usage: .ci/fuzz.sh [SECONDS_PER_TARGET]   (default 30)
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=${1:-30}
target_dir="${CARGO_TARGET_DIR:-$PWD/target}/fuzz"
export RUSTFLAGS="-Cpasses=sancov-module \
  -Cllvm-args=-sanitizer-coverage-level=4 \
  -Cllvm-args=-sanitizer-coverage-inline-8bit-counters \
  -Cllvm-args=-sanitizer-coverage-pc-table \
  -Cllvm-args=-sanitizer-coverage-trace-compares \
  --cfg fuzzing -Cdebug-assertions -Coverflow-checks"

# With an explicit --target, RUSTFLAGS reach the fuzzed code but not the
# build scripts and proc macros (which could not link the coverage hooks).
host=$(rustc -vV | sed -n 's/^host: //p')

scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT

# crate dir, target name, seed corpus (relative to the crate dir)
for spec in "fuzz token_request corpus/token_request" \
            "verifier/fuzz parse_token corpus/parse_token"; do
  read -r dir name corpus <<<"$spec"
  cargo build --release --locked --quiet \
    --manifest-path "$dir/Cargo.toml" --target-dir "$target_dir" --target "$host" --bin "$name"
  mkdir -p "$scratch/$name"
  echo "-- $name: ${seconds}s"
  # libFuzzer prints its progress on stderr; keep the summary lines.
  if ! "$target_dir/$host/release/$name" "$scratch/$name" "$dir/$corpus" \
      -max_total_time="$seconds" -rss_limit_mb=2048 -max_len=8192 \
      -artifact_prefix="$scratch/" -print_final_stats=1 \
      2>"$scratch/$name.log"; then
    tail -n 40 "$scratch/$name.log"
    for crash in "$scratch"/crash-* "$scratch"/leak-* "$scratch"/timeout-* "$scratch"/oom-*; do
      [ -e "$crash" ] && { echo "input $crash:"; od -c "$crash" | head -n 20; }
    done
    exit 1
  fi
  grep -E "^(#[0-9]+ +DONE|stat::number_of_executed_units|stat::peak_rss_mb)" "$scratch/$name.log" || true
done
