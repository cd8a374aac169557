"""ONNX node tests through the whole chain, per backend mode (`python -m bench.bench_conformance`).

Every applicable node test (bench/conformance.py: default domain, float32/int64/bool tensors, at
least one input), or every Nth with --every N, goes through inspect -> plan -> compile -> verify
on a one-tier x86-64 deployment, with its own inputs, in each mode:
  tvm        the tier allows TVM only;
  both       it allows TVM and onnxruntime and the plan chooses (the priced choice);
  tvm-first  it allows both and the plan is edited to choose TVM: every refusal of TVM shows as a
             fallback to onnxruntime (or as a failure, where the check could not see it).
onnxruntime on the case's model as it is is the baseline ("ort"). A case passes a mode when verify
passes and the chain's outputs match the case's expected outputs; a crash is an error that is not
one of edgepart's own. Writes bench/results/conformance.{json,md}; prints the summary.

    python -m bench.bench_conformance --every 4 --jobs 2      # the issue's selection, ~15 min
    python -m bench.bench_conformance --modes both,tvm-first   # all applicable cases
"""

from __future__ import annotations

import argparse
import collections
import json
import subprocess
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from bench import conformance

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
MODES = ("tvm", "both", "tvm-first")
_CASES: dict = {}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--every", type=int, default=1, help="every Nth applicable case (1: all)")
    parser.add_argument("--modes", default=",".join(MODES), help=f"comma-separated, of {', '.join(MODES)}")
    parser.add_argument("--jobs", type=int, default=1, help="cases run at once (each compile is one process)")
    parser.add_argument("--name", default="conformance", help="results file stem")
    parser.add_argument("--cases", default="", help="comma-separated case names (default: every Nth applicable)")
    args = parser.parse_args()
    modes = [m for m in args.modes.split(",") if m]
    unknown = set(modes) - set(MODES)
    if unknown:
        parser.error(f"unknown modes {sorted(unknown)}")
    started = time.perf_counter()
    names = [c.name for c in conformance.applicable_cases()[::args.every]]
    if args.cases:
        names = [n for n in names if n in args.cases.split(",")]
    with ProcessPoolExecutor(args.jobs, initializer=_load_cases) as pool:
        rows = list(pool.map(_row, names, [modes] * len(names)))
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout
    doc = {"every": args.every, "modes": modes, "cases": len(rows), "seconds": time.perf_counter() - started,
           "commit": commit.strip() or None,
           "summary": summary(rows, modes), "operators": per_operator(rows, modes), "rows": rows}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{args.name}.json").write_text(json.dumps(doc, indent=1) + "\n")
    (RESULTS / f"{args.name}.md").write_text(table(doc))
    print(table(doc))


def _load_cases() -> None:
    _CASES.update({c.name: c for c in conformance.applicable_cases()})


def _row(name: str, modes: list[str]) -> dict:
    case = _CASES[name]
    row = {"case": name, "operator": conformance.operator(case), "ort": conformance.onnxruntime_passes(case)}
    for mode in modes:
        started = time.perf_counter()
        outcome = conformance.run_cases([case], mode)[0]
        row[mode] = {"passed": outcome.passed, "stage": outcome.stage, "error": outcome.error,
                     "crashed": outcome.crashed, "shipped": outcome.shipped, "message": outcome.message,
                     "seconds": round(time.perf_counter() - started, 2)}
    return row


def summary(rows: list[dict], modes: list[str]) -> dict:
    ort = [r for r in rows if r["ort"]]
    out = {"applicable": len(rows), "onnxruntime_passes": len(ort)}
    for mode in modes:
        out[mode] = {
            "passed": sum(r[mode]["passed"] for r in rows),
            "passed_where_onnxruntime_passes": sum(r[mode]["passed"] for r in ort),
            "crashes": sum(r[mode]["crashed"] for r in rows),
            "verify_crashes": sum(r[mode]["crashed"] and r[mode]["stage"] == "verify" for r in rows),
            "shipped": dict(collections.Counter(r[mode]["shipped"] for r in rows if r[mode]["shipped"])),
            "stopped_at": dict(collections.Counter(r[mode]["stage"] for r in rows if not r[mode]["passed"])),
        }
    return out


def per_operator(rows: list[dict], modes: list[str]) -> dict:
    ops: dict[str, dict] = {}
    for r in rows:
        entry = ops.setdefault(r["operator"], {"cases": 0, "ort": 0, **{m: 0 for m in modes}})
        entry["cases"] += 1
        entry["ort"] += r["ort"]
        for mode in modes:
            entry[mode] += r[mode]["passed"]
    return dict(sorted(ops.items()))


def table(doc: dict) -> str:
    modes, s = doc["modes"], doc["summary"]
    lines = [f"# ONNX node tests through the chain ({doc['cases']} cases, every {doc['every']}; "
             f"{doc['seconds'] / 60:.0f} min; commit {doc.get('commit') or '?'})", "",
             f"onnxruntime on the models as they are passes {s['onnxruntime_passes']} of {s['applicable']}.", "",
             "| mode | passed | of those onnxruntime passes | crashes | shipped | stopped at |",
             "|---|---|---|---|---|---|"]
    for mode in modes:
        m = s[mode]
        lines.append(f"| {mode} | {m['passed']} | {m['passed_where_onnxruntime_passes']} of "
                     f"{s['onnxruntime_passes']} | {m['crashes']} | {_counts(m['shipped'])} | "
                     f"{_counts(m['stopped_at'])} |")
    lines += ["", "Per operator (cases passed):", "", "| operator | cases | ort | " + " | ".join(modes) + " |",
              "|---|---|---|" + "---|" * len(modes)]
    for op, e in doc["operators"].items():
        lines.append(f"| {op} | {e['cases']} | {e['ort']} | " + " | ".join(str(e[m]) for m in modes) + " |")
    failing = [r for r in doc["rows"] if r["ort"] and not all(r[m]["passed"] for m in modes if m != "tvm")]
    if failing:
        lines += ["", "Cases onnxruntime passes that fail a mode allowing both backends:", ""]
        for r in failing:
            for m in modes:
                if m != "tvm" and not r[m]["passed"]:
                    lines.append(f"- {r['case']} ({m}): {r[m]['stage']}: {r[m]['message']}")
    return "\n".join(lines) + "\n"


def _counts(counter: dict) -> str:
    return ", ".join(f"{k} {v}" for k, v in sorted(counter.items())) or "-"


if __name__ == "__main__":
    main()
