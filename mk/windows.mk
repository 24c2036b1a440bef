# mk/windows.mk: the Windows (x86_64) cross-build with mingw-w64 and its
# tests under Wine (docs/windows.md).  Included by the Makefile.
#
#   make windows        build-win/: third-party libraries (scripts/
#                       win-deps.sh), the proto/common unit tests, and,
#                       once the Windows transport is in the tree,
#                       bin/traced.exe, lib/traced.dll + lib/libtraced.dll.a
#                       + lib/libtraced.a, and the native test programs
#   make test-windows   run them under wine64 (tests/windows/)
#
# The source lists are explicit: the Windows build compiles the portable
# sources and the Windows side of each seam (transport_win.c) instead of
# the Unix one.

WIN_HOST ?= x86_64-w64-mingw32
WIN_CC ?= $(WIN_HOST)-gcc
WIN_AR ?= $(WIN_HOST)-ar
WIN_BUILD := build-win
WIN_DEPS := $(WIN_BUILD)/deps
WIN_DEPS_STAMP := $(WIN_DEPS)/.ready
WINE ?= $(firstword $(wildcard /usr/lib/wine/wine64 /usr/bin/wine64) wine)
WINESERVER ?= $(firstword $(wildcard /usr/lib/wine/wineserver64 \
                /usr/lib/wine/wineserver) wineserver)

# __USE_MINGW_ANSI_STDIO: C99 printf (%zu, %llu) instead of msvcrt's.
# _WIN32_WINNT 0x0A00: Windows 10 APIs (GetNamedPipeServerProcessId is
# Vista's; libuv 1.44 needs 0x0600).
WIN_CFLAGS := -std=c11 -D__USE_MINGW_ANSI_STDIO=1 -D_WIN32_WINNT=0x0A00 \
              -Wall -Wextra -Werror -MMD -MP $(OPT) -g \
              -I. -Ilibclient/include -I$(WIN_DEPS)/include
# Static: the programs need no mingw DLL (libgcc, libwinpthread) beside
# them.  libuv's own system libraries follow it.
WIN_LDFLAGS := -static
WIN_UV_LIBS := -L$(WIN_DEPS)/lib -luv -lws2_32 -liphlpapi -luserenv \
               -lpsapi -ldbghelp -lole32 -luuid -ladvapi32
WIN_MP_LIBS := -L$(WIN_DEPS)/lib -lmsgpackc
WIN_Z_LIBS := -lz

WIN_PROTO_SRC := proto/frame.c proto/mp.c proto/msg.c proto/sockpath.c
WIN_COMMON_CLIENT_SRC := common/map.c common/intern.c
WIN_CLIENT_SRC := libclient/src/api.c libclient/src/argbuf.c \
                  libclient/src/client.c libclient/src/conn.c \
                  libclient/src/options.c libclient/src/producer.c \
                  libclient/src/transport_win.c \
                  $(WIN_COMMON_CLIENT_SRC)
WIN_DAEMON_SRC := common/log.c \
                  $(addprefix daemon/,admission.c conn.c dispatch.c drain.c \
                    listen.c lograte.c metaseen.c mpcheck.c peer.c proc.c pychild.c \
                    recargs.c ringread.c server.c session.c status.c \
                    tsclock.c worker.c transport_win.c) \
                  $(addprefix output/,formats.c gzout.c json_escape.c pb.c \
                    sink.c utf8.c writer.c writer_json.c writer_pftrace.c) \
                  $(addprefix report/,jsontok.c nest.c pbread.c \
                    pftrace_clock.c pftrace_read.c report.c report_print.c \
                    trace_read.c) \
                  $(addprefix cli/,ctl.c main.c privdrop.c report.c run.c \
                    runcmd.c runopts.c serve.c)
