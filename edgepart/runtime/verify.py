"""verify(build) -> report: run the tier chain, codecs applied at boundaries, and compare the
model's outputs with onnxruntime on the original model.

Each tier runs the way this machine allows: a TVM library for this host's CPU (or a GPU present
here) with TVM's runtime only; an AArch64 library under qemu-user when the emulation bundle is
available; otherwise its ONNX sub-model runs in onnxruntime as a stand-in, and the report says so.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort

from edgepart import schema
from edgepart.compile import manifest
from edgepart.compile.manifest import Manifest, TensorSpec
from edgepart.compress import codecs, data
from edgepart.errors import BadInputError, CheckFailedError, ToolError, first_line
from edgepart.graph import feeds as seeded_feeds
from edgepart.graph import sessions
from edgepart.graph.compare import output_errors
from edgepart.graph.load import graph_input_names
from edgepart.runtime import price
from edgepart.runtime.reports import SCHEMA_VERSION, AccuracyReport, VerifyReport
from edgepart.runtime.runners import reference_runner, runner_for

# max |output - reference| / max |reference| allowed for a chain of fp32 layers and lossless codecs
FLOAT_TOLERANCE = 1e-4
# A chain with lower precisions or lossy codecs may differ from the fp32 model by at most this many
# times what the same choices cost when onnxruntime runs them (each tier's sub-model, the build's
# codecs between): the measured cost, not a fixed allowance per precision.
LOSSY_MARGIN = 2.0


class Chain:
    """The build's tiers, each with the runner this machine allows, codecs applied between them.
    `reference`: every tier's sub-model (its precisions applied) in onnxruntime instead, which
    measures what the build's lossy choices cost."""

    def __init__(self, built: Manifest, emulators: dict, reference: bool = False, boards: dict | None = None) -> None:
        self.built = built
        self.runners = [reference_runner(built.build_dir, tier) if reference else
                        runner_for(built.build_dir, tier, emulators, boards) for tier in built.tiers]
        self.first_inputs: dict[str, list[np.ndarray]] = {}  # per tier, what it received for the first sample

    @staticmethod
    def least_precise(built: Manifest) -> str:
        """The least precise choice on the way through the build: fp32 means a lossless chain."""
        precision = "fp32"
        for tier in built.tiers:
            for choice in tier.choices:
                precision = _least_precise(precision, codecs.base(choice))
        return precision

    def run_many(self, samples: list[dict[str, np.ndarray]]) -> list[dict[str, np.ndarray]]:
        """Tier by tier over all samples (an emulated tier starts once for all of them)."""
        states = [dict(feeds) for feeds in samples]
        for tier, runner in zip(self.built.tiers, self.runners):
            values = [[_received(state[spec.name], spec) for spec in tier.inputs] for state in states]
            self.first_inputs[tier.name] = values[0]
            many = getattr(runner, "run_many", None)
            outputs = many(values) if many else [runner.run(v) for v in values]
            for state, produced in zip(states, outputs):
                state.update({spec.name: out for spec, out in zip(tier.outputs, produced)})
        return [{name: state[name] for name in self.built.outputs} for state in states]

    def describe(self) -> list[dict]:
        return [{"name": t.name, "ran_with": r.description} for t, r in zip(self.built.tiers, self.runners)]

    def held_to_price(self) -> dict[str, dict]:
        """Per tier, its time on the first sample of the last run_many against the plan's price
        (edgepart.runtime.price.judged): timed where this host is the priced device and runs the tier
        natively, else why it is not measurable (emulated and stand-in tiers are not run again)."""
        held = {}
        for tier, runner in zip(self.built.tiers, self.runners):
            board = getattr(runner, "board", None)
            why = price.stand_in(tier, {"ran_with": runner.description, "native": runner.native, "board": board})
            timing = None if why else price.time_on_board(runner, self.first_inputs[tier.name]) if board else \
                price.time_runner(runner.run, self.first_inputs[tier.name])
            held[tier.name] = {**price.judged(timing and timing["median_s"], tier.priced_s, why),
                                  **({"timing": timing} if timing else {})}
        return held


