"""`edgepart batch jobs.toml`: every model on every deployment, each job profile -> plan -> compile
-> verify in a folder of its own; jobs run in parallel, a finished job is not redone, and one
summary says how each ended.

    [batch]
    out = "batch"                 # the jobs' folders (relative to jobs.toml; --out overrides)
    parallel = 2                  # jobs at once (--parallel overrides)
    timeout = "60 min"            # the most one stage of a job may take (default)

    [[model]]
    path = "models/residual_cnn.onnx"
    calibration = "models/digits_calib.npz"   # optional: compile --calibration (and verify's inputs)

    [[deployment]]
    path = "examples/demo.toml"

    [farm]                        # optional: boards behind a TVM RPC tracker (edgepart.profile.farm)
    tracker = "10.0.0.2:9190"
    keys = { rpi4 = "rpi4" }      # a deployment's device name -> the key its boards registered under

A job's folder is OUT/<model>.<deployment> (the files' stems): profiles/ (this host measured with
onnxruntime when a tier of the deployment is this host, device 'local'; a tier whose device has a
farm key measured with TVM on a board of that key, as its target), plan.json, build/, verify.json,
and job.json, its record: each stage's exit code and seconds, the first line of a failure, and the
sha256 of what it was made from. Each stage runs as its own `edgepart` process, so a crash or a hang
in one job (killed at the time-out) cannot take the others down; the farm's tracker hands each
request the next free board, so jobs in parallel share the boards. verify runs the TVM tiers of farm
devices on their boards (one verify per key, verify.<key>.json). A job whose record says it
succeeded from the same model, deployment, calibration data, farm and edgepart is skipped.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
import time
import tomllib
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgepart import __version__, checks, names, schema
from edgepart.errors import BadInputError, ExitCode
from edgepart.hardware import units

SCHEMA_VERSION = 1
RECORD = "job.json"
LOCAL_DEVICE = "local"
DEFAULT_TIMEOUT_S = 3600.0
MAX_PARALLEL = 64


@dataclass(frozen=True)
class Farm:
    """The jobs file's [farm]: a tracker and, per deployment device name, the key of its boards."""
    tracker: str
    keys: dict[str, str]

    def describe(self) -> dict[str, Any]:
        return {"tracker": self.tracker, "keys": dict(sorted(self.keys.items()))}


@dataclass(frozen=True)
class Job:
    name: str
    model: Path
    deployment: Path
    calibration: Path | None
    folder: Path
    farm: Farm | None = None

    def sources(self) -> dict[str, Any]:
        """What the job's results depend on: a changed one makes the job run again."""
        return {"model": _sha256(self.model), "deployment": _sha256(self.deployment),
                "calibration": _sha256(self.calibration) if self.calibration else None, "edgepart": __version__,
                **({"farm": self.farm.describe()} if self.farm else {})}


@dataclass(frozen=True)
class Batch:
    source: Path
    out: Path
    parallel: int
    timeout_s: float
    jobs: tuple[Job, ...]
    farm: Farm | None = None


def load(path: str | Path, out: str | Path | None = None, parallel: int | None = None) -> Batch:
    """The jobs file, every field checked (BadInputError names the file and field)."""
    path = Path(path)
    try:
        doc = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise BadInputError(f"{path}: no such jobs file") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise BadInputError(f"{path}: not a TOML jobs file ({str(exc).splitlines()[0]})") from None
    unknown = sorted(set(doc) - {"batch", "model", "deployment", "farm"})
    if unknown:
        raise BadInputError(f"{path}: unknown table '{unknown[0]}'; a jobs file has [batch], [[model]], "
                            "[[deployment]], [farm]")
    settings = checks.table(doc.get("batch", {}), f"{path}: [batch]")
    odd = sorted(set(settings) - {"out", "parallel", "timeout"})
    if odd:
        raise BadInputError(f"{path}: [batch].{odd[0]}: unknown key; known: out, parallel, timeout")
    base = path.parent
    out_dir = Path(out) if out is not None else base / checks.text(settings.get("out", "batch"), f"{path}: [batch].out")
    count = parallel if parallel is not None else settings.get("parallel", 2)
    count = checks.whole(count, "--parallel" if parallel is not None else f"{path}: [batch].parallel", 1, MAX_PARALLEL)
    timeout = settings.get("timeout")
    timeout_s = DEFAULT_TIMEOUT_S if timeout is None else units.parse(timeout, "time", f"{path}: [batch].timeout")
    farm = _farm(doc["farm"], path) if "farm" in doc else None
    models = _entries(doc, "model", path, {"path", "calibration"})
    deployments = _entries(doc, "deployment", path, {"path"})
    jobs = []
    for model in models:
        for deployment in deployments:
            name = names.checked(f"{model['path'].stem}.{deployment['path'].stem}",
                                 f"{path}: the job of {model['path'].name} on {deployment['path'].name}")
            jobs.append(Job(name, model["path"], deployment["path"], model.get("calibration"), out_dir / name, farm))
    seen: dict[str, Job] = {}
    for job in jobs:
        if job.name in seen:
            raise BadInputError(f"{path}: two jobs would share the folder '{job.name}' ({seen[job.name].model} and "
                                f"{job.model}); give the files distinct names")
        seen[job.name] = job
    return Batch(path, out_dir, count, timeout_s, tuple(jobs), farm)