# The unit tests that need only proto/ and common/, built against
# tests/windows/include/check.h (Check's API, no fork).
WIN_UNITS := frame msg map
# Windows-only helpers of tests/windows/: spawn (several processes into one
# session), pipe_sd (a pipe's security descriptor, read back).
WIN_HELPERS := spawn pipe_sd
# The client library and the native programs are built from the client's
# Windows transport.  The daemon's port is not finished (server.c,
# listen.c, cli/ and output/ still use POSIX calls: docs/windows.md):
# traced.exe is built only with WIN_DAEMON=1, which names the missing
# pieces as compile errors.
WIN_TRANSPORT := $(wildcard libclient/src/transport_win.c)
WIN_DAEMON ?=

win_obj = $(patsubst %.c,$(WIN_BUILD)/obj/%.o,$(1))
WIN_PROTO_OBJ := $(call win_obj,$(WIN_PROTO_SRC))
WIN_CLIENT_OBJ := $(call win_obj,$(WIN_CLIENT_SRC))
WIN_DAEMON_OBJ := $(call win_obj,$(WIN_DAEMON_SRC))

WIN_BIN := $(WIN_BUILD)/bin/traced.exe
WIN_DLL := $(WIN_BUILD)/lib/traced.dll
WIN_IMPLIB := $(WIN_BUILD)/lib/libtraced.dll.a
WIN_LIB_A := $(WIN_BUILD)/lib/libtraced.a
WIN_NATIVE_EXAMPLE := $(WIN_BUILD)/tests/native_example.exe
WIN_STRESS_NATIVE := $(WIN_BUILD)/tests/stress_native.exe
WIN_UNIT_BINS := $(patsubst %,$(WIN_BUILD)/tests/check_%.exe,$(WIN_UNITS))
WIN_HELPER_BINS := $(patsubst %,$(WIN_BUILD)/tests/%.exe,$(WIN_HELPERS))
WIN_PROGRAMS := $(if $(WIN_DAEMON),$(WIN_BIN)) $(WIN_DLL) $(WIN_LIB_A) \
                $(WIN_NATIVE_EXAMPLE) $(WIN_STRESS_NATIVE) \
                $(WIN_BUILD)/tests/win_transport.exe

# The embeddable CPython and the headers extensions are built against
# (scripts/win-python.sh), and a trivial extension module built for it.
WIN_PYTHON_STAMP := $(WIN_BUILD)/python/.ready
WIN_PYINC := $(WIN_BUILD)/python-include
WIN_PROBE := $(WIN_BUILD)/tests/pyext/winprobe.pyd

.PHONY: windows windows-deps windows-units windows-python test-windows

windows: windows-units windows-python \
         $(if $(WIN_TRANSPORT),$(WIN_PROGRAMS))
ifeq ($(WIN_TRANSPORT),)
	@echo "make windows: no libclient/src/transport_win.c:" \
	  "built the proto/common unit tests only, not traced.exe," \
	  "traced.dll or the native programs"
else ifeq ($(WIN_DAEMON),)
	@echo "make windows: traced.dll and the native programs built;" \
	  "traced.exe is not (the daemon's port is unfinished; WIN_DAEMON=1" \
	  "tries it)"
endif

windows-deps: $(WIN_DEPS_STAMP)

$(WIN_DEPS_STAMP): scripts/win-deps.sh
	scripts/win-deps.sh
	touch $@

windows-units: $(WIN_UNIT_BINS) $(WIN_HELPER_BINS)

# Every object waits for the third-party headers.
$(WIN_BUILD)/obj/%.o: %.c | $(WIN_DEPS_STAMP)
	@mkdir -p $(dir $@)
	$(WIN_CC) $(WIN_CFLAGS) -c $< -o $@

$(WIN_BUILD)/tests/check_%.exe: tests/unit/check_%.c $(WIN_PROTO_OBJ) \
                                $(call win_obj,$(WIN_COMMON_CLIENT_SRC))
	@mkdir -p $(dir $@)
	$(WIN_CC) $(WIN_CFLAGS) -Itests/windows/include $(WIN_LDFLAGS) -o $@ $^ \
	  $(WIN_MP_LIBS)

windows-python: $(WIN_PROBE)

$(WIN_PYTHON_STAMP): scripts/win-python.sh
	PYTHON=$(PYTHON) scripts/win-python.sh
	touch $@

