"""edgepart from Python: each stage as a function with the command's options, returning the
document the command writes (docs/api.md).

    from edgepart import api
    profile = api.profile("models/residual_cnn.onnx")
    plan = api.plan("models/residual_cnn.onnx", "examples/demo.toml", profiles=[profile])
    manifest = api.compile("models/residual_cnn.onnx", plan, "build/demo")
    report = api.verify("build/demo")

A model is a path or a loaded model (`load_model`); a plan, profile or sensitivity argument is a
path, a dict, or the typed object a function returned. `profile` returns a Profile and `plan` a
Plan (edgepart.profile.document, edgepart.plan.plan_file: checked on load, the JSON in `.doc`);
manifests and reports are the JSON documents of docs/file-formats.md as dicts. Errors are
edgepart.errors' (BadInputError: exit 2 on the command line; CheckFailedError: exit 1; ToolError:
exit 3). Nothing is printed; `output` writes the document as the command's `-o`.
The stages live in packages named profile, plan, compile, so their functions are here, in
`edgepart.api`, not on `edgepart` itself.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from edgepart import graph, schema
from edgepart.compile.manifest import Manifest
from edgepart.compress.sensitivity import Sensitivity
from edgepart.errors import BadInputError
from edgepart.graph import LoadedModel
from edgepart.plan.plan_file import Plan
from edgepart.profile import profilers
from edgepart.profile.document import Profile
from edgepart.runtime.reports import AccuracyReport, RunReport, VerifyReport

Model = str | Path | LoadedModel
Document = dict[str, Any]
Progress = Callable[[int], None]
log = logging.getLogger(__name__)
MAX_TRIALS = 100_000  # compile --tune, per kernel
MAX_TIME_LIMIT_S = 86_400.0  # plan --time-limit, the ILP's: a day
MAX_ENERGY_WEIGHT = 1e6  # seconds per joule: beyond it, latency no longer counts
SEEDED_SAMPLES = 32  # sensitivity without data: seeded inputs, scored against the fp32 outputs
MAX_SAMPLES = 100_000  # sensitivity --samples


def load_model(path: str | Path, input_shapes: dict[str, list[int]] | None = None) -> LoadedModel:
    """An ONNX file with static shapes (`input_shapes` fixes dynamic ones, as --input-shape)."""
    return graph.load(str(path), input_shapes or {})


def profiler(*, device: str = "local", backend: str = "onnxruntime", predict: bool = False,
             calibrate_with: str | Path | None = None, precisions: Iterable[str] = ("fp32",), threads: int = 1,
             warmup: int = 10, repeat: int = 50, optimization: str = "all", check_segments: int = 0,
             data: str | Path | None = None, target: str | None = None,
             rpc: str | None = None, tracker: str | None = None, key: str | None = None) -> profilers.Profiler:
    """The profiler `profile` runs with these options (edgepart.profile.profilers), which are
    checked here: its `rounds(model)` sizes a progress bar for its `profile(model, progress)`."""
    from edgepart.profile.ort_profiler import RunOptions  # noqa: PLC0415

    precisions = tuple(precisions)
    if predict and backend != "onnxruntime":
        raise BadInputError(f"--backend {backend} with --predict: a prediction is of onnxruntime-like kernels "
                            "(the plan prices other backends by their factor); drop one of them")
    if predict and (rpc or tracker):
        raise BadInputError(f"{'--rpc' if rpc else '--tracker'} measures on a board and --predict measures nothing; "
                            "drop one of them")
    if calibrate_with and not predict:
        raise BadInputError("--calibrate-with fits a device profile for --predict; add --predict or drop it")
    if predict:
        return profilers.profiler("predicted", device=device, precisions=precisions, threads=threads,
                                  calibrate_with=str(calibrate_with) if calibrate_with else None)
    options = RunOptions(threads, warmup, repeat, optimization)
    if backend == "tvm" or rpc or tracker or key:
        if precisions != ("fp32",) or check_segments:
            raise BadInputError("--backend tvm measures fp32 end to end: drop --precision and --check-segments")
        if rpc:
            return profilers.profiler("tvm-rpc", device=device, options=options, target=target, rpc=rpc,
                                      tracker=tracker, key=key)
        return profilers.profiler("tvm", device=device, options=options, target=target, tracker=tracker, key=key)
    if backend != "onnxruntime":
        raise BadInputError(f"--backend '{backend}': choose from onnxruntime, tvm")
    return profilers.profiler("onnxruntime", device=device, options=options, precisions=precisions,
                              check_segments=check_segments, int8_data=str(data) if data else None)


def profile(model: Model, *, device: str = "local", backend: str = "onnxruntime", predict: bool = False,
            calibrate_with: str | Path | None = None, precisions: Iterable[str] = ("fp32",), threads: int = 1,
            warmup: int = 10, repeat: int = 50, optimization: str = "all", check_segments: int = 0,
            data: str | Path | None = None, target: str | None = None, rpc: str | None = None,
            tracker: str | None = None, key: str | None = None,
            output: str | Path | None = None, progress: Progress = lambda n: None) -> Profile:
    """`edgepart profile`: per-layer latency measured on this host (onnxruntime, or `backend="tvm"`
    as compile builds it; on a board with `rpc`), or with `predict` from a device profile (fitted
    first to `calibrate_with`, a measured profile of another model on that device). `data`: int8
    calibration data (.npz). `progress` is called with the rounds done."""
    output_apart(output, model, calibrate_with, data)
    chosen = profiler(device=device, backend=backend, predict=predict, calibrate_with=calibrate_with,
                      precisions=precisions, threads=threads, warmup=warmup, repeat=repeat, optimization=optimization,
                      check_segments=check_segments, data=data, target=target, rpc=rpc, tracker=tracker, key=key)
    found = chosen.profile(_loaded(model), progress)
    if output:
        found.dump(output)
        found = dataclasses.replace(found, source=str(output))  # later errors about it name the file
    return found


def profile_on_farm(models: Iterable[Model], output_dir: str | Path, *, tracker: str, key: str, target: str,
                    device: str = "local", warmup: int = 10, repeat: int = 50,
                    done: Callable[[Any], None] = lambda outcome: None,
                    started: Callable[[Any, str], None] = lambda outcome, board: None) -> list[Profile]:
    """`edgepart profile MODEL... --tracker HOST:PORT --key KEY -o DIR`: each model as compile builds
    it for `target`, measured on a board of the tracker's key, as many at once as the key has boards
    (a model whose board drops out is measured on another); each profile written to DIR/<model>.json
    and recording the board that measured it. `started(outcome, board)` and `done(outcome)` follow
    each model (edgepart.profile.farm.Outcome)."""
    loaded = [_loaded(model) for model in models]
    stems = [each.path.stem for each in loaded]
    twice = next((stem for stem in stems if stems.count(stem) > 1), None)
    if twice:
        raise BadInputError(f"-o {output_dir}: two models would be written to {twice}.json; give them distinct names")
    if Path(output_dir).exists() and not Path(output_dir).is_dir():
        raise BadInputError(f"-o {output_dir}: with several models -o names a folder, and this is a file")
    chosen = profiler(device=device, backend="tvm", warmup=warmup, repeat=repeat, target=target, tracker=tracker,
                      key=key)
    found = chosen.profile_many(loaded, done=done, started=started)
    Path(output_dir).mkdir(parents=True, exist_ok=True)
    written = []
    for each in found:
        path = Path(output_dir) / f"{Path(each.model_path).stem}.json"
        each.dump(path)
        written.append(dataclasses.replace(each, source=str(path)))
    return written


def plan(model: Model, deploy: str | Path, *, profiles: Iterable[Any] | str | Path = (),
         sensitivity: Any = None, objective: str = "latency", energy_weight: float = 0.0,
         solver: str = "auto", time_limit_s: float = 60.0, reproducible: bool = False, allow_lossy: bool = False,
         sweep: tuple[float, float] | None = None, sweep_link: str | None = None,
         output: str | Path | None = None) -> Plan:
    """`edgepart plan`: where each layer runs, in what precision, each tier's backend. `profiles`: a
    folder of profile files, or profiles (documents or paths); each is refused when made for
    another model. A plan that misses a budget is returned; its `unmet_budgets` name them (the command
    exits 1); a deployment no plan can meet raises CheckFailedError with the report as `details`.
    Without sensitivity data the plan keeps to lossless precisions and codecs unless `allow_lossy`
    (edgepart.plan.evidence); its `lossy` record says which were left out. `sweep` (low, high bit/s):
    the plan also holds every distinct plan over that range of `sweep_link`'s bandwidth (default the
    first link) and the device-only fallback, for compile to build together and `run --adapt`
    (edgepart.plan.adaptive)."""
    from edgepart.compress.sensitivity import Sensitivity  # noqa: PLC0415
    from edgepart.cost.model import Objective  # noqa: PLC0415
    from edgepart.hardware import deploy as deploy_file  # noqa: PLC0415
    from edgepart.plan import planner  # noqa: PLC0415
    from edgepart.plan.ilp import IlpOptions  # noqa: PLC0415

    profile_paths = [] if isinstance(profiles, (str, Path)) else list(profiles)
    output_apart(output, model, deploy, sensitivity, *profile_paths)
    _check_objective(objective, energy_weight)
    if not 0 < time_limit_s <= MAX_TIME_LIMIT_S:
        raise BadInputError(f"--time-limit {time_limit_s:g}: must be above 0 and at most {MAX_TIME_LIMIT_S:g} seconds")
    loaded = _loaded(model)
    if isinstance(profiles, (str, Path)):
        if not Path(profiles).is_dir():
            raise BadInputError(f"--profiles {profiles}: no such folder")
        profiles = sorted(Path(profiles).glob("*.json"))
    docs = tuple((p if isinstance(p, Profile) else Profile.of(p, f"profiles[{i}]") if isinstance(p, dict)
                  else Profile.load(p)).of_model(loaded) for i, p in enumerate(profiles))
    seen: dict[tuple[str, str], str] = {}
    for doc in docs:  # which one would price the tier is not for edgepart to guess
        other = seen.setdefault((doc.device, doc.backend), doc.source)
        if other != doc.source:
            raise BadInputError(f"{doc.source}: a second profile of device '{doc.device}' with {doc.backend} "
                                f"(the first: {other}); keep one")
    request = planner.PlanRequest(
        objective=Objective(objective, energy_weight), solver=solver, ilp=IlpOptions(time_limit_s=time_limit_s),
        reproducible=reproducible or "SOURCE_DATE_EPOCH" in os.environ, profiles=docs, allow_lossy=allow_lossy,
        sensitivity=None if sensitivity is None else (
            sensitivity if isinstance(sensitivity, Sensitivity) else Sensitivity.of(sensitivity, "sensitivity")
            if isinstance(sensitivity, dict) else Sensitivity.load(sensitivity)).of_model(loaded))
    deployment = deploy_file.load(deploy)
    if deployment.budgets.accuracy_drop is not None and request.sensitivity is None and allow_lossy:
        log.warning("an accuracy budget without sensitivity data: with --allow-lossy, lower precisions and lossy "
                    "codecs count as free")
    doc = planner.plan(loaded, deployment, request)
    if sweep is not None:
        doc["adaptive"] = _adaptive(loaded, deployment, request, doc, sweep, sweep_link)
    plan = Plan.of(doc, str(output or "plan"))
    if output:
        plan.dump(output)
    return plan


def _adaptive(loaded: LoadedModel, deployment: Any, request: Any, nominal: dict, sweep: tuple[float, float],
              link: str | None) -> dict:
    from edgepart.plan import adaptive, evidence, planner  # noqa: PLC0415
    from edgepart.plan.sweep import sweep_segments  # noqa: PLC0415

    low, high = sweep
    if not 0 < low < high:
        raise BadInputError(f"--sweep {low:g}..{high:g} bit/s: LOW must be positive and below HIGH")
    if request.objective.kind != "latency":
        raise BadInputError("--sweep: an adaptive build switches plans by latency; use --objective latency")
    if not deployment.links:
        raise BadInputError(f"{deployment.path}: --sweep needs at least two tiers joined by a link")
    names = [each.name for each in deployment.links]
    if link is not None and link not in names:
        raise BadInputError(f"--sweep-link: unknown link '{link}'; links: {', '.join(names)}")
    index = names.index(link) if link else 0
    restricted, _ = evidence.restrict(deployment, request.sensitivity is not None, request.allow_lossy)
    _, segments = sweep_segments(loaded, restricted, index, low, high, request.objective, request.solver)
    return adaptive.section(loaded, deployment, Plan.of(nominal, "the plan"), index, low, high,
                            lambda changed: planner.plan(loaded, changed, request),
                            [(s.start, s.end) for s in segments])


def compile(model: Model, plan: Plan | Document | str | Path, out: str | Path, *, tune: int = 0,  # noqa: A001
            tuning_db: str | Path | None = None, calibration: str | Path | None = None,
            tracker: str | None = None, key: str | None = None, on: Iterable[str] = (),
            progress: Callable[[str], None] = lambda message: None) -> Manifest:
    """`edgepart compile`: the build folder `out` (replaced when it is an earlier build) and its
    manifest, each tier timed against its price where this host can run it. `tracker` and `key`
    (with `tune`): the candidates of the tiers named by `on` (default: every CPU tier this host
    cannot run) are measured on the boards of that key, one at a time per board."""
    from edgepart.compile.build import compile_plan  # noqa: PLC0415
    from edgepart.compress import data  # noqa: PLC0415
    from edgepart.runtime.price import time_tier  # noqa: PLC0415

    if not 0 <= tune <= MAX_TRIALS:
        raise BadInputError(f"--tune {tune}: must be from 0 to {MAX_TRIALS} trials per kernel")
    on = tuple(on)
    if (tracker or key or on) and not (tracker and key and tune):
        raise BadInputError("--tracker, --key and --on go with --tune: the tracker, the key of the boards that measure "
                            "the tuning's candidates, and the tiers tuned there")
    loaded = _loaded(model)
    plan = plan if isinstance(plan, Plan) else Plan.of(plan, "plan") if isinstance(plan, dict) else Plan.load(plan)
    if tracker:
        _farm_tiers(plan, tracker, key, on)
    dataset = data.load(str(calibration), loaded, "--calibration") if calibration else None
    compile_plan(loaded, plan, out, progress, tune, Path(tuning_db) if tuning_db else None, dataset, timer=time_tier,
                 tune_on=(tracker, key, on) if tracker else None)
    return Manifest.load(out)


def _farm_tiers(plan: Plan, tracker: str, key: str, on: tuple[str, ...]) -> None:
    """compile --tracker: the tiers tuned on the farm are CPU tiers of the plan, at least one, and
    the key has a board."""
    from edgepart.profile.farm import Farm  # noqa: PLC0415
    from edgepart.toolchain import targets  # noqa: PLC0415
    from edgepart.toolchain.elf import HOST_MACHINE  # noqa: PLC0415

    presets = {t.name: targets.resolve(t.target, f"{plan.source}: tier '{t.name}' target") for t in plan.tiers}
    cpu = [name for name, preset in presets.items() if preset.device == "cpu"]
    unknown = sorted(set(on) - set(cpu))
    if unknown:
        raise BadInputError(f"--on {unknown[0]}: not a CPU tier of the plan ({', '.join(cpu) or 'it has none'}); "
                            "a farm tunes CPU targets")
    if not on and all(presets[name].elf_machine == HOST_MACHINE for name in cpu):
        raise BadInputError("--tracker: every CPU tier of the plan runs on this host; name the tiers to tune on the "
                            "farm with --on TIER")
    if not Farm(tracker, key).boards():
        raise BadInputError(f"--tracker {tracker}: no board registered under key '{key}'")


def sensitivity(model: Model, *, data: str | Path | None = None, samples: int | None = None,
                metric: str | None = None, precisions: Iterable[str] = ("fp16", "int8"),
                max_seconds: float | None = None, exact: bool = False, confirm: Plan | str | Path | None = None,
                output: str | Path | None = None, progress: Progress = lambda n: None) -> Sensitivity:
    """`edgepart sensitivity`: the accuracy each layer's lower precision and each tensor codec costs,
    on calibration `data` (.npz; default seeded inputs scored against the fp32 outputs).
    `max_seconds`: the time to take (default edgepart.compress.sensitivity.EXACT_SECONDS): every
    choice is run where that fits, else probes are run and the other choices estimated (marked);
    `exact`: run every choice, stopping at `max_seconds` with what is measured (the model's first
    layers first); a plan leaves the choices not measured out (edgepart.plan.evidence).
    `confirm`: a plan of this model whose lossy choices are run on the whole model (not estimated);
    the document's `confirmed` gives each one's earlier estimate beside the run."""
    from edgepart.compress import data as datasets  # noqa: PLC0415
    from edgepart.compress import sensitivity as measuring  # noqa: PLC0415
    from edgepart.hardware.devices import load_device  # noqa: PLC0415

    output_apart(output, model, data)
    precisions = tuple(precisions)
    unknown = sorted(set(precisions) - {"fp16", "int8"})
    if unknown or not precisions:
        raise BadInputError(f"--precision: {'unknown precision ' + repr(unknown[0]) if unknown else 'none given'}; "
                            "choose from fp16, int8")
    if samples is not None and not 1 <= samples <= MAX_SAMPLES:
        raise BadInputError(f"--samples {samples}: must be from 1 to {MAX_SAMPLES}")
    if max_seconds is not None and not (math.isfinite(max_seconds) and 0 < max_seconds <= MAX_TIME_LIMIT_S):
        raise BadInputError(f"--max-seconds {max_seconds:g}: must be above 0 and at most {MAX_TIME_LIMIT_S:g}")
    if metric == "accuracy" and not data:
        raise BadInputError("--metric accuracy needs --data with a 'labels' array (seeded inputs have no labels)")
    loaded = _loaded(model)
    dataset = (datasets.load(str(data), loaded).head(samples) if data
               else datasets.seeded(loaded, samples or SEEDED_SAMPLES))
    chosen, together = frozenset(), None
    if confirm is not None:
        planned = confirm if isinstance(confirm, Plan) else Plan.load(confirm)
        if planned.model_sha256 != loaded.sha256:
            raise BadInputError(f"--confirm {planned.source}: a plan of model sha256 {planned.model_sha256[:12]}, but "
                                f"{loaded.path} has sha256 {loaded.sha256[:12]}")
        chosen = frozenset(planned.lossy_choices())
        from edgepart.graph.sessions import named_model  # noqa: PLC0415

        together = planned.composition(named_model(loaded))
    found = Sensitivity.of(measuring.measure(loaded, dataset, metric, precisions,
                                             load_device("local").memory_bandwidth, progress=progress,
                                             max_seconds=max_seconds, exact=exact, confirm=chosen,
                                             composition=together,
                                             check=datasets.load(str(data), loaded) if data and together else None),
                           str(output or "sensitivity"))
    if not data:  # said once it worked, so that a failure stays one line
        log.warning("no --data: measured on %d seeded inputs against the fp32 outputs; pass calibration data "
                    "for task accuracy", samples or SEEDED_SAMPLES)
    if output:
        found.dump(output)
    return found


def sweep(model: Model, deploy: str | Path, low_bps: float, high_bps: float, *, link: str | None = None,
          objective: str = "latency", energy_weight: float = 0.0, solver: str = "auto",
          output: str | Path | None = None) -> Document:
    """`edgepart sweep`: the optimal plans over a link's bandwidth range (bit/s), with the exact
    breakpoints; the sweep document. `link`: its name (default the first link)."""
    from edgepart.cost.model import Objective  # noqa: PLC0415
    from edgepart.hardware import deploy as deploy_file  # noqa: PLC0415
    from edgepart.plan import sweep as sweeps  # noqa: PLC0415

    output_apart(output, model, deploy)
    _check_objective(objective, energy_weight)
    deployment = deploy_file.load(deploy)
    if not deployment.links:
        raise BadInputError(f"{deploy}: a sweep needs at least two tiers joined by a link")
    names = [each.name for each in deployment.links]
    if link is not None and link not in names:
        raise BadInputError(f"--link: unknown link '{link}'; links: {', '.join(names)}")
    doc = sweeps.sweep_document(_loaded(model), deployment, names.index(link) if link else 0, low_bps, high_bps,
                                  Objective(objective, energy_weight), solver)
    if output:
        schema.write_json(output, doc)
    return doc


def verify(build: str | Path, *, inputs: str | Path | None = None, model: str | Path | None = None,
           strict: bool = False, validate_accuracy: str | Path | None = None,
           samples: int | None = None, tracker: str | None = None, key: str | None = None,
           on: Iterable[str] = ()) -> VerifyReport | AccuracyReport:
    """`edgepart verify`: the tier chain against onnxruntime on the original model; CheckFailedError
    when an output differs (or, `strict`, a tier runs over 1.5x its price), with the report as `details`.
    With `validate_accuracy` (held-out .npz data, the first `samples` of it): the chain's accuracy drop
    against the plan's budget instead, an AccuracyReport. `tracker` and `key`: the tiers named by `on`
    (default: every TVM tier this host cannot run itself) run their library on a board of the key
    instead of under emulation, and are timed there against their price."""
    from edgepart.runtime import emulate  # noqa: PLC0415
    from edgepart.runtime import verify as verifier

    if samples is not None and validate_accuracy is None:
        raise BadInputError("--samples means something only with --validate-accuracy; drop it or add that")
    if samples is not None and samples < 1:
        raise BadInputError("--samples must be at least 1")
    if validate_accuracy and strict:
        raise BadInputError("--strict and --validate-accuracy: --strict holds verify's timing to the plan's price; "
                            "run them one at a time")
    if validate_accuracy and inputs:
        raise BadInputError("--inputs and --validate-accuracy: give one (held-out data goes to --validate-accuracy)")
    model_path = str(model) if model else None
    boards = _farm_boards(build, tracker, key, tuple(on)) if tracker or key or on else None
    if boards is not None and validate_accuracy:
        raise BadInputError("--tracker and --validate-accuracy: run the accuracy check without the farm")
    if validate_accuracy:
        return verifier.validate_accuracy(str(build), str(validate_accuracy), model_path, emulate.available(),
                                          samples)
    return verifier.verify(str(build), str(inputs) if inputs else None, model_path, emulate.available(), strict,
                           boards)


def _farm_boards(build: str | Path, tracker: str | None, key: str | None, on: tuple[str, ...]) -> dict:
    """verify --tracker: tier name -> a factory of the runner of its library on one board of the key."""
    from edgepart.profile.farm import Farm  # noqa: PLC0415
    from edgepart.runtime.runners import BoardRunner  # noqa: PLC0415
    from edgepart.toolchain.elf import HOST_MACHINE  # noqa: PLC0415

    if not tracker or not key:
        raise BadInputError("--tracker, --key and --on go together: the tracker, the key its boards registered "
                            "under, and the tiers to run on them")
    built = Manifest.load(build)
    tvm_tiers = [t.name for t in built.tiers if t.backend == "tvm"]
    unknown = sorted(set(on) - set(tvm_tiers))
    if unknown:
        raise BadInputError(f"--on {unknown[0]}: not a TVM tier of {build} ({', '.join(tvm_tiers) or 'it has none'})")
    names = on or tuple(t.name for t in built.tiers if t.backend == "tvm"
                        and not (t.runtime_device == "cpu" and t.elf_machine == HOST_MACHINE))
    if not names:
        raise BadInputError(f"--tracker: every TVM tier of {build} runs on this host; name the tiers for the farm "
                            "with --on TIER")
    board = Farm(tracker, key).request()  # one board of the key for the whole check
    return {name: lambda library, tier: BoardRunner(library, tier.runtime_device, board, key) for name in names}


MAX_REQUESTS = 1_000_000
MIN_TIMEOUT_S, MAX_TIMEOUT_S = 0.001, 3_600.0
MIN_RATE, MAX_RATE = 0.01, 1e6  # run --rate, requests per second
LINK_MODES = {"shaped": "auto", "netns": "netns", "pacing": "pacing", "ideal": "ideal"}


def run(build: str | Path, *, requests: int = 100, links: str = "shaped", rate: float | str | None = None,
        timeout_s: float | None = None, check: bool = True, model: str | Path | None = None,
        inputs: str | Path | None = None, adapt: bool = False, plan: str | None = None,
        device_speed: str = "host", events: Iterable[str] = (), duration_s: float | None = None,
        progress: Progress = lambda n: None) -> RunReport:
    """`edgepart run`: the tiers as processes over the build's links (`links`: shaped, netns,
    pacing, ideal); requests one at a time, or at `rate` per second, or "max"; the run report.
    An adaptive build (plan --sweep): `adapt` switches plans as the link changes and falls back to
    the device when it fails; `plan` runs one of its plans fixed. `device_speed` "priced": tiers
    whose device is not this host take the time the plan priced them at. `events`: changes and
    faults to inject (edgepart.runtime.run.faults, e.g. "10s:wifi=2Mbit/s", "20s:kill=edge").
    `duration_s`: send requests until then (at most `requests`)."""
    from edgepart.runtime.run import client, faults  # noqa: PLC0415

    if not 1 <= requests <= MAX_REQUESTS:
        raise BadInputError(f"--requests {requests}: must be from 1 to {MAX_REQUESTS}")
    if timeout_s is not None and not MIN_TIMEOUT_S <= timeout_s <= MAX_TIMEOUT_S:
        raise BadInputError(f"--timeout {timeout_s:g}: must be from {MIN_TIMEOUT_S:g} to {MAX_TIMEOUT_S:g} seconds")
    if links not in LINK_MODES:
        raise BadInputError(f"--links '{links}': choose from {', '.join(LINK_MODES)}")
    if duration_s is not None and not 0 < duration_s <= MAX_TIMEOUT_S:
        raise BadInputError(f"--duration {duration_s:g}: must be above 0 and at most {MAX_TIMEOUT_S:g} seconds")
    options = client.RunOptions(requests=requests, rate=_rate(rate), rate_max=rate == "max",
                                shaping=LINK_MODES[links], timeout_s=timeout_s, check=check,
                                model=str(model) if model else None, inputs=str(inputs) if inputs else None,
                                adapt=adapt, plan=plan, device_speed=device_speed,
                                events=tuple(faults.parse(spec) for spec in events), duration_s=duration_s)
    return client.run(str(build), options, progress=progress)


def _rate(rate: float | str | None) -> float | None:
    if rate is None or rate == "max":
        return None
    try:
        value = float(rate)
    except ValueError:
        value = 0.0
    if not MIN_RATE <= value <= MAX_RATE:  # NaN fails too
        raise BadInputError(f"--rate '{rate}': expected requests per second from {MIN_RATE:g} to {MAX_RATE:g}, "
                            "or 'max'")
    return value


def _check_objective(objective: str, energy_weight: float) -> None:
    if objective == "weighted" and not 0 < energy_weight <= MAX_ENERGY_WEIGHT:  # NaN fails too
        raise BadInputError(f"--objective weighted needs --energy-weight above 0 and at most {MAX_ENERGY_WEIGHT:g} "
                            f"(seconds per joule), got {energy_weight:g}")


def output_apart(output: str | Path | None, *inputs: Model | str | Path | None) -> None:
    """Refuse an output file that is one of the command's inputs: writing it would destroy the input."""
    if not output:
        return
    target = os.path.realpath(output)  # realpath, not resolve: a symbolic-link loop is for the reader to refuse
    for given in inputs:
        path = given.path if isinstance(given, LoadedModel) else given
        if path is not None and not isinstance(path, (dict, Profile, Plan, Sensitivity)) and \
                os.path.realpath(path) == target:
            raise BadInputError(f"-o {output}: is an input of this command ({path}); write the result elsewhere")


def _loaded(model: Model) -> LoadedModel:
    return model if isinstance(model, LoadedModel) else load_model(model)
