# libreliable_channel — see README.md.
#   make demo   runs the demo
#   make test   runs every test (Rust, interop with the reference SDS, C under sanitizers and
#               valgrind, Go, Nim, install + pkg-config)
#   make lint   rustfmt, clippy (-D warnings, with and without default features), rustdoc (-D warnings)
#   make fuzz   runs every fuzz target for FUZZ_SECONDS each (fuzz/README.md)
CARGO ?= cargo
NPM ?= npm
CC ?= cc
PREFIX ?= /usr/local

LIBDIR := $(CURDIR)/target/release
BUILD := $(CURDIR)/build
SONAME := libreliable_channel.so.0
CFLAGS_STRICT := -std=c11 -Wall -Wextra -Werror -I$(CURDIR)/include
LDLIBS_RC := -L$(LIBDIR) -lreliable_channel -Wl,-rpath,$(LIBDIR) -lpthread -ldl -lm

.PHONY: all lib header examples demo demo-rust test test-rust test-hostile test-c test-c-crash test-crash test-go test-nim test-install \
        interop-deps lint bench bench-sds bench-e2e bench-wire bench-durable plot plot-wire install uninstall clean fuzz fuzz-ci \
        demo-relay test-relay test-relay-proc test-relay-netns bench-relay

all: lib

# The shared (with SONAME) and static libraries, release build.
lib:
	$(CARGO) build --release --lib
	@ln -sf libreliable_channel.so $(LIBDIR)/$(SONAME)

# Regenerates include/reliable_channel.h (tests/header.rs fails when it is stale).
header:
	RC_UPDATE_HEADER=1 $(CARGO) test --test header

