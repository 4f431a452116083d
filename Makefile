# py_io_uring: build the extension from ops.def (through gen/) and src/.
#
#   make            build $(BUILD)/py_io_uring<EXT_SUFFIX> and its .pyi stub
#   make demo       a short tour doing real I/O (installs what is missing)
#   make test       the whole test suite (installs what is missing)
#   make asan       the whole suite under AddressSanitizer + UBSan
#   make leaks      the whole suite under python3.11-dbg, each test repeated,
#                   failing on growth of references, blocks or fds
#   make devmode    the whole suite under python -X dev, warnings as errors
#   make fuzz       the stateful Hypothesis machine at 20,000 examples, then
#                   atheris over the converters and over raw SQE field values
#                   (FUZZ_SECONDS each) against the clang fuzz build
#                   (coverage of the C code, ASan, UBSan)
#   make fuzz-ci    the same, bounded for CI (1,000 examples, 30 s each)
#   make docs       regenerate docs/api.md from ops.def and src/methods.def
#   make install    copy the module and its stub into $(PYTHON)'s site-packages
#
# PYTHON=... picks the interpreter; BUILD=... and OPS=... the build folder
# and the ops file (the tests use them to build a variant).

PYTHON ?= python3
BUILD ?= build
OPS ?= ops.def
CC ?= gcc
CFLAGS ?= -O2 -g
WARN = -Wall -Wextra -Werror -std=gnu11
PYTEST_ARGS ?= -q

PYINFO := $(shell $(PYTHON) -c "import sysconfig as s; print(s.get_config_var('EXT_SUFFIX'), s.get_paths()['include'])")
EXT_SUFFIX := $(word 1,$(PYINFO))
PY_INCLUDE := $(word 2,$(PYINFO))
ifeq ($(EXT_SUFFIX),)
$(error cannot run $(PYTHON): set PYTHON=/path/to/python3)
endif

