"""The whole chain on third-party models, as a new user runs it (`python -m bench.bench_zoo DIR`).

For every ONNX file in DIR (or $EDGEPART_ZOO): `edgepart profile --check-segments 5`, `plan` on
the demo deployment (a Raspberry Pi 4 predicted, this host measured, Ethernet), `compile`,
`verify` and `run --requests 5`, each a CLI call timed; the profile's sum and segment errors and
whether verify passed. The models are not shipped: export torchvision's (in a venv of its own,
`torch.onnx.export(model, x, path, dynamo=False, opset_version=17)`, weights=None, seed 0).
Writes bench/results/zoo.json; prints the table.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results" / "zoo.json"
EDGEPART = [sys.executable, "-m", "edgepart"]


STEPS = ("profile", "plan", "compile", "verify", "run")


def main(folder: str | None = None) -> None:
    folder = folder or os.environ.get("EDGEPART_ZOO")
    if not folder:
        print("bench_zoo: no models (give a folder of ONNX files or set EDGEPART_ZOO)", file=sys.stderr)
        return
    rows = [_chain(path) for path in sorted(Path(folder).glob("*.onnx"))]
    RESULTS.write_text(json.dumps({"rows": rows}, indent=1) + "\n")
    print(f"{'model':22s} {'MB':>5s} {'sum err':>8s} {'seg med':>8s} {'verify':>7s}  seconds: "
          "profile plan compile verify run")
    for r in rows:
        seconds = " ".join(f"{r['seconds'].get(step, float('nan')):6.0f}" for step in STEPS)
        print(f"{r['model']:22s} {r['megabytes']:5.0f} {r.get('sum_error', float('nan')) * 100:+7.1f}% "
              f"{r.get('segment_median_abs_error', float('nan')) * 100:7.1f}% {r['verify']:>7s}  {seconds}"
              + (f"  failed: {r['failed']}" if r.get("failed") else ""))
    print(f"-> {RESULTS.relative_to(ROOT)}")


def _chain(path: Path) -> dict:
    row = {"model": path.stem, "megabytes": path.stat().st_size / 1e6, "seconds": {}, "verify": "-"}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        (work / "profiles").mkdir()
        commands = {
            "profile": ["profile", str(path), "--check-segments", "5", "-o", str(work / "profiles" / "local.json")],
            "plan": ["plan", str(path), "--deploy", str(ROOT / "examples" / "demo.toml"), "--profiles",
                     str(work / "profiles"), "-o", str(work / "plan.json")],
            "compile": ["compile", str(path), "--plan", str(work / "plan.json"), "-o", str(work / "build")],
            "verify": ["verify", str(work / "build")],
            "run": ["run", str(work / "build"), "--requests", "5"],
        }
        for step in STEPS:
            started = time.perf_counter()
            done = subprocess.run(EDGEPART + commands[step], capture_output=True, text=True, cwd=ROOT)
            row["seconds"][step] = time.perf_counter() - started
            if done.returncode:
                row["failed"] = f"{step} (exit {done.returncode}): {done.stderr.strip().splitlines()[-1:]}"
                break
            if step == "profile":
                provenance = json.loads((work / "profiles" / "local.json").read_text())["provenance"]
                row.update(sum_error=provenance["sum_error"], method=provenance["mapping"]["method"],
                           segment_median_abs_error=provenance["segment_median_abs_error"])
            if step == "verify":
                row["verify"] = "passed"
    return row


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else None)