examples: lib
	@mkdir -p $(BUILD)/examples
	@set -e; for ex in examples-c/*.c; do \
		name=$$(basename $$ex .c); \
		echo "CC $$ex"; \
		$(CC) $(CFLAGS_STRICT) -O2 -o $(BUILD)/examples/$$name $$ex $(LDLIBS_RC); \
	done

# The demo: the C chat example when present, else the Rust demo.
demo:
	@if [ -f examples-c/chat.c ]; then $(MAKE) --no-print-directory examples && $(BUILD)/examples/chat; \
	else $(MAKE) --no-print-directory demo-rust; fi

demo-rust:
	$(CARGO) run --release --example demo

# Three processes on loopback hold a conversation over the native Waku Relay transport (each its
# own relay node), printing a summary; exits non-zero unless every message reached everyone once.
demo-relay: lib
	@LIBDIR=$(LIBDIR) CC=$(CC) tests/relay_proc/demo.sh

# Node packages of the interop tests: the reference SDS (@waku/sds) and the js-waku relay node.
interop-deps:
	@for d in tests/interop tests/relay_interop; do \
		if [ -f $$d/package.json ] && [ ! -d $$d/node_modules/@waku/sds ]; then \
			$(NPM) ci --prefix $$d --no-audit --no-fund; fi; done

test: test-rust test-c test-c-crash test-go test-nim test-install test-relay

lint:
	$(CARGO) fmt --all --check
	$(CARGO) clippy --release --all-targets -- -D warnings
	$(CARGO) clippy --release --all-targets --no-default-features -- -D warnings
	RUSTDOCFLAGS=-Dwarnings $(CARGO) doc --release --no-deps --lib
	# The fuzz crate's lock file follows the library's dependencies (fuzz/run.sh builds with --locked).
	cd fuzz && $(CARGO) metadata --locked --format-version 1 >/dev/null

test-rust: interop-deps
	$(CARGO) test --release
	# Rust users with their own #[global_allocator] build without the mimalloc feature.
	$(CARGO) check --release --no-default-features --lib

# The hostile-participant simulation with every invariant, those #[ignore]d while a fix is pending too
# (HOSTILE_SEEDS=n for more seeds).
test-hostile:
	$(CARGO) test --release --test hostile_sim -- --include-ignored

test-c: lib
	@if [ -x tests/c/run.sh ]; then CC=$(CC) LIBDIR=$(LIBDIR) tests/c/run.sh; else echo "test-c: no C tests yet"; fi

# The SIGKILL loop through the C ABI (tests/crash_loop.rs driving tests/c/crash_child.c): 50 kills
# in `make test` (about 15 s), 500 in `make test-crash` (RC_CRASH_KILLS, RC_CRASH_SEED to vary).
CRASH_CHILD := $(CURDIR)/build/tests-c/crash_child
$(CRASH_CHILD): tests/c/crash_child.c include/reliable_channel.h lib
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_STRICT) -O1 -o $@ tests/c/crash_child.c $(LDLIBS_RC)

test-c-crash: $(CRASH_CHILD)
	RC_CRASH_CHILD=$(CRASH_CHILD) RC_CRASH_KILLS=$${RC_CRASH_KILLS:-50} $(CARGO) test --release --test crash_loop -- --nocapture

test-crash: $(CRASH_CHILD)
	RC_CRASH_CHILD=$(CRASH_CHILD) RC_CRASH_KILLS=$${RC_CRASH_KILLS:-500} $(CARGO) test --release --test crash_loop -- --nocapture

test-go: lib
	@if [ -x bindings/go/run_tests.sh ]; then LIBDIR=$(LIBDIR) bindings/go/run_tests.sh; else echo "test-go: no Go binding yet"; fi

test-nim: lib
	@if [ -x bindings/nim/run_tests.sh ]; then LIBDIR=$(LIBDIR) bindings/nim/run_tests.sh; else echo "test-nim: no Nim binding yet"; fi

# The relay transport across processes: on loopback (star, line with loss, leave and rejoin), then
# across three network namespaces with nftables faults (needs root; prints why when it skips).
test-relay: test-relay-proc test-relay-netns

test-relay-proc: lib
	LIBDIR=$(LIBDIR) CC=$(CC) tests/relay_proc/run.sh

test-relay-netns: lib
	LIBDIR=$(LIBDIR) CC=$(CC) tests/netns/run.sh

test-install: lib
	@if [ -x tests/install/run.sh ]; then tests/install/run.sh; else echo "test-install: not yet"; fi

# libFuzzer targets (fuzz/README.md), built by fuzz/run.sh with cargo-fuzz's flags on the stable
# toolchain. fuzz: FUZZ_SECONDS per target (FUZZ_TARGETS="a b" for some); fuzz-ci: the short,
# fixed form CI runs, failing on any crash.
FUZZ_SECONDS ?= 600
fuzz:
	FUZZ_SECONDS=$(FUZZ_SECONDS) fuzz/run.sh $(FUZZ_TARGETS)

fuzz-ci:
	FUZZ_SECONDS=15 FUZZ_CODEGEN_UNITS=16 fuzz/run.sh

# Criterion bench of the SDS engine, the end-to-end bench (writes target/bench/e2e.json), the
# RLN-budget efficiency bench, then durable channels against memory ones.
bench: bench-sds bench-e2e bench-wire bench-durable

bench-sds:
	$(CARGO) bench --bench sds_engine

bench-e2e:
	$(CARGO) bench --bench e2e

# RLN-budget efficiency (WakuMessages per delivered message against the ideal), deterministic, on
# a virtual clock: table on stdout, target/bench/wire.json (see BENCHMARKS.md).
bench-wire:
	$(CARGO) bench --bench wire

# Durable channels (storage, historyBackend "sqlite") against memory ones: throughput, send-call
# latency, 1 MiB sends; target/bench/durable.json.
bench-durable:
	$(CARGO) bench --bench durable

# The relay transport: two processes on loopback, the whole stack against bare rust-libp2p gossipsub
# with the same configuration, in one run (table, target/bench/relay.json; see BENCHMARKS.md).
bench-relay:
	$(CARGO) bench --bench relay_e2e

# Throughput-vs-size plot (docs/throughput.png) from target/bench/e2e.json; needs matplotlib.
plot:
	python3 benches/plot_throughput.py

# docs/wire_efficiency.png from target/bench/wire.json (make bench-wire); needs matplotlib. With
# target/bench/wire_variant.json (`WIRE_STORE=0 make bench-wire`: the plain timing) drawn dashed.
plot-wire:
	python3 benches/plot_wire.py $(if $(wildcard target/bench/wire_variant.json),--before target/bench/wire_variant.json)

install: lib
	install -d $(DESTDIR)$(PREFIX)/lib $(DESTDIR)$(PREFIX)/include $(DESTDIR)$(PREFIX)/lib/pkgconfig
	install -m 0755 $(LIBDIR)/libreliable_channel.so $(DESTDIR)$(PREFIX)/lib/$(SONAME)
	ln -sf $(SONAME) $(DESTDIR)$(PREFIX)/lib/libreliable_channel.so
	install -m 0644 $(LIBDIR)/libreliable_channel.a $(DESTDIR)$(PREFIX)/lib/libreliable_channel.a
	install -m 0644 include/reliable_channel.h $(DESTDIR)$(PREFIX)/include/reliable_channel.h
	sed -e 's|@PREFIX@|$(PREFIX)|g' -e 's|@VERSION@|$(shell sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)|g' \
		reliable_channel.pc.in > $(DESTDIR)$(PREFIX)/lib/pkgconfig/reliable_channel.pc

uninstall:
	rm -f $(DESTDIR)$(PREFIX)/lib/$(SONAME) $(DESTDIR)$(PREFIX)/lib/libreliable_channel.so \
		$(DESTDIR)$(PREFIX)/lib/libreliable_channel.a $(DESTDIR)$(PREFIX)/include/reliable_channel.h \
		$(DESTDIR)$(PREFIX)/lib/pkgconfig/reliable_channel.pc

clean:
	$(CARGO) clean
	rm -rf $(BUILD)
