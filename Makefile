# vipd: `make test` and `make demo` are the two set-up commands; both install what is missing.
SHELL := /bin/bash
export VIPD_CACHE ?= /var/cache/vipd

.PHONY: all deps build typecheck test test-unit test-image image demo bench clean

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

test: build typecheck
	@echo "==> test: unit and integration tests (namespaces, BIRD, gobgpd, qemu VM)"
	@npx --no-install vitest run

test-unit: build
	@npx --no-install vitest run test/unit

image: build
	@bash image/build.sh

test-image: image
	@VIPD_TEST_IMAGE=1 npx --no-install vitest run test/integration/image

demo: build
	@npx --no-install tsx scripts/demo.ts

bench: build
	@bash scripts/bench.sh

clean:
	rm -rf dist
