"""compile(model, plan) -> build folder: validate the plan, cut one sub-model per tier, apply its
precisions, compile each for its tier's target, and write manifest.json. Everything is written
into a temporary folder that replaces the output folder only when complete."""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from edgepart import schema
from edgepart.compile import cut, manifest, tier_check
from edgepart.compile.staging import staged
from edgepart.compress import data, precision
from edgepart.errors import BadInputError, ToolError
from edgepart.graph import LoadedModel
from edgepart.hardware import backends as backend_kinds
from edgepart.hardware import deploy
from edgepart.hardware.deploy import Deployment
from edgepart.plan.plan_file import Plan, PlannedTier
from edgepart.plan.validate import validate
from edgepart.toolchain import compilers, targets
from edgepart.wording import with_article

Timer = Callable[[Path, dict, dict | None], dict]
log = logging.getLogger(__name__)
FAILED = ".failed"  # in the build folder: the sub-model and compiler output of a tier that failed


def compile_plan(loaded: LoadedModel, plan: Plan, out_dir: str | Path,
                 progress: Callable[[str], None] = lambda message: None, tune_trials: int = 0,
                 tuning_db: Path | None = None, calibration: data.Dataset | None = None,
                 timer: Timer | None = None, tune_on: tuple[str, str, tuple[str, ...]] | None = None) -> dict[str, Any]:
    """`tune_trials` > 0: MetaSchedule-tune each kernel of the CPU tiers this host can run.
    `calibration`: samples of the model's inputs, for the activation ranges of int8 layers.
    `timer(build folder, tier entry, inputs)`: the artifact's measured time against its price on the
    inputs it was checked on, added to the tier's entry as `timing` (the CLI passes
    edgepart.runtime.price.time_tier; compile does not time tiers itself). `tune_on`: (tracker, key,
    tiers): the tuning of those tiers (none named: the CPU tiers this host cannot run) measures
    candidates on the boards of that key (edgepart.profile.farm)."""
    validate(plan, loaded, planned_deployment(plan))
    variants = plan.adaptive.plans if plan.adaptive else {}
    for variant in variants.values():  # planned at other bandwidths: held to the model, not to the file's link
        validate(variant, loaded)
    out_dir = Path(out_dir)
    if out_dir.exists() and not (out_dir / manifest.FILE).is_file() and {p.name for p in out_dir.iterdir()} - {FAILED}:
        raise BadInputError(f"{out_dir}: exists and is not an edgepart build folder; refusing to replace it")
    with staged(out_dir) as staging:
        tracker, key, on = tune_on or (None, None, ())
        tvm = compilers.TvmCompiler(tune_trials, tuning_db, tracker=tracker, key=key, on=on)
        builder = _Builder(loaded, staging, out_dir, tvm, calibration, timer, progress, shared=bool(variants))
        doc = manifest.new_document(loaded, plan, builder.entries(plan),
                                    None if calibration is None else calibration.describe())
        if variants:
            doc["adaptive"] = manifest.adaptive_document(plan.adaptive, {
                plan_id: (variant, builder.entries(variant)) for plan_id, variant in variants.items()})
        if calibration is not None:  # inputs within the int8 ranges, for verify
            np.savez(staging / manifest.SAMPLE_INPUTS, **next(calibration.samples()))
        schema.write_json(staging / manifest.FILE, doc)
    return doc


