# py_io_uring: build the extension from ops.def (through gen/) and src/.
#
#   make            build $(BUILD)/py_io_uring<EXT_SUFFIX> and its .pyi stub
#   make demo       a short tour doing real I/O (installs what is missing)
#   make test       the whole test suite (installs what is missing)
#   make asan       the whole suite under AddressSanitizer + UBSan
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

.PHONY: all demo test asan docs install deps deps-test clean

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

deps-test: deps
	@$(PYTHON) -c "import pytest" 2>/dev/null || $(PYTHON) -m pip install -q pytest

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

install: all
	@dest=$$($(PYTHON) -c "import sysconfig; print(sysconfig.get_paths()['platlib'])"); \
	echo "installing into $$dest"; \
	install -m 755 $(MODULE) $$dest/ && install -m 644 $(STUB) $$dest/

clean:
	rm -rf build build-asan
