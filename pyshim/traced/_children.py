"""Announces the processes a traced process starts (PROCESS_INFO `child`),
so that the daemon can name the Python interpreters among them that never
joined the session: an interpreter without the traced package, or one run
with -S, is otherwise just missing from the trace (docs/sessions.md,
"Python processes that never joined").

Wrapped: subprocess.Popen, os.posix_spawn, os.posix_spawnp, os.execv and
os.execve (os.execl ... os.execvpe and os.spawn* go through the last two).
Each wrapper calls the original with the same arguments and returns its
result, or lets its exception through, unchanged; it adds one message to
the daemon per process started.  Their names start with
`_traced_call_through`, which tells the profile hook to record what they
call (the original) as the program's own call and nothing of themselves.
subprocess is wrapped when it is imported: importing it here would cost
every traced process milliseconds at start-up."""

import os
import sys

from . import _traced

# At most this many arguments are announced (the protocol's bound).
_ARGC_MAX = 64

_installed = False


def install():
    """Wraps the functions that start processes (once per process)."""
    global _installed
    if _installed or os.name != "posix":
        return
    _installed = True
    _wrap_os()
    subprocess = sys.modules.get("subprocess")
    if subprocess is not None:
        _wrap_popen(subprocess)
    else:
        sys.meta_path.insert(0, _SubprocessFinder())


# ---- announcing ------------------------------------------------------------


def _announce(pid, path, argv, failed=False):
    """Tells the daemon; never raises (a program's start of a process must
    not fail because of tracing)."""
    try:
        if isinstance(argv, (str, bytes, os.PathLike)):
            argv = [argv]
        _traced.announce_child(pid, os.fsencode(path),
                               [os.fsencode(a) for a in list(argv)[:_ARGC_MAX]],
                               failed)
    except Exception:
        pass


def _may_join(env):
    """Whether a child started with `env` (None: this process's own) can
    join the session: one whose environment lost TRACED_SESSION (env=
    given without it) cannot, whatever its interpreter has, and is not
    announced (its line would wrongly blame the interpreter)."""
    if env is None:
        return True
    try:
        return "TRACED_SESSION" in env or b"TRACED_SESSION" in env
    except Exception:
        return True


def _resolve(path, env):
    """`path` as the exec*p functions find it on env's PATH (or ours), or
    as it is when it names a directory or is not found."""
    try:
        path = os.fsdecode(path)
        if os.sep in path:
            return path
        for d in os.get_exec_path(env):
            candidate = os.path.join(d, path)
            if os.access(candidate, os.X_OK) and os.path.isfile(candidate):
                return candidate
    except Exception:
        pass
    return path


# ---- subprocess ------------------------------------------------------------


def _popen_started(popen, args, kwargs):
    """After a successful Popen(*args, **kwargs): announce its child with
    the program and arguments Popen ran (its _execute_child's rules)."""
    pid = getattr(popen, "pid", None)
    if not pid:
        return
    try:
        # Popen(args, bufsize, executable, stdin, stdout, stderr,
        #       preexec_fn, close_fds, shell, cwd, env, ...)
        def arg(name, index, default=None):
            if name in kwargs:
                return kwargs[name]
            return args[index] if len(args) > index else default

        given = popen.args
        if isinstance(given, (str, bytes, os.PathLike)):
            argv = [given]
        else:
            argv = list(given)
        executable = arg("executable", 2)
        if arg("shell", 8, False):
            shell = "/system/bin/sh" if hasattr(sys, "getandroidapilevel") \
                else "/bin/sh"
            argv = [shell, "-c"] + argv
            if executable:
                argv[0] = executable
        program = executable if executable is not None else argv[0]
        env = arg("env", 10)
        if _may_join(env):
            _announce(pid, _resolve(program, env), argv)
    except Exception:
        pass


def _wrap_popen(subprocess):
    cls = getattr(subprocess, "Popen", None)
    real = getattr(cls, "__init__", None)
    if real is None or getattr(real, "_traced_real", None) is not None:
        return
    started = _popen_started

    def _traced_call_through_popen(self, *args, **kwargs):
        real(self, *args, **kwargs)
        started(self, args, kwargs)

    _like(_traced_call_through_popen, real)
    cls.__init__ = _traced_call_through_popen


