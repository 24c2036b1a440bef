"""Imported by traced-attach.pth at interpreter start-up when the
environment names a traced session; attaches before user code runs."""


def _run() -> None:
    try:
        from traced import _attach_from_env

        _attach_from_env()
    except Exception as e:  # never let tracing break start-up
        import sys

        sys.stderr.write(f"traced: warning: could not attach: {e!r}\n")


_run()