def verify(build_dir: str | Path, inputs_path: str | None = None, model_path: str | None = None,
           emulators: dict | None = None, strict: bool = False, boards: dict | None = None) -> VerifyReport:
    """Run the chain on the samples of `inputs_path` (default: the build's sample_inputs.npz, else
    seeded inputs) and compare every output of every sample with onnxruntime on the original model;
    time each tier measurable here against its price (`strict`: exit 1 when one is over STRICT_RATIO)."""
    build_dir = Path(build_dir)
    built = Manifest.load(build_dir)
    model = original_model(built, model_path)
    reference_session = _reference_session(model)
    if inputs_path is not None:
        specs = seeded_feeds.session_specs(reference_session)
        samples = list(data.load_for(inputs_path, specs, "--inputs", nan_allowed=True).samples())
        source = f"{inputs_path} ({len(samples)} sample{'s' if len(samples) > 1 else ''})"
    else:
        samples, source = [_default_inputs(build_dir, reference_session)], _default_inputs_source(build_dir)
    output_names = [o.name for o in reference_session.get_outputs()]
    expected = [dict(zip(output_names, _reference_run(reference_session, feeds, source))) for feeds in samples]
    chain = Chain(built, emulators or {}, boards=boards)
    errors = output_errors(built.outputs, expected, chain.run_many(samples))
    allowed = tolerance(built, samples, expected)
    tolerance_value = allowed["relative_error"]
    held = chain.held_to_price()
    tiers = [{**t, **held[t["name"]]} for t in chain.describe()]
    report = schema.document("verify", SCHEMA_VERSION, {
        "build": str(build_dir), "tiers": tiers, "outputs": errors,
        "tolerance": allowed, "inputs": source, "samples": len(samples),
        "held_to_price": {"limit": price.STRICT_RATIO, "over": price.over_price(held), "strict": strict}})
    broken = next(((name, e) for name, e in errors.items() if e["relative_error"] is None), None)
    if broken is not None:
        report["passed"] = False
        where = f" (sample {broken[1]['worst_sample']})" if len(samples) > 1 else ""
        raise CheckFailedError(f"output '{broken[0]}' differs from onnxruntime{where}: {broken[1]['problem']}",
                               report)
    name, error = max(errors.items(), key=lambda item: item[1]["relative_error"])
    report["passed"] = error["relative_error"] <= tolerance_value
    if not report["passed"]:
        where = f" (sample {error['worst_sample']})" if len(samples) > 1 else ""
        raise CheckFailedError(f"output '{name}' differs from onnxruntime{where}: relative error "
                               f"{error['relative_error']:.3g} > {tolerance_value:g} ({allowed['basis']})", report)
    if built.adaptive is not None:
        _verify_plans(built, samples, expected, emulators or {}, report, boards)
    if strict:
        price.enforce(held, report)
    return VerifyReport.of(report, f"the report of {build_dir}")


def _verify_plans(built: Manifest, samples: list[dict], expected: list[dict], emulators: dict, report: dict,
                  boards: dict | None = None) -> None:
    """An adaptive build: every plan's chain on the same samples (the report's `plans`); the first
    plan whose outputs differ fails the check, named."""
    report["plans"] = {}
    for plan_id, variant in built.adaptive.plans.items():
        chain = Chain(variant, emulators, boards={k: v for k, v in (boards or {}).items()
                                                  if k in {t.name for t in variant.tiers if t.backend == "tvm"}})
        errors = output_errors(variant.outputs, expected, chain.run_many(samples))
        allowed = tolerance(variant, samples, expected)["relative_error"]
        worst = max(errors.items(), key=lambda item: np.inf if item[1]["relative_error"] is None
                    else item[1]["relative_error"])
        passed = worst[1]["relative_error"] is not None and worst[1]["relative_error"] <= allowed
        report["plans"][plan_id] = {"tiers": chain.describe(), "worst_relative_error": worst[1]["relative_error"],
                                    "tolerance": allowed, "passed": passed}
        if not passed:
            report["passed"] = False
            problem = worst[1]["problem"] if worst[1]["relative_error"] is None else \
                f"relative error {worst[1]['relative_error']:.3g} > {allowed:g}"
            raise CheckFailedError(f"plan '{plan_id}' of the adaptive build: output '{worst[0]}' differs from "
                                   f"onnxruntime: {problem}", report)


def _reference_session(model: Path) -> ort.InferenceSession:
    """onnxruntime on the original model: the reference every output is held to."""
    try:
        return sessions.session(model)
    except Exception as exc:  # onnxruntime's own error types
        first = first_line(exc)
        raise ToolError(f"onnxruntime cannot load the original model {model}, which verify compares the chain "
                        f"with: {first[:300]}") from None


def _reference_run(session: ort.InferenceSession, feeds: dict[str, np.ndarray], source: str) -> list:
    """onnxruntime on the original model: inputs it refuses (a zero divisor, an index out of range,
    a size the model cannot take) are the user's to change; the chain is not run on them."""
    try:
        return session.run(None, feeds)
    except Exception as exc:  # onnxruntime's own error types
        first = first_line(exc)
        raise BadInputError(f"onnxruntime cannot run the original model on the inputs ({source}): {first[:300]}; "
                            "give inputs the model takes with --inputs") from None


