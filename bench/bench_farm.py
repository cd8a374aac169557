"""Tuning on a farm (`python -m bench.bench_farm [--model residual_cnn] [--trials 32]`), issue #22.

A TVM RPC tracker and runtime-only RPC servers on this host (each a process of its own, as boards
would be), then the same `compile --tune TRIALS` of one bundled model on one x86-64 tier three ways,
each with an empty tuning database: candidates measured on this host (MetaSchedule's local runner),
through the tracker with 1 server, and with 2 servers. Wall time of each compile (the ratio 1 server
/ 2 servers), and the tuned artifact's speed: each build's tier timed by compile against its price
(the same clock, median of its runs). On a 2-core host the boards share the cores with the tuner,
so the 2-server speed-up is a floor of what separate boards give.
Writes bench/results/farm_tuning.json and .md; prints the table.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from edgepart import api
from edgepart.machine import host_description

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
KEY = "bench-farm"
DEPLOY = '[deploy]\noutput_tier = "device"\n[[tier]]\nname = "device"\ndevice = "local"\ntarget = "x86-64"\n' \
         'backends = ["tvm"]\n'


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(*arguments: str, runtime_only: bool = False) -> subprocess.Popen:
    env = {**os.environ, **({"TVM_USE_RUNTIME_LIB": "1"} if runtime_only else {})}
    return subprocess.Popen([sys.executable, "-m", *arguments], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)


def listening(port: int) -> None:
    deadline = time.monotonic() + 60
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise RuntimeError(f"nothing listens on {port}") from None
            time.sleep(0.2)


def farm(servers: int) -> tuple[str, list[subprocess.Popen]]:
    port = free_port()
    processes = [start("tvm.exec.rpc_tracker", "--host", "127.0.0.1", "--port", str(port), "--port-end",
                       str(port + 1))]
    listening(port)
    for _ in range(servers):
        board = free_port()
        processes.append(start("tvm.exec.rpc_server", "--host", "127.0.0.1", "--port", str(board), "--port-end",
                               str(board + 1), "--tracker", f"127.0.0.1:{port}", "--key", KEY, runtime_only=True))
        listening(board)
    time.sleep(2)  # the servers register with the tracker
    return f"127.0.0.1:{port}", processes


def tuned(model: str, plan: Path, out: Path, trials: int, tracker: str | None) -> dict:
    started = time.perf_counter()
    built = api.compile(model, plan, out, tune=trials, tuning_db=out.parent / f"{out.name}-db",
                        tracker=tracker, key=KEY if tracker else None)
    seconds = time.perf_counter() - started
    tier = built.doc["tiers"][0]
    return {"seconds": seconds, "tuning": tier["build"].get("tuning"), "artifact_s": tier["timing"]["measured_s"],
            "priced_s": tier["timing"]["priced_s"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="residual_cnn")
    parser.add_argument("--trials", type=int, default=32)
    args = parser.parse_args(sys.argv[1:] if __name__ == "__main__" else [])
    model = str(ROOT / "models" / f"{args.model}.onnx")
    rows = {}
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "deploy.toml").write_text(DEPLOY)
        plan = Path(tmp) / "plan.json"
        api.plan(model, Path(tmp) / "deploy.toml", output=plan)
        rows["this host"] = tuned(model, plan, Path(tmp) / "local", args.trials, None)
        for servers in (1, 2):
            tracker, processes = farm(servers)
            try:
                rows[f"{servers} server{'s' if servers > 1 else ''}"] = tuned(model, plan, Path(tmp) / f"farm{servers}",
                                                                              args.trials, tracker)
            finally:
                for process in processes:
                    os.killpg(process.pid, signal.SIGKILL)
                    process.wait()
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                            text=True).stdout.strip() or None
    doc = {"host": host_description(), "commit": commit, "model": args.model, "trials_per_kernel": args.trials,
           "rows": rows, "one_over_two_servers": rows["1 server"]["seconds"] / rows["2 servers"]["seconds"],
           "artifact_farm_over_local": rows["2 servers"]["artifact_s"] / rows["this host"]["artifact_s"]}
    lines = ["| tuned with | compile (tuning) s | kernels tuned | artifact ms | priced ms |", "|---|---|---|---|---|"]
    for name, row in rows.items():
        lines.append(f"| {name} | {row['seconds']:.1f} | {(row['tuning'] or {}).get('tuned_now', 0)} | "
                     f"{row['artifact_s'] * 1e3:.3f} | {row['priced_s'] * 1e3:.3f} |")
    lines += ["", f"1 server / 2 servers wall time: {doc['one_over_two_servers']:.2f}x; artifact tuned on the farm / "
                  f"tuned here: {doc['artifact_farm_over_local']:.2f}x"]
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "farm_tuning.json").write_text(json.dumps(doc, indent=1) + "\n")
    (RESULTS / "farm_tuning.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
