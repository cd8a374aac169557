"""`edgepart sensitivity MODEL --data calib.npz -o sens.json`: the accuracy each per-layer precision
and each cut-tensor codec costs, for `edgepart plan --sensitivity`."""

from __future__ import annotations

import logging
from typing import Any

import click

from edgepart import api, graph
from edgepart.cli import text
from edgepart.cli.inspect_cmd import input_shape_option
from edgepart.cli.output import OutputOptions, emit, output_options, progress_bar
from edgepart.compress import scoring, sensitivity
from edgepart.plan.plan_file import Plan

log = logging.getLogger(__name__)


@click.command("sensitivity")
@click.argument("model", type=click.Path(dir_okay=False))
@click.option("--data", "data_path", type=click.Path(dir_okay=False),
              help="Calibration data (.npz: an array per model input, samples first; optional 'labels'). "
                   f"Without it, {api.SEEDED_SAMPLES} seeded inputs and the cosine metric.")
@click.option("--samples", type=int, help="Use only the first N samples.")
@click.option("--metric", type=click.Choice(sorted(scoring.METRICS)),
              help="Default: accuracy when the data has labels, else cosine.")
@click.option("--precision", default="fp16,int8", show_default=True, help="Precisions to measure per layer.")
@click.option("--max-seconds", type=float,
              help="The time to take (default 120): every choice is run on the whole model where that fits, "
                   "else probe layers are and the other choices are estimated (marked in the file).")
@click.option("--exact", is_flag=True,
              help="Run every choice; with --max-seconds stop then with what was measured, the layers nearest "
                   "the input first (plans leave the rest out).")
@click.option("--confirm", "confirm_path", type=click.Path(dir_okay=False),
              help="A plan made with this model's sensitivity file: run its lossy choices on the whole model "
                   "instead of estimating them, and list each estimate beside the run (plan again after).")
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="Write the sensitivity file here.")
@input_shape_option
@output_options
def sensitivity_command(out: OutputOptions, model: str, data_path: str | None, samples: int | None,
                        metric: str | None, precision: str, max_seconds: float | None, exact: bool,
                        confirm_path: str | None, output: str | None,
                        input_shapes: tuple[str, ...]) -> None:
    """Measure the accuracy drop of each layer in fp16/int8 and of each tensor codec, one at a time."""
    which = tuple(p.strip() for p in precision.split(",") if p.strip())
    loaded = graph.load(model, graph.parse_input_shapes(input_shapes))
    with progress_bar(out, sensitivity.steps(loaded, which), "sensitivity") as update:
        doc = api.sensitivity(loaded, data=data_path, samples=samples, metric=metric, precisions=which,
                              max_seconds=max_seconds, exact=exact, confirm=confirm_path, output=output,
                              progress=update).doc
    log.info("measured in %.1f s", doc["seconds"])
    coverage = doc["coverage"]
    if not coverage["complete"]:
        log.warning("--max-seconds: %d of %d choices measured; plans leave the others out", coverage["measured"],
                    coverage["choices"])
    elif coverage.get("estimated"):
        log.warning("the choices between every %d-th layer's were estimated, not run (--exact runs them all)",
                    coverage["probe_every"])
    for each in doc.get("confirmed", []):  # the plan's own choices that were estimated: the estimate beside the run
        if each["estimate"] is not None:
            where = f"layer {each['layer']}" if "layer" in each else f"tensor {each['tensor']}"
            log.warning("confirmed %s %s: %+.3f%% run (estimated %+.3f%%)", where, each["choice"],
                        100 * (each["run"] or 0.0), 100 * each["estimate"])
    if confirm_path and doc.get("composed"):
        latest, (scale, _) = doc["composed"][-1], sensitivity.Sensitivity.of(doc).interaction()
        budget = Plan.load(confirm_path).accuracy_budget
        verdict = ("" if budget is None else f"; {'within' if latest['bound'] <= budget else 'OVER'} the plan's "
                   f"{100 * budget:.2f}% budget" + ("" if latest["bound"] <= budget else ": plan again with this file"))
        log.warning("the plan's %d choices together: %+.3f%% (upper 95%% bound %+.3f%%) against %+.3f%% as the sum "
                    "of each alone; plans made with this file scale every drop by %.3g%s", latest["choices"],
                    100 * latest["together"], 100 * latest["bound"], 100 * latest["alone"], scale, verdict)
    emit(out, doc, render)


def render(doc: dict[str, Any]) -> str:
    metric = doc["metric"]
    lines = [f"model {doc['model']['path']}  data: {doc['data']['source']} ({doc['data']['samples']} samples)",
             f"metric: {metric['name']} ({metric['description']}); fp32: {metric['fp32']:.4f}", ""]
    rows = []
    for name, entry in doc["layers"].items():
        int8 = entry.get("int8")
        rows.append((name, _drop(entry.get("fp16")),
                     "-" if int8 is None else (_drop(int8) if int8["applies"] else "stays fp32")))
    lines += [text.table(["layer", "fp16 drop", "int8 drop"], rows, right=(1, 2)), ""]
    rows = []
    for name, entry in doc["tensors"].items():
        codecs = entry["codecs"]
        rows.append((name, text.size(entry["bytes"]), _drop(codecs["fp16"]), _drop(codecs["int8"]),
                     *(f"{entry['bytes'] / codecs[c]['bytes']:.2f}x" for c in ("zlib", "fp16+zlib", "int8+zlib"))))
    lines.append(text.table(["tensor", "raw", "fp16 drop", "int8 drop", "zlib", "fp16+zlib", "int8+zlib"], rows,
                            right=(1, 2, 3, 4, 5, 6)))
    return "\n".join(lines)


def _drop(result: dict | None) -> str:
    """A drop in percent; "~" marks an estimate (not run on the whole model)."""
    if result is None:
        return "-"
    return ("~" if result.get("estimated") else "") + f"{100 * result['drop']:+.2f}%"