class _Builder:
    """Builds the tiers of one plan or of several (an adaptive build). With `shared`, a tier's folder
    is named by what determines its artifact (edgepart.compile.build.tier_key) and built once: plans
    that cut a tier the same way ship one artifact."""

    def __init__(self, loaded: LoadedModel, staging: Path, out_dir: Path, tvm: compilers.TvmCompiler,
                 calibration: data.Dataset | None, timer: Timer | None, progress: Callable[[str], None],
                 shared: bool) -> None:
        self.loaded, self.staging, self.out_dir, self.tvm = loaded, staging, out_dir, tvm
        self.calibration, self.timer, self.progress, self.shared = calibration, timer, progress, shared
        self.built: dict[Path, dict[str, Any]] = {}  # folder -> what was built there

    def entries(self, plan: Plan) -> list[dict[str, Any]]:
        """The manifest's tier entries of `plan`, building what is not built yet."""
        tiers = {t.name: t for t in plan.tiers}
        presets = {t.name: targets.resolve(t.target, f"{plan.source}: tier '{t.name}' target") for t in plan.tiers}
        tier_cuts = cut.cut(self.loaded, plan)
        tier_data = _tier_calibration(self.loaded, plan, tier_cuts, self.calibration)
        check_samples = _check_samples(self.loaded, tier_cuts, self.calibration)
        entries = []
        for tier_cut in tier_cuts:
            tier, preset = tiers[tier_cut.tier], presets[tier_cut.tier]
            folder = self.staging / (Path("tiers") / tier_key(tier_cut, tier, preset, plan, self.tvm, tier_data)[:16]
                                     if self.shared else Path(tier_cut.tier))
            fresh = folder not in self.built
            if fresh:
                self.progress(f"tier {tier_cut.tier}: {len(tier_cut.layers)} layers -> {preset.name}")
                try:
                    self.built[folder] = _build_tier(tier_cut, tier, preset, plan, folder, self.staging, self.tvm,
                                                     tier_data.get(tier_cut.tier), check_samples.get(tier_cut.tier))
                except ToolError as failed:
                    raise _kept(failed, folder, self.out_dir / FAILED / tier_cut.tier) from None
            entry = _entry(self.built[folder], tier_cut, tier, plan)
            if fresh and self.timer is not None:  # timed once; later plans sharing the tier reuse it
                entry["timing"] = self.built[folder]["timing"] = self.timer(self.staging, entry,
                                                                            check_samples.get(tier_cut.tier))
            entries.append(entry)
        return entries


def tier_key(tier_cut: cut.TierCut, tier: PlannedTier, preset: targets.TargetPreset, plan: Plan,
             tvm: compilers.TvmCompiler, tier_data: dict[str, data.Dataset]) -> str:
    """sha256 of what determines a tier's artifact: its sub-model as cut, its layers' precisions (and
    the calibration data of int8 ones), the target, the backends it may ship and the tuning."""
    digest = hashlib.sha256(tier_cut.model.SerializeToString(deterministic=True))
    calibration = tier_data.get(tier_cut.tier)
    digest.update(json.dumps({
        "precisions": {layer: plan.precision_of(layer) for layer in tier_cut.layers},
        "target": preset.name, "backends": [tier.backend, *tier.candidates],
        "tuning": [tvm.tune_trials, str(tvm.tuning_db or ""), tvm.kernels],
        "calibration": None if calibration is None else calibration.source,
    }, sort_keys=True).encode())
    return digest.hexdigest()


def _kept(failed: ToolError, tier_folder: Path, kept: Path) -> ToolError:
    """The tier's sub-model and the compiler's whole output, kept where the user can take them to
    the compiler by hand (the staging folder goes); the error says where. -v logs the output."""
    output = (failed.details or {}).get("compiler_output")
    if output:
        log.info("the compiler's output:\n%s", output.rstrip())
    if not (tier_folder / "submodel.onnx").is_file():
        return failed
    shutil.rmtree(kept, ignore_errors=True)
    kept.mkdir(parents=True)
    shutil.copyfile(tier_folder / "submodel.onnx", kept / "submodel.onnx")
    if output:
        (kept / "compiler.log").write_text(output)
    what = "sub-model and the compiler's output are" if output else "sub-model is"
    return ToolError(f"{failed} (the tier's {what} in {kept}/{'; -v prints the output' if output else ''})",
                     failed.details)


def planned_deployment(plan: Plan) -> Deployment | None:
    """The deployment file the plan was made for, where it still is at the path the plan recorded:
    validate then refuses the plan when the file has changed since (both hashes named) and holds the
    plan to its budgets. None, with a warning, where the file is not there (a plan moved to another
    machine): the plan's own record of the deployment is used as it is."""
    path = plan.deployment_path
    if not path or not Path(path).is_file():
        log.warning("%s: the deployment it was made for (%s) is not here; its hash and budgets are not "
                    "re-checked", plan.source, path or "no path recorded")
        return None
    return deploy.load(path)


