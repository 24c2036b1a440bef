"""traced: trace every process of a Python program into one trace file.

The `traced` daemon is the only writer of the file; this package records
calls into shared-memory rings that the daemon drains.  Three ways in:

* ``with traced.session(output="trace.json"): ...`` traces the block (and
  every process started inside it); the file is complete when it exits.
* ``traced.start(output=...)`` / ``traced.stop()``: the same without a block.
* Environment: a Python process started with ``TRACED_SESSION`` (join) or
  ``TRACED_OUTPUT`` (create) set attaches by itself before user code runs
  (``traced run -- python app.py`` sets them for you).

Tracing never changes the program's behaviour: when the daemon cannot be
reached, one warning goes to stderr and the program runs untraced.
"""
from __future__ import annotations  # annotations stay strings: no typing

import errno
import os
import sys
import time

from . import _options, _traced

__all__ = ["session", "start", "stop", "Summary", "last_summary", "instant",
           "counter", "span", "set_thread_name"]
__version__ = "0.1.0"

ENV_SOCKET = "TRACED_SOCKET"
ENV_SESSION = "TRACED_SESSION"
ENV_OUTPUT = "TRACED_OUTPUT"
# Set by `traced run` to the pid of the command it starts: that process is
# the program's main process.
ENV_ROOT_PID = "TRACED_ROOT_PID"

# Nothing under this directory (traced's own Python code) is recorded.
_traced.set_skip_prefix(os.path.dirname(os.path.abspath(__file__)) + os.sep)


_SUMMARY_FIELDS = ("processes", "threads", "events", "dropped", "bytes",
                   "path", "late", "malformed", "unmatched", "filtered", "cut",
                   "unjoined", "unjoined_omitted")


class Summary(tuple):
    """What the daemon reports when a session ends: processes, threads,
    events, dropped, bytes, path, late, malformed, unmatched, filtered.
    `dropped` counts events that could not be kept (full rings, depth limit,
    write errors); `late`, `malformed` and `unmatched` count records the
    daemon discarded or ignored (made after the session ended, undecodable,
    exits without a recorded call); `filtered` counts calls not written for
    being shorter than the session's min_duration.  `cut` says why the
    trace ended short of its events ("stopped at --max-size 100M: ...",
    "write failed: No space left on device: ..."), "" when it did not.
    `unjoined` lists the Python processes the session's processes started
    that never joined it (an interpreter without traced, or run with -S),
    as (pid, interpreter, argv) tuples, at most 8; `unjoined_omitted`
    counts the others.

    A named tuple, written out: `collections` (and `typing`) would add
    milliseconds to the start-up of every traced process."""

    __slots__ = ()
    _fields = _SUMMARY_FIELDS

    def __new__(cls, processes, threads, events, dropped, bytes, path,
                late=0, malformed=0, unmatched=0, filtered=0, cut="",
                unjoined=(), unjoined_omitted=0):
        return tuple.__new__(cls, (processes, threads, events, dropped, bytes,
                                   path, late, malformed, unmatched, filtered,
                                   cut, unjoined, unjoined_omitted))

    def __repr__(self):
        return "Summary(%s)" % ", ".join(
            "%s=%r" % kv for kv in zip(self._fields, self))

    def __getnewargs__(self):
        return tuple(self)

    def _asdict(self):
        return dict(zip(self._fields, self))

    def _replace(self, **kw):
        return type(self)(**dict(self._asdict(), **kw))


for _i, _f in enumerate(_SUMMARY_FIELDS):
    setattr(Summary, _f, property(lambda self, _i=_i: self[_i],
                                  doc="Summary field %d" % _i))
del _i, _f


class _State:
    creator = False  # this process created the current session
    saved_env: dict = {}
    installed = False
    last_summary: Optional[Summary] = None


_state = _State()


def last_summary() -> Optional[Summary]:
    """The summary of the last session this process ended, or None."""
    return _state.last_summary


def default_output() -> str:
    return time.strftime("traced-%Y%m%d-%H%M%S.json")


def _thread_name() -> str:
    threading = sys.modules.get("threading")
    if threading is None:
        return "MainThread"
    return threading.current_thread().name


