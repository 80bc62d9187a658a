#!/usr/bin/env bash
# `make bench`: runs every benchmark; each prints one final `BENCH <name> key=value ...` line.
# A benchmark is bench/NAME/run.mjs (run with node) or else bench/NAME/bench.ts (run with tsx).
# The summary at the end repeats the BENCH lines. BENCH_ONLY=ipvs,bgp runs a subset.
set -uo pipefail
cd "$(dirname "$0")/.."
out=$(mktemp)
trap 'rm -f "$out"' EXIT
status=0
for dir in bench/*/; do
  name=$(basename "$dir")
  if [ -n "${BENCH_ONLY:-}" ] && [[ ",$BENCH_ONLY," != *",$name,"* ]]; then continue; fi
  if [ -f "$dir/run.mjs" ]; then cmd=(node "$dir/run.mjs");
  elif [ -f "$dir/bench.ts" ]; then cmd=(npx --no-install tsx "$dir/bench.ts");
  else continue; fi
  echo "==> bench: $name" >&2
  if ! "${cmd[@]}" | tee -a "$out"; then
    echo "==> bench: $name FAILED" >&2
    status=1
  fi
done
echo "==> summary" >&2
grep '^BENCH ' "$out" || true
exit $status
