"""Tuning on a farm (`python -m bench.bench_farm [--model residual_cnn] [--trials 32] [--boards KIND]`), #22.

A TVM RPC tracker and runtime-only RPC servers on this host (each a process of its own, as boards
would be), then the same `compile --tune TRIALS` of one bundled model on one tier, each with an
empty tuning database, with its candidates measured 1 and 2 boards at once (the ratio 1 board / 2
boards of the compile's wall time).
- `--boards loopback` (default): x86-64 servers; the tier (target x86-64) is also tuned with
  MetaSchedule's local runner, and each build's artifact timed by compile against its price (same
  clock, median of its runs): the farm-tuned artifact's speed against the locally tuned one's.
  On a 2-core host the boards share the cores with the tuner and are faster than it: measuring
  overlaps the search and a second board has nothing to take over.
- `--board-cpu F`: each board held to F of one core of this host (a cgroup v1 CPU quota, 10 ms
  period; root), as boards slower than the tuner's host that do not take its cores: a real farm's
  shape (a Cortex-A72 core is several times slower than a server core). Recorded: F = 0.25 and 0.1.
- `--boards aarch64`: emulated AArch64 boards (bench.emulated_board: TVM's aarch64 runtime under
  qemu-user, one thread each), the tier's target rpi4: candidates cross-linked here and measured
  there, boards slower than the tuner as real ones are. Emulated artifact timings mean nothing.
Writes bench/results/farm_tuning[_aarch64].json and .md; prints the table.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench import emulated_board
from edgepart import api
from edgepart.machine import host_description

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
KEY = "bench-farm"
DEPLOY = '[deploy]\noutput_tier = "device"\n[[tier]]\nname = "device"\ndevice = "{device}"\ntarget = "{target}"\n' \
         'backends = ["tvm"]\n'
BOARDS = {"loopback": ("local", "x86-64"), "aarch64": ("rpi4", "rpi4")}  # --boards -> the tier's device, target


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


CGROUP_CPU = Path("/sys/fs/cgroup/cpu")
PERIOD_US = 10_000


def held_to(process: subprocess.Popen, cpu: float, name: str) -> Path:
    """`process` (and the workers it forks later) in a cgroup of its own allowed `cpu` of one core."""
    group = CGROUP_CPU / f"edgepart-bench-{name}"
    if not CGROUP_CPU.is_dir():
        raise RuntimeError(f"--board-cpu needs the cgroup v1 CPU controller at {CGROUP_CPU} (and root)")
    group.mkdir(exist_ok=True)
    (group / "cpu.cfs_period_us").write_text(str(PERIOD_US))
    (group / "cpu.cfs_quota_us").write_text(str(round(PERIOD_US * cpu)))
    (group / "cgroup.procs").write_text(str(process.pid))
    return group


def farm(servers: int, board_root: Path | None = None, cpu: float | None = None
         ) -> tuple[str, list[subprocess.Popen], list[Path]]:
    """A tracker and `servers` boards of KEY: loopback servers, or emulated aarch64 boards in
    `board_root`; with `cpu`, each board held to that share of a core (held_to). Also the cgroups."""
    port = free_port()
    processes = [start("tvm.exec.rpc_tracker", "--host", "127.0.0.1", "--port", str(port), "--port-end",
                       str(port + 1))]
    listening(port)
    groups: list[Path] = []
    for _ in range(servers):
        board = free_port()
        processes.append(emulated_board.start(board_root, f"127.0.0.1:{port}", KEY, board) if board_root else
                         start("tvm.exec.rpc_server", "--host", "127.0.0.1", "--port", str(board), "--port-end",
                               str(board + 1), "--tracker", f"127.0.0.1:{port}", "--key", KEY, runtime_only=True))
        if cpu is not None:
            groups.append(held_to(processes[-1], cpu, f"board{len(groups)}"))
        listening(board)
    time.sleep(2)  # the servers register with the tracker
    return f"127.0.0.1:{port}", processes, groups


def tuned(model: str, plan: Path, out: Path, trials: int, tracker: str | None) -> dict:
    started = time.perf_counter()
    built = api.compile(model, plan, out, tune=trials, tuning_db=out.parent / f"{out.name}-db",
                        tracker=tracker, key=KEY if tracker else None, on=("device",) if tracker else ())
    seconds = time.perf_counter() - started
    tier = built.doc["tiers"][0]
    return {"seconds": seconds, "tuning": tier["build"].get("tuning"), "artifact_s": tier["timing"]["measured_s"],
            "priced_s": tier["timing"]["priced_s"]}


def on_farm(model: str, plan: Path, out: Path, trials: int, servers: int, board_root: Path | None,
            cpu: float | None) -> dict:
    """One tuned compile with its candidates measured on a fresh farm of `servers` boards."""
    tracker, processes, groups = farm(servers, board_root, cpu)
    try:
        return tuned(model, plan, out, trials, tracker)
    finally:
        for process in processes:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        time.sleep(0.5)  # the killed workers leave their cgroups
        for group in groups:
            group.rmdir()


def median_run(runs: list[dict]) -> dict:
    """The run of median wall time (its artifact and tuning as they came), and the median artifact time."""
    ordered = sorted(runs, key=lambda run: run["seconds"])
    artifacts = sorted(run["artifact_s"] for run in runs if run["artifact_s"] is not None)
    return {**ordered[(len(ordered) - 1) // 2], "seconds": statistics.median(run["seconds"] for run in runs),
            "artifact_s": statistics.median(artifacts) if artifacts else None}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="residual_cnn")
    parser.add_argument("--trials", type=int, default=32)
    parser.add_argument("--boards", choices=sorted(BOARDS), default="loopback")
    parser.add_argument("--repeats", type=int, default=1, help="runs of each configuration (medians reported)")
    parser.add_argument("--board-cpu", type=float, help="each board's share of one core (cgroup quota)")
    parser.add_argument("--board-cache", type=Path, default=ROOT / ".cache" / "arm-board",
                        help="where the emulated board's root filesystem is built (once)")
    args = parser.parse_args(sys.argv[1:] if __name__ == "__main__" else [])
    model = str(ROOT / "models" / f"{args.model}.onnx")
    board_root = emulated_board.build(args.board_cache.resolve()) if args.boards == "aarch64" else None
    device, target = BOARDS[args.boards]
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "deploy.toml").write_text(DEPLOY.format(device=device, target=target))
        plan = Path(tmp) / "plan.json"
        api.plan(model, Path(tmp) / "deploy.toml", output=plan)
        runs: dict[str, list[dict]] = {}
        for repeat in range(args.repeats):  # configurations interleaved: a slow spell of the host hits them alike
            if board_root is None:
                runs.setdefault("this host", []).append(tuned(model, plan, Path(tmp) / f"local{repeat}", args.trials,
                                                              None))
            for servers in (1, 2):
                runs.setdefault(f"{servers} board{'s' if servers > 1 else ''}", []).append(
                    on_farm(model, plan, Path(tmp) / f"farm{servers}-{repeat}", args.trials, servers, board_root,
                            args.board_cpu))
        rows = {name: median_run(each) for name, each in runs.items()}
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                            text=True).stdout.strip() or None
    doc = {"host": host_description(), "commit": commit, "model": args.model, "boards": args.boards, "target": target,
           "board_cpu_share": args.board_cpu, "repeats": args.repeats,
           "trials_per_kernel": args.trials, "rows": rows, "runs": runs,
           "one_over_two_boards": rows["1 board"]["seconds"] / rows["2 boards"]["seconds"],
           "one_over_two_boards_each_repeat": [one["seconds"] / two["seconds"]
                                               for one, two in zip(runs["1 board"], runs["2 boards"])]}
    lines = ["| tuned with | compile (tuning) s | kernels tuned | artifact ms | priced ms |", "|---|---|---|---|---|"]
    for name, row in rows.items():
        lines.append(f"| {name} | {row['seconds']:.1f} | {(row['tuning'] or {}).get('tuned_now', 0)} | "
                     f"{_ms(row['artifact_s'])} | {row['priced_s'] * 1e3:.3f} |")
    held = f" held to {args.board_cpu:g} of a core each" if args.board_cpu else ""
    lines += ["", f"{args.model}, {target}, {args.boards} boards{held}: 1 board / 2 boards wall time "
                  f"{doc['one_over_two_boards']:.2f}x"]
    if "this host" in rows:
        doc["artifact_farm_over_local"] = rows["2 boards"]["artifact_s"] / rows["this host"]["artifact_s"]
        lines[-1] += f"; artifact tuned on the farm / tuned here: {doc['artifact_farm_over_local']:.2f}x"
    name = "farm_tuning" + ("" if args.boards == "loopback" else f"_{args.boards}") + (
        f"_cpu{args.board_cpu:g}" if args.board_cpu else "")
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{name}.json").write_text(json.dumps(doc, indent=1) + "\n")
    (RESULTS / f"{name}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def _ms(seconds: float | None) -> str:
    return "not run here" if seconds is None else f"{seconds * 1e3:.3f}"


if __name__ == "__main__":
    main()