class _SubprocessFinder:
    """First on sys.meta_path until subprocess is imported: then finds it
    with the other finders and wraps Popen once the module has run."""

    def find_spec(self, name, path=None, target=None):
        if name != "subprocess":
            return None
        try:
            sys.meta_path.remove(self)
        except ValueError:
            pass
        spec = None
        for finder in sys.meta_path:
            find = getattr(finder, "find_spec", None)
            if find is not None:
                spec = find(name, path, target)
                if spec is not None:
                    break
        loader = getattr(spec, "loader", None)
        real_exec = getattr(loader, "exec_module", None)
        # Only a loader object of this module alone (a source or bytecode
        # file's) gets the wrapper; a loader class (frozen, built-in) is
        # shared, and its module is wrapped by install() when it can be.
        if real_exec is None or isinstance(loader, type):
            return spec

        def exec_module(module):
            real_exec(module)
            _wrap_popen(module)

        try:
            loader.exec_module = exec_module
        except Exception:
            pass
        return spec


# ---- os --------------------------------------------------------------------


def _call_args(args, kwargs, names):
    """The values of `names` (positional first, then keywords; None when
    not given) of a call made with args and kwargs."""
    return [args[i] if len(args) > i else kwargs.get(n)
            for i, n in enumerate(names)]


def _exec_before(args, kwargs, with_env):
    """Before os.execv/execve(*args, **kwargs): announces the exec, whose
    new program keeps this pid (which joined already: it must join again).
    Returns what _exec_failed needs, or None."""
    try:
        path, argv, env = _call_args(args, kwargs, ("path", "argv", "env"))
        if path is None or isinstance(path, int) or argv is None:
            return None  # fexecve or a call the original will refuse
        if with_env and not _may_join(env):
            return None
        # execv/execve do not search PATH: the path is what runs.
        target = (os.getpid(), path, argv)
        _announce(*target)
        return target
    except Exception:
        return None


def _exec_failed(target):
    """The exec announced by _exec_before did not happen."""
    if target is not None:
        _announce(*target, failed=True)


def _spawned(pid, args, kwargs, search):
    """After os.posix_spawn(p)(*args, **kwargs) returned pid."""
    try:
        path, argv, env = _call_args(args, kwargs, ("path", "argv", "env"))
        if _may_join(env):
            _announce(pid, _resolve(path, env) if search else path, argv)
    except Exception:
        pass


def _wrap_os():
    before, failed, spawned = _exec_before, _exec_failed, _spawned

    def wrap_exec(real, with_env):
        def _traced_call_through_exec(*args, **kwargs):
            target = before(args, kwargs, with_env)
            try:
                return real(*args, **kwargs)
            except BaseException:
                failed(target)
                raise

        return _like(_traced_call_through_exec, real)

    def wrap_spawn(real, search):
        def _traced_call_through_spawn(*args, **kwargs):
            pid = real(*args, **kwargs)
            spawned(pid, args, kwargs, search)
            return pid

        return _like(_traced_call_through_spawn, real)

    for name, with_env in (("execv", False), ("execve", True)):
        real = getattr(os, name, None)
        if real is not None and getattr(real, "_traced_real", None) is None:
            setattr(os, name, wrap_exec(real, with_env))
    for name, search in (("posix_spawn", False), ("posix_spawnp", True)):
        real = getattr(os, name, None)
        if real is not None and getattr(real, "_traced_real", None) is None:
            setattr(os, name, wrap_spawn(real, search))


def _like(wrapper, real):
    """Gives the wrapper the original's name, documentation and signature
    (inspect follows __wrapped__); _traced_real marks it as ours."""
    for attr in ("__module__", "__name__", "__qualname__", "__doc__"):
        try:
            setattr(wrapper, attr, getattr(real, attr))
        except (AttributeError, TypeError):
            pass
    wrapper.__wrapped__ = real
    wrapper._traced_real = real
    return wrapper
