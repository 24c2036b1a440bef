"""traced's one set of recording options (docs/options.md).

Each option is a TRACED_* environment variable (inherited by every child
process), a `traced run` flag and a keyword argument of traced.session()
and traced.start(), all with the same meaning.  The names, bounds and the
parser of values are libtraced's (libclient/src/options.c), so the three
ways in cannot disagree.
"""
import os

from . import _traced

# Kinds, as in options.h.
PATHS, COUNT, FLAG, DURATION, CHOICE, SIZE = 0, 1, 2, 3, 4, 5

# (env, flag, kwarg, kind, lo, hi, default, metavar) for every option; a
# choice's metavar is its words joined by '|', its value one of the words.
TABLE = tuple(_traced.options())
_BY_KWARG = {row[2]: row for row in TABLE}
KWARGS = tuple(row[2] for row in TABLE)


class Options:
    """Effective values: include_files and exclude_files are tuples of
    absolute path prefixes, max_depth is 0 for unlimited, min_duration is
    in nanoseconds, max_size in bytes (0: none), the others are bools and
    the repr limit in bytes."""

    __slots__ = KWARGS

    def __init__(self):
        for env, flag, kwarg, kind, lo, hi, default, metavar in TABLE:
            if kind == PATHS:
                value = ()
            elif kind == FLAG:
                value = bool(default)
            elif kind == CHOICE:
                value = metavar.split("|")[default]
            else:
                value = default
            setattr(self, kwarg, value)

    def __repr__(self):
        return "Options(%s)" % ", ".join(
            "%s=%r" % (k, getattr(self, k)) for k in KWARGS)


def _paths(text):
    return tuple(os.path.abspath(p) for p in text.split(os.pathsep) if p)


def _warn(env, text, why):
    os.write(2, ("traced: warning: %s=%s: %s\n" % (env, text, why))
             .encode(errors="replace"))


def check_tuning(environ):
    """The tuning variables libtraced and the hook read themselves: an
    invalid value gets one warning line saying what is used instead, and
    the environment is set to that (or the variable removed), so that
    child processes agree and do not warn again."""
    for env, lo, hi, default, pow2 in (
            ("TRACED_RING_SLOTS", _traced.RING_MIN_SLOTS,
             _traced.RING_MAX_SLOTS, _traced.RING_DEFAULT_SLOTS, True),
            ("TRACED_ARENA_SIZE", _traced.ARENA_MIN_SIZE,
             _traced.ARENA_MAX_SIZE, _traced.ARENA_DEFAULT_SIZE, False)):
        text = environ.get(env)
        if not text:
            continue
        if not text.isdigit():
            _warn(env, text, "not a number; using the default %d" % default)
            environ.pop(env, None)
            continue
        value = min(max(int(text), lo), hi)
        if pow2 and value & (value - 1):
            _warn(env, text, "not a power of two; using the default %d"
                  % default)
            environ.pop(env, None)
        elif value != int(text):
            _warn(env, text, "outside %d..%d; using %d" % (lo, hi, value))
            environ[env] = str(value)
    for env, allowed, default in (("TRACED_CLOCK", ("auto", "monotonic"),
                                   "auto"),
                                  ("TRACED_EVAL_HOOK", ("0", "1"), "1")):
        text = environ.get(env)
        if text and text not in allowed:
            _warn(env, text, "not %s; using %s" % (" or ".join(allowed),
                                                   default))
            environ.pop(env, None)


def from_env(environ=None):
    """The options the environment sets.  A variable with an invalid value
    gets one warning line on stderr and is ignored; it is also removed from
    os.environ, so that child processes inherit neither it nor a reason to
    warn again."""
    environ = os.environ if environ is None else environ
    check_tuning(environ)
    opts = Options()
    for env, flag, kwarg, kind, lo, hi, default, metavar in TABLE:
        text = environ.get(env)
        if not text:
            continue
        if kind == PATHS:
            setattr(opts, kwarg, _paths(text))
            continue
        try:
            value = _traced.parse_option(env, text)
        except ValueError as e:
            os.write(2, ("traced: warning: ignoring %s=%s: %s\n" %
                         (env, text, e)).encode(errors="replace"))
            environ.pop(env, None)
            continue
        if kind == FLAG:
            value = bool(value)
        elif kind == CHOICE:
            value = metavar.split("|")[value]
        setattr(opts, kwarg, value)
    return opts


