# Thin wrapper over meson (see README.md). Two commands matter:
#   make run   installs what is missing (apt), builds, runs the demo
#   make test  installs what is missing, builds with sanitizers, runs every test
BUILD     ?= build
TESTBUILD ?= build-test
MESON_TEST_OPTS ?=

.PHONY: all deps build run test bench fuzz soak tsan valgrind clean

all: build

deps:
	@scripts/install-deps.sh

$(BUILD)/build.ninja:
	meson setup $(BUILD) --buildtype=release -Dtests=false

build: deps $(BUILD)/build.ninja
	ninja -C $(BUILD)

run: build
	@scripts/run-demo.sh $(BUILD)

$(TESTBUILD)/build.ninja:
	meson setup $(TESTBUILD) --buildtype=debugoptimized -Db_sanitize=address,undefined \
	  -Db_lundef=false

test: deps $(TESTBUILD)/build.ninja
	ninja -C $(TESTBUILD)
	@scripts/run-tests.sh $(TESTBUILD) $(MESON_TEST_OPTS)

bench: build
	@scripts/run-bench.sh $(BUILD)

# The long soak: 5 stages under chaos (bench/soak.py; COUNT RATE CHAOS).
SOAK_ARGS ?=
soak: build
	@bench/soak.py $(BUILD) $(SOAK_ARGS)

# The lib tests under ThreadSanitizer (their threads; processes are apart).
TSAN_TESTS ?= arena backend deadlock heap heap_crash map mutex mvar sem chan chan_crash hostile
tsan: deps
	@[ -f build-tsan/build.ninja ] || meson setup build-tsan --buildtype=debugoptimized \
	  -Db_sanitize=thread -Db_lundef=false -Dc_args=-Wno-tsan
	ninja -C build-tsan
	TSAN_OPTIONS="halt_on_error=1 suppressions=$(CURDIR)/tests/tsan.supp" meson test -C build-tsan --print-errorlogs $(TSAN_TESTS)

# The supervisor tests once with warren under valgrind memcheck.
valgrind: deps
	@scripts/valgrind.sh build-vg

# libFuzzer harnesses (clang), FUZZ_SECONDS each; CI runs them briefly.
FUZZ_SECONDS ?= 600
fuzz:
	@scripts/install-deps.sh fuzz
	@scripts/fuzz.sh $(FUZZ_SECONDS) build-fuzz

clean:
	rm -rf $(BUILD) $(TESTBUILD)