def _farm(table: Any, path: Path) -> Farm:
    settings = checks.table(table, f"{path}: [farm]")
    odd = sorted(set(settings) - {"tracker", "keys"})
    if odd:
        raise BadInputError(f"{path}: [farm].{odd[0]}: unknown key; known: tracker, keys")
    tracker = checks.text(settings.get("tracker"), f"{path}: [farm].tracker")
    if checks.host_port(tracker) is None:
        raise BadInputError(f"{path}: [farm].tracker: '{tracker}' is not HOST:PORT")
    keys = checks.table(settings.get("keys", {}), f"{path}: [farm].keys")
    if not keys:
        raise BadInputError(f"{path}: [farm].keys: none given; map a deployment device name to its boards' key, "
                            "e.g. keys = { rpi4 = \"rpi4\" }")
    return Farm(tracker, {device: checks.text(key, f"{path}: [farm].keys.{device}") for device, key in keys.items()})


def _entries(doc: dict, key: str, path: Path, allowed: set[str]) -> list[dict[str, Any]]:
    entries = doc.get(key)
    if not isinstance(entries, list) or not entries:
        raise BadInputError(f"{path}: no [[{key}]] entries; a batch needs at least one model and one deployment")
    found = []
    for i, entry in enumerate(entries):
        where = f"{path}: {key}[{i}]"
        checks.table(entry, where)
        odd = sorted(set(entry) - allowed)
        if odd:
            raise BadInputError(f"{where}.{odd[0]}: unknown key; known: {', '.join(sorted(allowed))}")
        files = {}
        for field in sorted(allowed & set(entry)):
            file = path.parent / checks.text(entry[field], f"{where}.{field}")
            if not file.is_file():
                raise BadInputError(f"{where}.{field}: {file}: no such file")
            files[field] = file
        if "path" not in files:
            raise BadInputError(f"{where}.path: missing")
        found.append(files)
    return found


def run(batch: Batch, progress=lambda job, outcome: None) -> dict[str, Any]:
    """Every job (in parallel, `batch.parallel` at once); the `edgepart.batch` summary, whose
    `exit_code` is 0 when every job succeeded, else 1 (each job's own is in its entry)."""
    batch.out.mkdir(parents=True, exist_ok=True)

    def one(job: Job) -> dict[str, Any]:
        result = _run_job(job, batch.timeout_s)
        progress(job, result["outcome"])
        return result

    with ThreadPoolExecutor(max_workers=batch.parallel) as pool:
        results = list(pool.map(one, batch.jobs))
    failed = [r for r in results if r["exit_code"] != 0]
    return schema.document("batch", SCHEMA_VERSION, {
        "jobs_file": str(batch.source), "out": str(batch.out), "parallel": batch.parallel,
        "farm": batch.farm.describe() if batch.farm else None,
        "counts": {outcome: sum(r["outcome"] == outcome for r in results) for outcome in ("done", "skipped", "failed")},
        "exit_code": int(ExitCode.CHECK_FAILED) if failed else 0,
        "jobs": results,
    })


def _run_job(job: Job, timeout_s: float) -> dict[str, Any]:
    sources = job.sources()
    record_path = job.folder / RECORD
    earlier = _earlier(record_path)
    summary = {"name": job.name, "model": str(job.model), "deployment": str(job.deployment), "folder": str(job.folder)}
    if earlier and earlier.get("exit_code") == 0 and earlier.get("sources") == sources:
        return {**summary, "outcome": "skipped", "exit_code": 0, "failed_stage": None, "error": None,
                "seconds": 0.0, "stages": earlier.get("stages", [])}
    job.folder.mkdir(parents=True, exist_ok=True)
    (job.folder / RECORD).unlink(missing_ok=True)  # a job cut short leaves no record that says it succeeded
    stages, failure = [], None
    for stage, command, stdout in _stages(job):
        started = time.perf_counter()
        code, error = _stage(command, stdout, timeout_s)
        stages.append({"stage": stage, "exit_code": code, "seconds": round(time.perf_counter() - started, 3)})
        if code != 0:
            failure = (stage, code, error)
            break
    record = {**summary, "outcome": "failed" if failure else "done", "exit_code": failure[1] if failure else 0,
              "failed_stage": failure[0] if failure else None, "error": failure[2] if failure else None,
              "seconds": round(sum(s["seconds"] for s in stages), 3), "stages": stages}
    schema.write_json(record_path, schema.document("batch_job", SCHEMA_VERSION, {**record, "sources": sources}))
    return record