def _parse_text(env, kwarg, text):
    """A keyword argument given as text, parsed as its variable is."""
    try:
        return _traced.parse_option(env, text)
    except ValueError as e:
        raise ValueError("traced: %s=%r: %s" % (kwarg, text, e)) from None


def _convert(kwarg, value):
    """A keyword argument's value as an effective value; ValueError (with
    the option's name) when it is not one."""
    env, flag, _, kind, lo, hi, default, metavar = _BY_KWARG[kwarg]
    if kind == PATHS:
        if isinstance(value, (str, os.PathLike)):
            value = [value]
        try:
            items = [os.fspath(v) for v in value]
        except TypeError:
            raise ValueError("traced: %s must be a path or a list of paths, "
                             "not %r" % (kwarg, value)) from None
        if not all(isinstance(v, str) and v for v in items):
            raise ValueError("traced: %s must hold non-empty str paths: %r"
                             % (kwarg, value))
        return tuple(os.path.abspath(v) for v in items)
    if kind == FLAG:
        if value in (True, False, 0, 1):
            return bool(value)
        raise ValueError("traced: %s must be True or False, not %r" %
                         (kwarg, value))
    if kind == CHOICE:
        words = metavar.split("|")
        if value not in words:
            raise ValueError("traced: %s must be one of %s, not %r" %
                             (kwarg, ", ".join(repr(w) for w in words),
                              value))
        return value
    if kind == DURATION:
        # A number is in microseconds (VizTracer's unit); a str is parsed
        # like the environment variable ("2ms").
        if isinstance(value, bool):
            raise ValueError("traced: %s must be a duration, not %r" %
                             (kwarg, value))
        if isinstance(value, (int, float)):
            if not value >= 0 or value * 1000 > hi:
                raise ValueError("traced: %s must be between 0 and %d us, "
                                 "not %r" % (kwarg, hi // 1000, value))
            return int(value * 1000)
        if isinstance(value, str):
            return _parse_text(env, kwarg, value)
        raise ValueError("traced: %s must be a duration such as '2ms' or a "
                         "number of microseconds, not %r" % (kwarg, value))
    if kind == SIZE:
        # A number is in bytes; a str is parsed like the environment
        # variable ("100M").
        if isinstance(value, int) and not isinstance(value, bool):
            value = str(value)
        if isinstance(value, str):
            return _parse_text(env, kwarg, value)
        raise ValueError("traced: %s must be a size such as '100M' or a "
                         "number of bytes, not %r" % (kwarg, value))
    # COUNT
    if isinstance(value, bool) or not isinstance(value, int) or \
            not lo <= value <= hi:
        raise ValueError("traced: %s must be an integer between %d and %d, "
                         "not %r" % (kwarg, lo, hi, value))
    return value


def check(kwargs):
    """Raises TypeError for an unknown option and ValueError for an invalid
    value among keyword arguments (None values mean "not given")."""
    for kwarg, value in kwargs.items():
        if kwarg not in _BY_KWARG:
            raise TypeError("traced: unknown option %r (options: %s)" %
                            (kwarg, ", ".join(KWARGS)))
        if value is not None:
            _convert(kwarg, value)


def resolve(kwargs, environ=None):
    """The options of a new session: the environment's, with each keyword
    argument that is not None taking precedence."""
    check(kwargs)
    opts = from_env(environ)
    for kwarg, value in kwargs.items():
        if value is not None:
            setattr(opts, kwarg, _convert(kwarg, value))
    return opts


def to_env(opts):
    """{variable: text, or None to remove it} describing `opts`, for the
    environment of child processes."""
    out = {}
    for env, flag, kwarg, kind, lo, hi, default, metavar in TABLE:
        value = getattr(opts, kwarg)
        if kind == PATHS:
            out[env] = os.pathsep.join(value) if value else None
        elif kind == FLAG:
            out[env] = "1" if value else None
        elif kind == DURATION:
            out[env] = "%dns" % value if value else None
        elif kind == CHOICE:
            out[env] = value if value != metavar.split("|")[default] else None
        else:
            out[env] = str(value) if value != default else None
    return out
