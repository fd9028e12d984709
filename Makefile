# Thin wrapper over meson (see README.md). Two commands matter:
#   make run   installs what is missing (apt), builds, runs the demo
#   make test  installs what is missing, builds with sanitizers, runs every test
BUILD     ?= build
TESTBUILD ?= build-test
MESON_TEST_OPTS ?=

.PHONY: all deps test-deps build run test bench fuzz soak tsan valgrind clean

all: build

deps:
	@scripts/install-deps.sh

# The suite also needs clang's libFuzzer and valgrind.
test-deps:
	@scripts/install-deps.sh test

$(BUILD)/build.ninja:
	meson setup $(BUILD) --buildtype=release -Dtests=false

build: deps $(BUILD)/build.ninja
	ninja -C $(BUILD)

run: build
	@scripts/run-demo.sh $(BUILD)

$(TESTBUILD)/build.ninja:
	meson setup $(TESTBUILD) --buildtype=debugoptimized -Db_sanitize=address,undefined \
	  -Db_lundef=false

test: test-deps $(TESTBUILD)/build.ninja
	ninja -C $(TESTBUILD)
	@scripts/run-tests.sh $(TESTBUILD) $(MESON_TEST_OPTS)

bench: build
	@scripts/run-bench.sh $(BUILD)

# The long soak: 5 stages under chaos (bench/soak.py; COUNT RATE CHAOS).
SOAK_ARGS ?=
soak: build
	@bench/soak.py $(BUILD) $(SOAK_ARGS)

# The lib tests under ThreadSanitizer (`make test` runs them too).
tsan: test-deps
	@scripts/tsan.sh build-tsan

# The supervisor tests once with warren under valgrind memcheck.
valgrind: test-deps
	@scripts/valgrind.sh build-vg

# libFuzzer harnesses (clang), FUZZ_SECONDS each; CI runs them briefly.
FUZZ_SECONDS ?= 600
fuzz: test-deps
	@scripts/fuzz.sh $(FUZZ_SECONDS) build-fuzz

clean:
	rm -rf $(BUILD) $(TESTBUILD)