def byoc_report(loaded: LoadedModel, plan: Plan) -> dict[str, Any]:
    """Per tier, the operator calls each BYOC backend's partitioner would take (nothing is built)."""
    validate(plan, loaded)
    tiers = []
    with tempfile.TemporaryDirectory() as tmp:
        for tier_cut in cut.cut(loaded, plan):
            path = Path(tmp) / f"{tier_cut.tier}.onnx"
            onnx.save(tier_cut.model, path)
            tiers.append({"tier": tier_cut.tier, "layers": len(tier_cut.layers), **compilers.byoc_coverage(path)})
    return schema.document("byoc_report", 1, {"model": {"path": str(loaded.path), "sha256": loaded.sha256},
                                              "tiers": tiers})


def _tier_calibration(loaded: LoadedModel, plan: Plan, tier_cuts: list[cut.TierCut],
                      calibration: data.Dataset | None) -> dict[str, data.Dataset]:
    """Per tier with int8 layers, its own inputs computed from the calibration samples (fp32 model)."""
    needed = [c for c in tier_cuts if plan.int8_layers(c.layers)]
    if not needed:
        return {}
    if calibration is None:
        count = sum(len(plan.int8_layers(c.layers)) for c in needed)
        raise BadInputError(f"{plan.model_path}: the plan puts {count} layer(s) in "
                            f"int8 (tier '{needed[0].tier}', ...); pass calibration data with --calibration DATA.npz")
    inner = sorted({name for c in needed for name in c.inputs} - set(calibration.inputs))
    values = {**calibration.inputs, **(data.run(loaded.model, calibration, inner) if inner else {})}
    return {c.tier: data.Dataset(f"{calibration.source} through the layers below tier '{c.tier}'",
                                 {name: values[name] for name in c.inputs}, None) for c in needed}


def _check_samples(loaded: LoadedModel, tier_cuts: list[cut.TierCut],
                   calibration: data.Dataset | None) -> dict[str, dict[str, np.ndarray]]:
    """Per tier, its inputs on the first calibration sample: what compile checks a library on (made-up
    inputs can be invalid sizes or indices); none without calibration data."""
    if calibration is None:
        return {}
    first = calibration.head(1)
    inner = sorted({name for c in tier_cuts for name in c.inputs} - set(first.inputs))
    values = {**first.inputs, **(data.run(loaded.model, first, inner) if inner else {})}
    return {c.tier: {name: values[name][0] for name in c.inputs} for c in tier_cuts}


def _build_tier(tier_cut: cut.TierCut, tier: PlannedTier, preset: targets.TargetPreset, plan: Plan, folder: Path,
                staging: Path, tvm: compilers.TvmCompiler, calibration: data.Dataset | None,
                sample: dict[str, np.ndarray] | None) -> dict[str, Any]:
    """The tier's sub-model and artifact in `folder`, and what the manifest records of them
    (the parts of a tier entry that do not depend on the plan; edgepart.compile.build._entry)."""
    folder.mkdir(parents=True)
    model = precision.apply(tier_cut.model, plan.precisions, tier_cut.tier, calibration)
    submodel = folder / "submodel.onnx"
    onnx.save(model, submodel)
    backend = tier.backend
    if backend in backend_kinds.BUILT and backend not in backend_kinds.supported(preset):
        raise ToolError(f"tier '{tier_cut.tier}': the plan chose {backend}, which has no build for target "
                        f"{preset.name} (it has: {', '.join(backend_kinds.supported(preset))})")
    if backend not in backend_kinds.KNOWN:
        raise BadInputError(f"tier '{tier_cut.tier}': the plan names backend {backend!r}; known: "
                            f"{', '.join(backend_kinds.KNOWN)}; make the plan again with edgepart plan")
    counts: dict[str, int] = {}
    for layer in tier_cut.layers:
        p = plan.precision_of(layer)
        counts[p] = counts.get(p, 0) + 1
    artifact, choice = _artifact(tier_cut.tier, tier, preset, submodel, tvm, _least_precise(counts), sample)
    machine = artifact.details.get("elf_machine")
    if artifact.backend == "tvm" and preset.elf_machine and machine != preset.elf_machine:
        raise BadInputError(f"tier '{tier_cut.tier}': built {with_article(str(machine))} library for target "
                            f"{preset.name}, expected {preset.elf_machine}")
    return {
        "target": {"preset": preset.name, "tvm": preset.target, "host": preset.host},
        "runtime_device": preset.device,
        "backend": artifact.backend,
        "artifact": str(artifact.path.relative_to(staging)),
        "artifact_sha256": manifest.sha256(artifact.path),
        "bytes": artifact.path.stat().st_size,
        "elf_machine": machine,
        "backend_choice": choice,
        "verification": preset.verification if artifact.backend == "tvm" else "run",
        "notes": preset.notes,
        "submodel": str(submodel.relative_to(staging)),
        "submodel_sha256": manifest.sha256(submodel),
        "layers": len(tier_cut.layers),
        "precisions": counts,
        "inputs": [_io(model, name) for name in tier_cut.inputs],
        "outputs": [_io(model, name) for name in tier_cut.outputs],
        # the compiler's record, with paths inside the build as the build will hold them
        "build": {k: _in_build(v, staging) if k in ("artifact", "out") else v for k, v in artifact.details.items()},
    }


