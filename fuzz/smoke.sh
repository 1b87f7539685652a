#!/usr/bin/env bash
# Runs every fuzz target for a short smoke time (FUZZ_SECONDS, default 10), with inputs up to
# 1 MiB, and fails on any crash or on an input that takes more than 10 s (bounded time).
# Installs cargo-fuzz if missing. libFuzzer needs nightly features; RUSTC_BOOTSTRAP=1 lets the
# stable toolchain provide them (the only toolchain here).
set -euo pipefail
cd "$(dirname "$0")"
if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "fuzz: installing cargo-fuzz" >&2
  cargo install --quiet --locked cargo-fuzz@0.13.1
fi
export RUSTC_BOOTSTRAP=1
seconds=${FUZZ_SECONDS:-10}
targets=$(cargo fuzz list)
echo "fuzz: building $(echo $targets | wc -w) targets"
cargo fuzz build
for t in $targets; do
  mkdir -p "corpus/$t"
  echo "fuzz: $t for ${seconds}s"
  cargo fuzz run "$t" -- -max_total_time="$seconds" -max_len=1048576 -timeout=10 \
    -rss_limit_mb=4096 -print_final_stats=0 2>&1 | grep -E "^(INFO: Running|Done|#.*DONE)|ERROR|panicked|SUMMARY" || true
  if [ -n "$(ls -A "artifacts/$t" 2>/dev/null)" ]; then
    echo "fuzz: $t found a crashing input: fuzz/artifacts/$t" >&2
    exit 1
  fi
done
echo "fuzz: all targets ran clean"