GEN := $(BUILD)/gen
OBJDIR := $(BUILD)/obj$(basename $(EXT_SUFFIX))
MODULE := $(BUILD)/py_io_uring$(EXT_SUFFIX)
STUB := $(BUILD)/py_io_uring.pyi
SRCS := $(wildcard src/*.c)
OBJS := $(SRCS:src/%.c=$(OBJDIR)/%.o) $(OBJDIR)/ops_gen.o
HDRS := $(wildcard src/*.h) $(GEN)/.stamp
GENERATOR := $(wildcard gen/*.py)
ALL_CFLAGS = $(CFLAGS) $(WARN) -fPIC -I src -I $(GEN) -I $(PY_INCLUDE)

.PHONY: all demo test asan leaks devmode fuzz fuzz-ci docs install deps deps-test deps-dbg deps-fuzz clean

all: $(MODULE) $(STUB)

$(GEN)/.stamp: $(OPS) src/methods.def $(GENERATOR)
	$(PYTHON) gen/generate.py --ops $(OPS) --methods src/methods.def --out $(GEN) --pyi $(STUB)
	@touch $@

$(STUB): $(GEN)/.stamp

$(OBJDIR)/%.o: src/%.c $(HDRS)
	@mkdir -p $(OBJDIR)
	$(CC) $(ALL_CFLAGS) -c $< -o $@

$(OBJDIR)/ops_gen.o: $(GEN)/.stamp src/py_io_uring.h
	@mkdir -p $(OBJDIR)
	$(CC) $(ALL_CFLAGS) -c $(GEN)/ops_gen.c -o $@

$(MODULE): $(OBJS)
	$(CC) -shared $(CFLAGS) $(LDFLAGS) $(OBJS) -luring -o $@

docs:
	$(PYTHON) gen/generate.py --ops $(OPS) --methods src/methods.def --api docs/api.md

# liburing's headers from Debian (as root; otherwise say the command)
deps:
	@if ! echo '#include <liburing.h>' | $(CC) -E - >/dev/null 2>&1; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing liburing-dev"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq liburing-dev >/dev/null; \
	  else \
	    echo "liburing headers are missing: run  sudo apt-get install -y liburing-dev"; exit 1; \
	  fi; \
	fi

# uvloop and trio: AsyncRing runs on both loops, the raw ring under trio
deps-test: deps
	@$(PYTHON) -c "import pytest, hypothesis, uvloop, trio" 2>/dev/null || \
	  $(PYTHON) -m pip install -q pytest hypothesis uvloop trio
	@command -v wrk >/dev/null || [ "$$(id -u)" != 0 ] || \
	  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null; }

# Debian's debug interpreter, with pytest and hypothesis for it
DBG_PYTHON = python3.11-dbg
DBG_PACKAGES = python3-pytest python3-hypothesis python3-uvloop python3-trio
deps-dbg: deps
	@if ! command -v $(DBG_PYTHON) >/dev/null || ! $(DBG_PYTHON) -c "import pytest, hypothesis, uvloop, trio" 2>/dev/null; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    echo "installing $(DBG_PYTHON) $(DBG_PACKAGES)"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	      $(DBG_PYTHON) $(DBG_PACKAGES) >/dev/null; \
	  else \
	    echo "run  sudo apt-get install -y $(DBG_PYTHON) $(DBG_PACKAGES)"; exit 1; \
	  fi; \
	fi

demo: deps
	@$(MAKE) --no-print-directory all
	PY_IO_URING_BUILD=$(BUILD) $(PYTHON) docs/demo.py

test: deps-test
	@$(MAKE) --no-print-directory all
	PY_IO_URING_BUILD=$(BUILD) $(PYTHON) -m pytest $(PYTEST_ARGS) tests

ASAN_FLAGS = -O1 -g -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer
asan: deps-test
	@$(MAKE) --no-print-directory all BUILD=build-asan CFLAGS="$(ASAN_FLAGS)"
	PY_IO_URING_BUILD=build-asan PY_IO_URING_ASAN=1 \
	LD_PRELOAD=$$($(CC) -print-file-name=libasan.so) \
	ASAN_OPTIONS=detect_leaks=0 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	PYTHONMALLOC=malloc $(PYTHON) -m pytest $(PYTEST_ARGS) tests

leaks: deps-dbg
	@$(MAKE) --no-print-directory all PYTHON=$(DBG_PYTHON) BUILD=build-dbg
	PY_IO_URING_LEAKS=1 PY_IO_URING_BUILD=build-dbg $(DBG_PYTHON) -m pytest $(PYTEST_ARGS) tests

devmode: deps-test
	@$(MAKE) --no-print-directory all
	PY_IO_URING_BUILD=$(BUILD) $(PYTHON) -X dev -m pytest $(PYTEST_ARGS) -W error tests

# The fuzz build (build-fuzz/): clang with libFuzzer's coverage
# instrumentation, so atheris sees which branches of the C code an input
# reached, with ASan and UBSan, and with the raw-SQE entry point
# Sqe._fuzz_prep_raw (src/fuzz_raw.c, -DPU_FUZZ_RAW; never in other builds).
# It runs under atheris' own ASan runtime, which carries libFuzzer.
FUZZ_SECONDS ?= 300
FUZZ_CC ?= clang
FUZZ_FLAGS = -O1 -g -fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=undefined \
  -fno-omit-frame-pointer -DPU_FUZZ_RAW
FUZZ_ENV = PY_IO_URING_BUILD=build-fuzz \
  LD_PRELOAD=$$($(PYTHON) -c "import atheris, os; print(os.path.join(atheris.path(), 'asan_with_fuzzer.so'))") \
  ASAN_OPTIONS=detect_leaks=0:quarantine_size_mb=64 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
  PYTHONMALLOC=malloc
# libFuzzer keeps what it learns in build-fuzz/corpus/, so runs build on each other
FUZZ_ARGS = -max_total_time=$(FUZZ_SECONDS) -rss_limit_mb=4096 -print_final_stats=1 \
  -artifact_prefix=build-fuzz/

# clang from apt and atheris from PyPI (as root; otherwise say the commands)
deps-fuzz: deps-test
	@if ! command -v $(FUZZ_CC) >/dev/null; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing clang"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq clang >/dev/null; \
	  else \
	    echo "clang is missing: run  sudo apt-get install -y clang"; exit 1; \
	  fi; \
	fi
	@$(PYTHON) -c "import atheris" 2>/dev/null || $(PYTHON) -m pip install -q atheris

fuzz: deps-fuzz
	@$(MAKE) --no-print-directory all
	@$(MAKE) --no-print-directory all BUILD=build-fuzz CC=$(FUZZ_CC) CFLAGS="$(FUZZ_FLAGS)"
	PY_IO_URING_BUILD=$(BUILD) PY_IO_URING_FUZZ_PROFILE=$(or $(FUZZ_PROFILE),fuzz) \
	  $(PYTHON) -m pytest $(PYTEST_ARGS) tests/test_stateful.py tests/test_async_fuzz.py
	@mkdir -p build-fuzz/corpus/converters build-fuzz/corpus/raw
	$(FUZZ_ENV) $(PYTHON) tests/fuzz_converters.py $(FUZZ_ARGS) build-fuzz/corpus/converters
	$(FUZZ_ENV) $(PYTHON) tests/fuzz_raw.py $(FUZZ_ARGS) build-fuzz/corpus/raw

fuzz-ci:
	@$(MAKE) --no-print-directory fuzz FUZZ_SECONDS=30 FUZZ_PROFILE=ci

install: all
	@dest=$$($(PYTHON) -c "import sysconfig; print(sysconfig.get_paths()['platlib'])"); \
	echo "installing into $$dest"; \
	install -m 755 $(MODULE) $$dest/ && install -m 644 $(STUB) $$dest/

clean:
	rm -rf build build-asan build-dbg build-dev build-fuzz

# Benchmarks (bench/README.md): py_io_uring against C over liburing and the
# standard library.  `bench` rewrites docs/performance.md (1 GiB files);
# `bench-ci` is the quick form, written to build/bench/ and a minute or two (the echo servers and
# callgrind of the NOP loop take most of it).
BENCH_BIN = $(BUILD)/bench
$(BENCH_BIN)/%: bench/%.c
	@mkdir -p $(BENCH_BIN)
	$(CC) -O2 -Wall -Wextra -o $@ $< -luring

bench: deps
	@$(MAKE) --no-print-directory all $(BENCH_BIN)/nop $(BENCH_BIN)/randread $(BENCH_BIN)/echo_load $(BENCH_BIN)/echo_server
	@# the peer binding and the plot are optional: try them, bounded, never fail
	@$(PYTHON) -c "import liburing" 2>/dev/null || timeout 60 $(PYTHON) -m pip install -q liburing || true
	@$(PYTHON) -c "import matplotlib" 2>/dev/null || timeout 120 $(PYTHON) -m pip install -q matplotlib || true
	@$(PYTHON) -c "import uvloop" 2>/dev/null || timeout 120 $(PYTHON) -m pip install -q uvloop || true
	$(PYTHON) bench/run.py --build $(BUILD) --out docs/performance.md $(BENCH_ARGS)

bench-ci: deps
	@$(MAKE) --no-print-directory all $(BENCH_BIN)/nop $(BENCH_BIN)/randread $(BENCH_BIN)/echo_load $(BENCH_BIN)/echo_server
	$(PYTHON) bench/run.py --build $(BUILD) --quick --out $(BENCH_BIN)/performance.md $(BENCH_ARGS)

.PHONY: bench bench-ci
