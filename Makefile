# libreliable_channel — see README.md. `make demo` runs the demo, `make test` runs every test.
CARGO ?= cargo
NPM ?= npm

.PHONY: all build test test-rust interop-deps bench demo clean

all: build

build:
	$(CARGO) build --release

# Node packages of the reference SDS (@waku/sds) used by the interop tests.
interop-deps:
	@if [ -f tests/interop/package.json ] && [ ! -d tests/interop/node_modules/@waku/sds ]; then \
		$(NPM) ci --prefix tests/interop --no-audit --no-fund; fi

test-rust: interop-deps
	$(CARGO) test

test: test-rust

bench:
	$(CARGO) bench --bench sds_engine

demo:
	@echo "the demo arrives with the channel layer"

clean:
	$(CARGO) clean