def _install(opts: _options.Options) -> None:
    """Starts recording this thread and threads started later, as `opts`
    say.  Callers call it last: the calls it records begin once it returns,
    and traced's own frames still on the stack (entered before the hook
    existed) are not known to be traced's."""
    _event_sources(opts.log_print, opts.log_gc)
    _traced.configure(trace_c=not opts.ignore_c_functions,
                      include=opts.include_files, exclude=opts.exclude_files,
                      max_depth=opts.max_depth, log_args=opts.log_args,
                      log_return=opts.log_return, repr_limit=opts.repr_limit)
    _traced.set_full_policy(opts.on_full == "drop", opts.full_wait_ms)
    if not _traced.reaches_all_threads():
        # The profile hook is per thread: threads started later get it from
        # threading (imported only here: sys.monitoring and the
        # frame-evaluation hook reach every thread by themselves, and
        # importing threading costs start-up).
        import threading

        threading.setprofile(_traced.thread_bootstrap)
    # Processes it starts are told to the daemon, which names the Python
    # ones that never join (_children.py).
    from . import _children

    _children.install()
    _state.installed = True
    _traced.install(_thread_name())


def _uninstall() -> None:
    if not _state.installed:
        return
    # Recording stops first: what follows is not the program's.
    _traced.uninstall()
    _event_sources(False, False)
    threading = sys.modules.get("threading")
    if threading is not None:
        threading.setprofile(None)
    _state.installed = False


def _daemon_binary() -> Optional[str]:
    """$TRACED_BIN, else the binary inside this package (a wheel) or of the
    checkout it was built from, else a `traced` on PATH."""
    path = os.environ.get("TRACED_BIN")
    if path:
        return path
    from .__main__ import binary

    path = binary()
    if path:
        return path
    import shutil

    return shutil.which("traced")


# Windows: the daemon is reached over a named pipe (\\.\pipe\traced-<user>),
# processes start fresh (spawn, never fork) and the extension's C runtime is
# not CPython's, so it is given Win32 handles, never descriptors.
_WINDOWS = sys.platform == "win32"
# The system daemon's socket (`traced serve --system`; TR_SYSTEM_SOCKET).
SYSTEM_SOCKET = (r"\\.\pipe\traced" if _WINDOWS else
                 "/run/traced/traced.sock")


def _private_place(socket: str) -> bool:
    """A private daemon is started only where it is this user's to start:
    never on the system socket, nor in a directory another user owns (a
    shared daemon's place: when it is down the program runs untraced).  A
    Windows pipe name has no directory: the client checks the pipe's
    server when it connects."""
    if socket == SYSTEM_SOCKET:
        return False
    if _WINDOWS:
        return True
    directory = os.path.dirname(socket) or "."
    try:
        return os.stat(directory).st_uid == os.getuid()
    except OSError:
        return True


