#!/usr/bin/env bash
# One-file builds of vipd and vipctl (dist/vipd.mjs, dist/vipctl.mjs): what the appliance image
# and the VM tests run, because loading hundreds of small module files is slow there.
set -euo pipefail
cd "$(dirname "$0")/.."
echo "==> bundle: dist/vipd.mjs, dist/vipctl.mjs" >&2
npx --no-install esbuild src/cli/vipd.ts src/cli/vipctl.ts --bundle --platform=node --target=node20 --format=esm \
  --outdir=dist --out-extension:.js=.mjs --log-level=warning \
  --banner:js="import { createRequire as __vipdRequire } from 'node:module'; const require = __vipdRequire(import.meta.url);"