def _stages(job: Job) -> Iterator[tuple[str, list[str], Path | None]]:
    """(stage, edgepart arguments, file its stdout goes to) in order. A generator, resumed only once
    the stage before has succeeded: the farm's verify stages read the build compile has made."""
    folder, model = job.folder, str(job.model)
    profiles = folder / "profiles"
    tiers = _tiers(job.deployment)
    profiled = False
    if any(tier.get("device") == LOCAL_DEVICE for tier in tiers):
        profiled = True
        yield "profile", ["profile", model, "-o", str(profiles / "local.json")], None
    for device, target in _farm_devices(job, tiers).items():
        profiled = True
        yield (f"profile {device}", ["profile", model, "--backend", "tvm", "--device", device, "--target", target,
                                     "--tracker", job.farm.tracker, "--key", job.farm.keys[device],
                                     "-o", str(profiles / f"{device}.json")], None)
    yield "plan", ["plan", model, "--deploy", str(job.deployment), "-o", str(folder / "plan.json"), "--reproducible",
                   *(["--profiles", str(profiles)] if profiled else [])], None
    calibration = ["--calibration", str(job.calibration)] if job.calibration else []
    build = str(folder / "build")
    yield "compile", ["compile", model, "--plan", str(folder / "plan.json"), "-o", build, *calibration], None
    on_boards = _tiers_on_boards(job)
    if not on_boards:
        yield "verify", ["--json", "verify", build], folder / "verify.json"
    for key, tier_names in on_boards.items():
        yield (f"verify on {key}", ["--json", "verify", build, "--tracker", job.farm.tracker, "--key", key,
                                    *(a for name in tier_names for a in ("--on", name))], folder / f"verify.{key}.json")


def _farm_devices(job: Job, tiers: list[dict[str, Any]]) -> dict[str, str]:
    """Device name -> the target its boards are profiled for, for the deployment's farm devices."""
    if job.farm is None:
        return {}
    found: dict[str, str] = {}
    for tier in tiers:
        device, target = tier.get("device"), tier.get("target")
        if device in job.farm.keys and isinstance(target, str):
            found.setdefault(device, target)
    return found


def _tiers_on_boards(job: Job) -> dict[str, list[str]]:
    """Farm key -> the build's TVM tiers whose device has that key (the backend is the plan's choice)."""
    from edgepart.compile.manifest import Manifest  # noqa: PLC0415

    if job.farm is None:
        return {}
    found: dict[str, list[str]] = {}
    for tier in Manifest.load(job.folder / "build").tiers:
        if tier.backend == "tvm" and tier.device in job.farm.keys:
            found.setdefault(job.farm.keys[tier.device], []).append(tier.name)
    return found


def _stage(arguments: list[str], stdout: Path | None, timeout_s: float) -> tuple[int, str | None]:
    """An `edgepart` process: its exit code and the first line it printed on stderr on failure."""
    command = [sys.executable, "-m", "edgepart", "-q", *arguments]
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=timeout_s)
    except subprocess.TimeoutExpired:
        return int(ExitCode.TOOL_FAILED), f"edgepart {arguments[0]} ran past the time-out ({timeout_s:g} s)"
    if stdout is not None and result.stdout:
        schema.write_atomic(stdout, result.stdout)
    if result.returncode == 0:
        return 0, None
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    return result.returncode, (lines[-1].removeprefix("edgepart: error: ") if lines
                               else f"exit code {result.returncode}")[:500]


def _tiers(deployment: Path) -> list[dict[str, Any]]:
    """The deployment's [[tier]] tables; an unreadable file gives none and is left to plan, which
    names what is wrong in it."""
    try:
        doc = tomllib.loads(deployment.read_text())
    except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError):
        return []
    tiers = doc.get("tier", [])
    return [t for t in tiers if isinstance(t, dict)] if isinstance(tiers, list) else []


def _earlier(record: Path) -> dict[str, Any] | None:
    try:
        return schema.load_json(record, "batch_job", SCHEMA_VERSION)
    except (BadInputError, OSError):
        return None


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()