# PyMODINIT_FUNC exports PyInit_winprobe (dllexport on Windows).
$(WIN_PROBE): tests/windows/winprobe.c $(WIN_PYTHON_STAMP)
	@mkdir -p $(dir $@)
	$(WIN_CC) -std=c11 -Wall -Wextra -Werror $(OPT) -shared -o $@ $< \
	  -I$(WIN_PYINC) -L$(WIN_BUILD)/python -lpython313

$(WIN_HELPER_BINS): $(WIN_BUILD)/tests/%.exe: tests/windows/%.c
	@mkdir -p $(dir $@)
	$(WIN_CC) $(WIN_CFLAGS) $(WIN_LDFLAGS) -o $@ $< -ladvapi32

$(WIN_BIN): $(WIN_DAEMON_OBJ) $(WIN_PROTO_OBJ) $(WIN_CLIENT_OBJ)
	@mkdir -p $(dir $@)
	$(WIN_CC) $(WIN_LDFLAGS) -o $@ $^ $(WIN_UV_LIBS) $(WIN_MP_LIBS) \
	  $(WIN_Z_LIBS)

$(WIN_LIB_A): $(WIN_CLIENT_OBJ) $(WIN_PROTO_OBJ)
	@mkdir -p $(dir $@)
	rm -f $@
	$(WIN_AR) rcs $@ $^

# The DLL exports the public API and nothing else: the functions traced.h
# declares TRACED_API, listed in a .def file made from the header.  It
# carries its own static copy of msgpack-c.
WIN_DEF := $(WIN_BUILD)/lib/traced.def
$(WIN_DEF): libclient/include/traced.h
	@mkdir -p $(dir $@)
	{ echo "LIBRARY traced.dll"; echo "EXPORTS"; \
	  sed -n 's/^TRACED_API .*[ *]\(traced_[a-z_0-9]*\)(.*/  \1/p' $<; } > $@

$(WIN_DLL) $(WIN_IMPLIB) &: $(WIN_CLIENT_OBJ) $(WIN_PROTO_OBJ) $(WIN_DEF)
	@mkdir -p $(dir $@)
	$(WIN_CC) -shared $(WIN_LDFLAGS) -o $(WIN_DLL) \
	  -Wl,--out-implib,$(WIN_IMPLIB) $^ $(WIN_MP_LIBS) -ladvapi32 -lpthread

# Both sides of the transport seam in one program (tests/native/
# win_transport.c): a listener through daemon/transport_win.c and a child
# connecting through libclient/src/transport_win.c.
WIN_TRANSPORT_CHECK := $(WIN_BUILD)/tests/win_transport.exe
$(WIN_TRANSPORT_CHECK): tests/native/win_transport.c \
    $(call win_obj,libclient/src/transport_win.c daemon/transport_win.c \
      proto/frame.c proto/sockpath.c)
	@mkdir -p $(dir $@)
	$(WIN_CC) $(WIN_CFLAGS) $(WIN_LDFLAGS) -o $@ $^ $(WIN_UV_LIBS) \
	  $(WIN_MP_LIBS) -lshell32 -lpthread

# The native programs use POSIX threads: mingw-w64's winpthreads, static.
$(WIN_NATIVE_EXAMPLE): tests/native/example.c
$(WIN_STRESS_NATIVE): tests/native/stress.c
$(WIN_NATIVE_EXAMPLE) $(WIN_STRESS_NATIVE): $(WIN_LIB_A)
	@mkdir -p $(dir $@)
	$(WIN_CC) $(WIN_CFLAGS) $(WIN_LDFLAGS) -o $@ $(filter %.c,$^) \
	  $(WIN_LIB_A) $(WIN_MP_LIBS) -ladvapi32 -lpthread

