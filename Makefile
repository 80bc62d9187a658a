# vipd: `make test` and `make demo` are the two set-up commands; both install what is missing.
SHELL := /bin/bash
export VIPD_CACHE ?= /var/cache/vipd

.PHONY: all deps build typecheck test test-unit test-image image demo bench soak clean

all: build

deps:
	@bash scripts/deps.sh

build: deps
	@echo "==> build: compiling TypeScript to dist/"
	@npx --no-install tsc -p tsconfig.json
	@bash scripts/bundle.sh

typecheck: deps
	@echo "==> typecheck: src, tests and benchmarks"
	@npx --no-install tsc -p tsconfig.test.json

# The image tests boot the appliance ISO: `image` builds it first (cached in $VIPD_CACHE/image).
test: build typecheck image
	@echo "==> test: unit and integration tests (namespaces, BIRD, gobgpd, qemu VM, appliance image)"
	@npx --no-install vitest run

test-unit: build
	@npx --no-install vitest run test/unit

image: build
	@bash image/build.sh

test-image: image
	@npx --no-install vitest run test/integration/image

demo: image
	@npx --no-install tsx scripts/demo.ts

bench: build
	@bash scripts/bench.sh

# vipd under continuous change for an hour (VIPD_SOAK_MINUTES=5 for a short run): RSS and descriptors must stay flat.
soak: build
	@echo "==> soak: $${VIPD_SOAK_MINUTES:-60} minutes (VM lab)"
	@npx --no-install tsx test/soak/soak.ts

clean:
	rm -rf dist
