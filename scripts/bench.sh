#!/usr/bin/env bash
# `make bench`: runs every benchmark; each prints one final `BENCH <name> key=value ...` line.
# The summary at the end repeats those lines. BENCH_ONLY=ipvs,bgp runs a subset.
set -uo pipefail
cd "$(dirname "$0")/.."
out=$(mktemp)
trap 'rm -f "$out"' EXIT
status=0
for b in bench/*/bench.ts; do
  name=$(basename "$(dirname "$b")")
  if [ -n "${BENCH_ONLY:-}" ] && [[ ",$BENCH_ONLY," != *",$name,"* ]]; then continue; fi
  echo "==> bench: $name" >&2
  if ! npx --no-install tsx "$b" | tee -a "$out"; then
    echo "==> bench: $name FAILED" >&2
    status=1
  fi
done
echo "==> summary" >&2
grep '^BENCH ' "$out" || true
exit $status