def _autostart(socket: Optional[str]) -> bool:
    """Start a private daemon that detaches and exits when idle."""
    if os.environ.get("TRACED_NO_AUTOSTART") == "1":
        return False
    if not _private_place(socket or _traced.default_socket()):
        return False
    binary = _daemon_binary()
    if binary is None:
        return False
    import subprocess

    cmd = [binary, "serve", "--daemon", "--idle-exit", "300"]
    if socket:
        cmd += ["--socket", socket]
    try:
        done = subprocess.run(cmd, stdin=subprocess.DEVNULL,
                              stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return False
    return done.returncode == 0


def _connect(socket: Optional[str], autostart: bool) -> bool:
    try:
        _traced.connect(socket)
        return True
    except OSError as first:
        err = first
    # EPERM: the socket's directory or the process answering it is not to
    # be trusted (the reason says whose); starting a daemon changes nothing.
    # A socket in a missing directory (the reason names it) cannot be
    # served there either.
    missing = socket is not None and not _WINDOWS and not os.path.isdir(
        os.path.dirname(socket) or "/")
    if autostart and err.errno != errno.EPERM and not missing and \
            _autostart(socket):
        try:
            _traced.connect(socket)
            return True
        except OSError as again:
            err = again
    where = socket or _traced.default_socket()
    _traced.warn(f"cannot reach the traced daemon at {where} ({err.strerror});"
                 " running untraced")
    return False


def _export(token: str, opts: _options.Options) -> None:
    """Child processes join the session, with the session's options."""
    new = _options.to_env(opts)
    new[ENV_SESSION] = token
    new[ENV_SOCKET] = _traced.socket_path()
    _state.saved_env = {k: os.environ.get(k) for k in new}
    for key, value in new.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


def _restore_env() -> None:
    for key, value in _state.saved_env.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
    _state.saved_env = {}


def _options_of(trace_c, options):
    if trace_c is not None and options.get("ignore_c_functions") is None:
        options = dict(options, ignore_c_functions=not trace_c)
    return options


def start(output: Optional[str] = None, *, socket: Optional[str] = None,
          trace_c: Optional[bool] = None, **options) -> bool:
    """Create a session writing `output` and trace this process (the calling
    thread and threads started later) and every process it starts.

    Recording options (docs/options.md) are keyword arguments:
    include_files, exclude_files, max_depth, ignore_c_functions,
    min_duration, log_args, log_return, repr_limit, log_print, log_gc,
    on_full, full_wait_ms, max_size.  An
    option not given (or None) takes its TRACED_* environment variable's
    value; child processes get the session's options in theirs.
    `trace_c=False` is the older spelling of `ignore_c_functions=True`.

    Returns True when tracing, False when the daemon could not be reached
    (one warning is printed and the program goes on untraced).  Raises
    ValueError (TypeError) for an invalid (unknown) option, before anything
    starts; OSError if `output` cannot be opened for writing; RuntimeError
    if this process already has a session open."""
    opts = _options.resolve(_options_of(trace_c, options))
    if _state.creator:
        raise RuntimeError("traced: this process already has a session open")
    output = output or default_output()
    if not _connect(socket or os.environ.get(ENV_SOCKET), autostart=True):
        return False
    # The file is opened here, with this process's permissions; the daemon
    # only ever gets the descriptor.  A bad path is the caller's error.
    # Not truncated: the daemon empties it once it accepts the session, so
    # a refusal leaves an existing file as it was.  Never blocks (a FIFO
    # without a reader); the daemon takes regular files and /dev/null only.
    if _WINDOWS:
        fd = _traced.open_output(output)
        close = _traced.close_output
    else:
        fd = os.open(output, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC
                     | os.O_NONBLOCK | os.O_NOCTTY, 0o666)
        os.set_blocking(fd, True)
        close = os.close
    try:
        token = _traced.create(os.path.abspath(output), fd,
                               opts.min_duration, opts.max_size)
    except OSError as e:
        _traced.warn(f"could not create a session: {e}; running untraced")
        return False
    finally:
        close(fd)
    _state.creator = True
    _export(token, opts)
    _name_process(root=True)
    _install(opts)
    return True


def stop(timeout: float = 120.0) -> Optional[Summary]:
    """End the session this process started; returns once the daemon has
    finalised the file, with its summary (None if there was no session)."""
    if not _state.creator:
        return None
    _uninstall()
    _state.creator = False
    _restore_env()
    try:
        raw = _traced.end(int(timeout * 1000))
    except OSError as e:
        _traced.warn(f"ending the session failed: {e}")
        return None
    notes = raw.pop("notes")
    _state.last_summary = Summary(**raw)
    if raw["cut"]:
        _traced.warn(f"{raw['path']}: {raw['cut']}")
    # The Python processes that never joined, one line each (as `traced
    # run` prints them): the trace does not have them.
    if notes and os.environ.get("TRACED_QUIET") != "1":
        try:
            sys.stderr.write("".join("traced: %s\n" % n for n in notes))
            sys.stderr.flush()
        except Exception:
            pass
    return _state.last_summary


class session:
    """Context manager (and decorator) tracing the enclosed block:

        with traced.session(output="trace.json") as s:
            work()
        print(s.summary)
    """

    def __init__(self, output: Optional[str] = None, *,
                 socket: Optional[str] = None, trace_c: Optional[bool] = None,
                 **options):
        # Invalid options fail here, where the session is written.
        _options.check(_options_of(trace_c, options))
        self.output = output
        self.socket = socket
        self.trace_c = trace_c
        self.options = options
        self.summary: Optional[Summary] = None
        self.active = False

    def __enter__(self) -> "session":
        self.active = start(self.output, socket=self.socket,
                            trace_c=self.trace_c, **self.options)
        return self

    def __exit__(self, *exc) -> None:
        if self.active:
            self.summary = stop()
            self.active = False

    def __call__(self, func):
        import functools

        # The hook records what this wrapper calls (the user's function)
        # but not the wrapper itself: it knows it by this name.
        @functools.wraps(func)
        def _traced_call_through(*args, **kwargs):
            with session(self.output, socket=self.socket,
                         trace_c=self.trace_c, **self.options):
                return func(*args, **kwargs)

        return _traced_call_through


# ---- custom events -------------------------------------------------------
# Each records into the calling thread's trace, and does nothing (cheaply)
# when the process is not recording.  Their own calls never appear in the
# trace: traced's code and what it calls is not recorded.


def instant(name: str, args: Optional[dict] = None) -> None:
    """An instant event `name` on this thread's timeline, with `args` (a
    dict: str, int, float and bool values are kept as they are, other
    values by repr())."""
    _traced.instant(name, args)


def counter(name: str, **values) -> None:
    """A sample of counter `name`: one series per keyword, e.g.
    ``traced.counter("queue", depth=3, bytes=1024)``; values are numbers."""
    _traced.counter(name, values)


class span:
    """A span `name` (a slice in the trace, with `args`) around a block or
    around each call of a function:

        with traced.span("load", {"file": path}):
            ...

        @traced.span("step")
        def step(): ...

    Spans nest with the calls around them; a span still open when the
    function that began it returns (a `yield` inside the block) ends there.
    A decorated generator or coroutine function spans only the call that
    creates the generator or coroutine."""

    __slots__ = ("name", "args")

    def __init__(self, name: str, args: Optional[dict] = None):
        if not isinstance(name, str):
            raise TypeError("traced.span: name must be a str, not %s" %
                            type(name).__name__)
        if args is not None and not isinstance(args, dict):
            raise TypeError("traced.span: args must be a dict or None, not %s"
                            % type(args).__name__)
        self.name = name
        self.args = args

    def __enter__(self) -> "span":
        _traced.span_begin(self.name, self.args)
        return self

    def __exit__(self, *exc) -> None:
        _traced.span_end(self.name)

    def __call__(self, func):
        import functools

        name, args = self.name, self.args
        begin, end = _traced.span_begin, _traced.span_end

        # Not recorded itself (its name says so to the hook); `func` is.
        @functools.wraps(func)
        def _traced_call_through_span(*a, **k):
            begin(name, args)
            try:
                return func(*a, **k)
            finally:
                end(name)

        return _traced_call_through_span


def set_thread_name(name: str) -> None:
    """Names the calling thread in the trace from now on (the thread's
    Python name is not changed; renaming a threading.Thread shows in the
    trace by itself)."""
    _traced.set_thread_name(name)


# ---- print() and the garbage collector as event sources ------------------

# The hooks below may run while the interpreter shuts down (a __del__ that
# prints, a last collection), when module globals can already be gone:
# everything they use is bound when they are made.


class _PrintTee:
    """Stands for print()'s file: everything goes to the file as before;
    the text is also kept (bounded) for the trace."""

    __slots__ = ("file", "parts", "size")
    KEEP = 4096  # characters of one print() kept for the trace

    def __init__(self, file):
        self.file = file
        self.parts = []
        self.size = 0

    def write(self, s):
        n = self.file.write(s)
        if self.size < self.KEEP and isinstance(s, str):
            self.parts.append(s)
            self.size += len(s)
        return n

    def flush(self):
        return self.file.flush()

    def __getattr__(self, attr):
        return getattr(self.file, attr)


def _make_print(real, sys=sys, tee_type=_PrintTee, instant=_traced.instant):
    def print_tee(kwargs):
        file = kwargs.get("file")
        if file is None:
            file = sys.stdout
            if file is None:  # print() then prints nothing
                return None
        tee = tee_type(file)
        kwargs["file"] = tee
        return tee

    def print_done(tee):
        instant("print", {"string": "".join(tee.parts)})

    # Not recorded itself; the builtins.print call in it is, where the
    # program called print().
    def _traced_call_through_print(*args, **kwargs):
        tee = print_tee(kwargs)
        real(*args, **kwargs)
        if tee is not None:
            print_done(tee)

    _traced_call_through_print.__wrapped__ = real
    _traced_call_through_print.__doc__ = real.__doc__
    return _traced_call_through_print


def _gc_event(phase, info, begin=_traced.span_begin, end=_traced.span_end):
    if phase == "start":
        begin("gc", {"generation": info["generation"]})
    else:
        end("gc", {"collected": info["collected"],
                   "uncollectable": info["uncollectable"]})


def _event_sources(log_print: bool, log_gc: bool) -> None:
    """Installs (or removes) the print() and garbage-collector hooks."""
    import builtins
    import gc

    ours = getattr(builtins.print, "__name__", "") == \
        "_traced_call_through_print"
    if log_print and not ours:
        builtins.print = _make_print(builtins.print)
    elif not log_print and ours:
        builtins.print = builtins.print.__wrapped__
    if log_gc and _gc_event not in gc.callbacks:
        gc.callbacks.append(_gc_event)
    elif not log_gc and _gc_event in gc.callbacks:
        gc.callbacks.remove(_gc_event)


def _attach_from_env() -> None:
    """Called at start-up (the .pth hook) when the environment names a
    session: join it, or create one writing $TRACED_OUTPUT."""
    token = os.environ.get(ENV_SESSION)
    output = os.environ.get(ENV_OUTPUT)
    socket = os.environ.get(ENV_SOCKET) or None
    if token:
        if not _connect(socket, autostart=False):
            return
        try:
            _traced.join(token)
        except OSError as e:
            _traced.warn(f"could not join session: {e.strerror}; running "
                         "untraced")
            return
        # `traced run` exports the pid of the process it runs; on Windows,
        # where that is known only once the process runs, its own.
        root = os.getppid() if _WINDOWS else os.getpid()
        _name_process(os.environ.get(ENV_ROOT_PID) == str(root))
        _install(_options.from_env())
    elif output:
        import atexit

        atexit.register(stop)  # a no-op unless start() below succeeds
        try:
            start(output, socket=socket)
        except OSError as e:
            _traced.warn(f"cannot write {output}: {e.strerror}; running "
                         "untraced")


def _name_process(root: bool) -> None:
    """Names this process in the trace: the program's main process is
    "MainProcess"; other processes are named by their script until
    multiprocessing names them (ForkPoolWorker-3, LokyProcess-2, ...: the
    hook notices that by itself)."""
    name = _script_name()
    # What a fork()ed child is called until it names itself: a bare
    # os.fork() child runs the same script; the forkserver's children are
    # workers that multiprocessing names when they start.
    _traced.set_child_name("multiprocessing worker"
                           if name.startswith("multiprocessing.") else name)
    _traced.process_info("MainProcess" if root else name)


def _short(text: str) -> str:
    """A label's words: at most 40 characters, ending in an ellipsis when
    cut."""
    text = " ".join(text.split())
    return text if len(text) <= 40 else text[:39] + "\u2026"


def _interpreter_mode(orig):
    """("-c", code, rest) or ("-m", module, args) from the interpreter's
    own command line (sys.orig_argv), its options skipped wherever they
    stand and however they are grouped (-I -c, -Ic, -mjson.tool, -X dev,
    -W error); None when it runs a script or reads stdin."""
    i = 1
    while i < len(orig):
        word = orig[i]
        if word == "--" or not word.startswith("-") or word == "-":
            return None
        if word.startswith("--"):  # --check-hash-based-pycs MODE, ...
            i += 1 if word != "--check-hash-based-pycs" else 2
            continue
        for k, letter in enumerate(word[1:], 1):
            if letter in "cm":
                arg = word[k + 1:]
                rest = orig[i + 1:]
                if not arg and rest:
                    arg, rest = rest[0], rest[1:]
                return "-" + letter, arg, rest
            if letter in "XWQ":
                if k + 1 == len(word):
                    i += 1  # its value is the next word
                break
        i += 1
    return None


def _script_name() -> str:
    """The script's file name; for `python -m mod args`, the module and its
    arguments' first words; for `python -c "from mod import ..."` (how
    multiprocessing and loky start their helpers), that module; for other
    `python -c` code, "python -c" and its first words.  The interpreter's
    options (-I, -E, -S, -X ..., grouped or not) do not change it."""
    argv = getattr(sys, "argv", None) or []
    orig = getattr(sys, "orig_argv", None) or []
    first = argv[0] if argv else ""
    if first in ("", "-c", "-m"):
        mode = _interpreter_mode(orig)
        if mode is None:
            return "python " + (first or "-")
        flag, arg, rest = mode
        if flag == "-m" and arg:
            # loky starts its workers as `python -m ...popen_loky_posix
            # --process-name LokyProcess-N`.
            if "--process-name" in rest[:-1]:
                return rest[rest.index("--process-name") + 1]
            return _short(" ".join([arg] + rest))
        words = arg.split()
        if len(words) >= 3 and words[0] == "from" and words[2] == "import":
            return words[1]
        if flag == "-c" and words:
            # `python -c` and the code's first words, so that one -c child
            # is told from another.
            return "python -c " + _short(arg)
        return "python " + flag
    return os.path.basename(first)
