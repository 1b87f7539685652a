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
# Bounded time on 1 MiB: every target runs each of these inputs once, and one that takes more
# than 10 s fails the run (libFuzzer's -timeout). Shapes that make parsers loop or backtrack:
# one long token, many tiny separators, repeated format syntax, noise.
big=$(mktemp -d)
log=$(mktemp)
trap 'rm -rf "$big" "$log"' EXIT
python3 - "$big" <<'PY'
import os, random, sys
d, n = sys.argv[1], 1 << 20
rep = lambda s: (s * (n // len(s) + 1))[:n].encode()
random.seed(7)
inputs = {
    "long-token": b"A" * n,
    "separators": rep(";"),
    "pairs": rep("a=b; "),
    "quotes": rep("\"'{"),
    "tcf-ranges": b"CP" + rep("AAAB")[: n - 2],
    "onetrust-groups": rep("groups=C0001%3A1%2CC0002%3A0&"),
    "cookiebot": rep("{stamp:'x',necessary:true,statistics:false,"),
    "json": rep('{"purposes":{"enabled":["a",'),
    "percent": rep("%2"),
    "html": rep("<script src=//a.test/x.js><noscript><img src=x>"),
    "noise": bytes(random.getrandbits(8) for _ in range(n)),
}
for name, data in inputs.items():
    open(os.path.join(d, name), "wb").write(data)
PY
for t in $targets; do
  echo "fuzz: $t on $(ls "$big" | wc -l) inputs of 1 MiB"
  if ! cargo fuzz run "$t" "$big"/* -- -timeout=10 -rss_limit_mb=4096 >"$log" 2>&1 ||
    [ "$(grep -c "^Executed" "$log")" -ne "$(ls "$big" | wc -l)" ]; then
    grep -E "ERROR|panicked|SUMMARY|timeout|Executed" "$log" | head -20 >&2
    echo "fuzz: $t failed on a 1 MiB input" >&2
    exit 1
  fi
  awk '/^Executed/ {ms = $(NF-1); if (ms > max) {max = ms; f = $2}} END {printf "fuzz:   slowest %d ms (%s)\n", max, f}' "$log"
done
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