# Wine's state lives in the build tree; -all: no Wine debug chatter.
# Console programs need no X display (DISPLAY is unset).
WIN_WINEPREFIX := $(abspath $(WIN_BUILD)/wineprefix)
test-windows: windows $(VENV_PY)
	@$(VENV_PY) -c 'import pytest' 2>/dev/null || \
	  $(VENV_PY) -m pip install -q pytest
	WINE="$(WINE)" WINEPREFIX=$(WIN_WINEPREFIX) WINEDEBUG=-all \
	WINEARCH=win64 DISPLAY= WIN_BUILD=$(abspath $(WIN_BUILD)) \
	WINESERVER=$(WINESERVER) WIN_UNITS="$(WIN_UNITS)" \
	  $(VENV_PY) -m pytest -q tests/windows $(PYTEST_ARGS)

-include $(shell find $(WIN_BUILD)/obj -name '*.d' 2>/dev/null)

# ---- The Python extension for the embeddable CPython (issue 16 item 4) ----
# pyshim's C sources and the client library they compile in (pyshim/
# setup.py's list, with libclient/src/transport_win.c), built with mingw
# against CPython 3.13's headers (build-win/python-include) and linked to
# python313.dll itself, into build-win/python/Lib/site-packages/traced/
# _traced.pyd beside the package's Python files; traced-attach.pth goes
# into site-packages, which the embeddable CPython's site module reads
# (scripts/win-python.sh enables `import site`).
#
# C runtime: Debian's mingw-w64 links msvcrt.dll (its gcc has no
# -mcrtdll=ucrt, and its libmingwex is built for msvcrt), while
# python.org's CPython uses the UCRT.  The extension therefore passes no C
# runtime object across: no FILE *, no descriptor (the output file is
# opened by the extension, a Win32 HANDLE: traced.start), no malloc'd
# memory freed by the other side, and errno values only as numbers.
# Everything else is linked statically (no libgcc or winpthread DLL).
WIN_PY_SRC := $(addprefix pyshim/src/,module.c profile.c names.c filters.c \
                probes.c thread.c evalhook.c monitor.c args.c events.c) \
              $(WIN_CLIENT_SRC) $(WIN_PROTO_SRC)
WIN_PY_OBJ := $(patsubst %.c,$(WIN_BUILD)/obj-py/%.o,$(WIN_PY_SRC))
WIN_SITE := $(WIN_BUILD)/python/Lib/site-packages
WIN_PYD := $(WIN_SITE)/traced/_traced.pyd
WIN_PY_FILES := $(patsubst pyshim/%,$(WIN_SITE)/%,\
                  $(wildcard pyshim/traced/*.py)) \
                $(WIN_SITE)/traced-attach.pth
WIN_PY_CFLAGS := $(WIN_CFLAGS) -Wno-missing-field-initializers -Ipyshim/src \
                 -I$(WIN_PYINC)

.PHONY: windows-pyshim
windows: windows-pyshim
windows-pyshim: $(WIN_PYD) $(WIN_PY_FILES) $(WIN_SITE)/traced/_build.py

$(WIN_BUILD)/obj-py/%.o: %.c $(WIN_PYTHON_STAMP) | $(WIN_DEPS_STAMP)
	@mkdir -p $(dir $@)
	$(WIN_CC) $(WIN_PY_CFLAGS) -c $< -o $@

# PyMODINIT_FUNC (dllexport) makes PyInit__traced the DLL's only export.
$(WIN_PYD): $(WIN_PY_OBJ)
	@mkdir -p $(dir $@)
	$(WIN_CC) -shared $(WIN_LDFLAGS) -o $@ $^ $(WIN_BUILD)/python/python313.dll \
	  $(WIN_MP_LIBS) -ladvapi32 -lpthread

$(WIN_SITE)/%: pyshim/% $(WIN_PYTHON_STAMP)
	@mkdir -p $(dir $@)
	cp $< $@

# The daemon the inline API starts when none runs (pyshim/setup.py writes
# the same file for Linux).
$(WIN_SITE)/traced/_build.py: $(WIN_PYTHON_STAMP)
	@mkdir -p $(dir $@)
	printf '# Generated by mk/windows.mk.\nTRACED_BIN = %s\n' \
	  "'Z:$(subst /,\\\\,$(abspath $(WIN_BIN)))'" > $@

-include $(shell find $(WIN_BUILD)/obj-py -name '*.d' 2>/dev/null)