def _entry(built: dict[str, Any], tier_cut: cut.TierCut, tier: PlannedTier, plan: Plan) -> dict[str, Any]:
    """The manifest's entry of a tier of `plan` whose artifact is `built`: where the plan puts it,
    its price, and the codecs its inputs crossed on the plan's links."""
    entry = {"name": tier_cut.tier, "index": tier_cut.index, "device": tier.device, **built,
             "threads": tier.threads if built["backend"] == "onnxruntime" else 1,
             "priced_s": plan.priced_s(tier_cut.tier), "price_source": plan.price_source(tier_cut.tier)}
    entry["inputs"] = [{**spec, "codecs": plan.codecs_into(tier_cut.index, spec["name"])} for spec in built["inputs"]]
    return entry


def _artifact(name: str, tier: PlannedTier, preset: targets.TargetPreset, submodel: Path,
              tvm: compilers.TvmCompiler, precision: str, sample: dict | None) -> tuple[compilers.Artifact, dict]:
    """The tier built with the plan's backend, checked (edgepart.compile.tier_check); where that
    backend cannot take the tier (TVM cannot import or build an operator, or its library fails the
    check), with the next of the tier's candidates that this target builds. The manifest's record:
    the plan's backend, each one refused and why, and the shipped artifact's check. With no
    candidate left, the first refusal is the error."""
    order = [tier.backend, *(b for b in tier.candidates if b != tier.backend and b in backend_kinds.BUILT
                             and b in backend_kinds.supported(preset))]
    refused: list[dict] = []
    first_failure: ToolError | None = None
    for backend in order:
        artifact = None
        try:
            artifact = (tvm.for_tier(name, preset) if backend == "tvm" else compilers.compiler(backend)).compile(
                submodel, preset, submodel.parent, "model")
            checked = tier_check.check(artifact, submodel, preset, precision, sample)
        except (ToolError, tier_check.Disqualified) as exc:
            failed = exc if not isinstance(exc, tier_check.Disqualified) else ToolError(
                f"the {backend} build of tier '{name}' for {preset.name} fails its check: {exc}", exc.details)
            if artifact is not None:  # the refused library does not stay in the build
                artifact.path.unlink(missing_ok=True)
            first_failure = first_failure or failed
            refused.append({"backend": backend, "reason": str(failed),
                            "operators": (failed.details or {}).get("operators", [])})
            continue
        for earlier in refused:
            log.warning("tier '%s': %s refused (%s); built with %s, which the tier also allows", name,
                        earlier["backend"], earlier["reason"], backend)
        return artifact, {"planned": tier.backend, "refused": refused, "check": checked}
    assert first_failure is not None
    if len(order) == 1:
        allowed = ("the tier allows no other backend" if len(tier.candidates) == 1 else
                   f"target {preset.name} builds no other of its backends")
        raise ToolError(f"{first_failure}; {allowed}", first_failure.details)
    raise first_failure


def _least_precise(counts: dict[str, int]) -> str:
    return next(p for p in ("int8", "fp16", "fp32") if counts.get(p)) if counts else "fp32"


def _in_build(value: Any, staging: Path) -> Any:
    """A path the compiler recorded in the staging folder, relative to the build; else as it is."""
    if isinstance(value, str) and Path(value).is_relative_to(staging):
        return str(Path(value).relative_to(staging))
    return value


def _io(model: onnx.ModelProto, name: str) -> dict[str, Any]:
    info = next(vi for vi in [*model.graph.input, *model.graph.output] if vi.name == name)
    return {"name": name, "shape": [d.dim_value for d in info.type.tensor_type.shape.dim],
            "dtype": onnx.helper.tensor_dtype_to_np_dtype(info.type.tensor_type.elem_type).name}