def tolerance(built: Manifest, samples: list[dict[str, np.ndarray]], expected: list[dict]) -> dict:
    """The relative error the chain may show against the fp32 model on these samples: float rounding
    for a lossless chain; for one with lower precisions or lossy codecs, LOSSY_MARGIN times their
    measured cost (the reference chain's largest error on the same samples), and that cost."""
    precision = Chain.least_precise(built)
    if precision == "fp32":
        return {"relative_error": FLOAT_TOLERANCE, "precision": precision, "measured_cost": 0.0,
                "basis": "fp32 layers and lossless codecs: float rounding"}
    reference = Chain(built, {}, reference=True).run_many(samples)
    measured = [e["relative_error"] for e in output_errors(built.outputs, expected, reference).values()]
    cost = max((e for e in measured if e is not None), default=0.0)
    return {"relative_error": max(FLOAT_TOLERANCE, LOSSY_MARGIN * cost), "precision": precision,
            "measured_cost": cost,
            "basis": f"{LOSSY_MARGIN:g}x the {cost:.3g} the build's {precision} choices cost in onnxruntime "
                     "(each tier's sub-model, the same codecs)"}


def validate_accuracy(build_dir: str | Path, data_path: str, model_path: str | None = None,
                      emulators: dict | None = None, samples: int | None = None) -> AccuracyReport:
    """Run held-out data through the chain and the original model; the measured accuracy drop must
    stay within the plan's accuracy budget (exit 1 otherwise), shown beside the predicted drop."""
    from edgepart import graph  # noqa: PLC0415 - the compiler side; verify alone needs only the runtime
    from edgepart.compress import scoring  # noqa: PLC0415

    build_dir = Path(build_dir)
    built = Manifest.load(build_dir)
    model = original_model(built, model_path)
    loaded = graph.load(model)
    dataset = data.load(data_path, loaded, "--validate-accuracy").head(samples)
    planned = built.accuracy
    metric = planned.metric or ("accuracy" if dataset.labels is not None else "cosine")
    if metric == "accuracy" and dataset.labels is None:
        raise BadInputError(f"--validate-accuracy {data_path}: the plan's metric is accuracy; the file has no "
                            "'labels' array")
    reference = data.run(loaded.model, dataset)
    chain = Chain(built, emulators or {})
    outputs = chain.run_many(list(dataset.samples()))
    measured_outputs = {name: np.stack([o[name] for o in outputs]) for name in reference}
    score = scoring.scorer(metric, reference, dataset.labels, dataset.source)
    fp32, compressed = score(reference), score(measured_outputs)
    drop, budget = fp32 - compressed, planned.budget
    report = schema.document("accuracy", SCHEMA_VERSION, {
        "build": str(build_dir), "data": dataset.describe(), "tiers": chain.describe(), "metric": metric,
        "fp32": fp32, "compressed": compressed, "measured_drop": drop, "predicted_drop": planned.predicted_drop,
        "budget": budget, "passed": budget is None or drop <= budget})
    if not report["passed"]:
        raise CheckFailedError(f"accuracy budget exceeded on {data_path}: measured drop {100 * drop:.2f}% > budget "
                               f"{100 * budget:.2f}% (predicted {100 * (planned.predicted_drop or 0):.2f}%; "
                               f"{metric} {compressed:.4f} vs fp32 {fp32:.4f})", report)
    return AccuracyReport.of(report, f"the accuracy report of {build_dir}")


def original_model(built: Manifest, model_path: str | None) -> Path:
    """The model a build was made from (or `model_path`, if it moved), checked by its sha256."""
    model = Path(model_path or built.model_path)
    if not model.is_file():
        raise BadInputError(f"{model}: the original model is missing; pass --model")
    actual = manifest.sha256(model)
    if actual != built.model_sha256:
        raise BadInputError(f"{model}: sha256 {actual[:12]} differs from the model this build was made from "
                            f"({built.model_sha256[:12]}, {built.model_path})"
                            + ("" if model_path else "; if it moved, pass it with --model"))
    built.check_inputs(graph_input_names(onnx.load(str(model), load_external_data=False)), model)
    return model


def _received(value: np.ndarray, spec: TensorSpec) -> np.ndarray:
    """What a tier gets for one input: the value after every link's codec on the way up."""
    for codec in spec.codecs.values():
        value = codecs.roundtrip(value, codec)
    return value


def _default_inputs(build_dir: Path, session: ort.InferenceSession) -> dict[str, np.ndarray]:
    """A calibration sample stored at compile time (int8 ranges fit it), else seeded inputs."""
    stored = manifest.sample_inputs_path(build_dir)
    if stored is None:
        return seeded_feeds.for_session(session)
    return next(data.load_for(str(stored), seeded_feeds.session_specs(session), "the build's").samples())


def _default_inputs_source(build_dir: Path) -> str:
    stored = build_dir / manifest.SAMPLE_INPUTS
    return f"{manifest.SAMPLE_INPUTS} (a calibration sample)" if stored.is_file() else "seeded"


def _least_precise(current: str, choice: str) -> str:
    order = ["fp32", "raw", "fp16", "int8"]
    choice = "fp32" if choice == "raw" else choice
    return choice if order.index(choice) > order.index(current) else current

