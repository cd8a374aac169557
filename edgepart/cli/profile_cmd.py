"""`edgepart profile MODEL --device NAME`: per-layer latency and energy, measured or predicted."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from edgepart import api, graph, schema
from edgepart.cli import text
from edgepart.cli.inspect_cmd import input_shape_option
from edgepart.cli.options import needs
from edgepart.cli.output import OutputOptions, emit, output_options, progress_bar
from edgepart.errors import BadInputError
from edgepart.profile.ort_profiler import LEVELS


@click.command("profile")
@click.argument("models", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("--device", default="local", show_default=True,
              help="'local' (this host, measured) or a device profile name or path (with --predict).")
@click.option("--backend", type=click.Choice(["onnxruntime", "tvm"]), default="onnxruntime", show_default=True,
              help="Runtime to measure with.")
@click.option("--predict", is_flag=True, help="Predict from the device profile instead of measuring.")
@click.option("--calibrate-with", "calibration", type=click.Path(dir_okay=False),
              help="With --predict: a measured profile (of another model on this device) to fit the "
                   "device's per-op-class efficiencies on first.")
@click.option("--precision", default="fp32", show_default=True, help="Comma-separated precisions: fp32,fp16,int8.")
@click.option("--threads", type=int, default=1, show_default=True,
              help="Intra-op threads (fixed); with --predict, the threads the prediction is for.")
@click.option("--warmup", type=int, default=10, show_default=True,
              help="Rounds discarded before measuring (about 5 s of them at most).")
@click.option("--repeat", type=int, default=50, show_default=True,
              help="Measured rounds per pass (on a large model about 30 s of them, at least 10).")
@click.option("--optimization", type=click.Choice(sorted(LEVELS)), default="all", show_default=True,
              help="onnxruntime graph optimisation level of the profiled session.")
@click.option("--check-segments", type=int, default=0, show_default=True,
              help="Cut K random contiguous segments out, time them, report predicted vs measured.")
@click.option("--data", "data_path", type=click.Path(dir_okay=False),
              help="With --precision int8: calibration data for the quantisation ranges (default: seeded inputs).")
@click.option("--rpc", metavar="HOST:PORT", help="Profile on a remote board over TVM RPC (implies --backend tvm).")
@click.option("--tracker", metavar="HOST:PORT",
              help="Profile on a farm: the boards registered with this TVM RPC tracker under --key, as many models "
                   "at once as there are boards (implies --backend tvm; needs --target).")
@click.option("--key", help="With --tracker: the key the boards registered under.")
@click.option("--target", help="With --backend tvm: the compile target preset (default x86-64; required with --rpc "
                               "and --tracker).")
@click.option("-o", "--output", type=click.Path(), help="Write the profile file here (several models, with --tracker: "
                                                        "a folder, each model's profile in MODEL.json).")
@input_shape_option
@output_options
def profile_command(out: OutputOptions, models: tuple[str, ...], device: str, backend: str, predict: bool,
                    calibration: str | None, precision: str,
                    threads: int, warmup: int, repeat: int, optimization: str, check_segments: int,
                    data_path: str | None, rpc: str | None, tracker: str | None, key: str | None, target: str | None,
                    output: str | None, input_shapes: tuple[str, ...]) -> None:
    """Per-layer latency and energy of MODEL on a device: measured (onnxruntime, TVM, RPC, a farm of
    boards) or predicted. Several models: on a farm (--tracker), into the folder -o names."""
    if len(models) > 1:
        _profile_on_farm(out, models, tracker, key, target, device, warmup, repeat, output)
        return
    model = models[0]
    precisions = [p.strip() for p in precision.split(",") if p.strip()]
    measured_with_ort = not predict and backend == "onnxruntime" and rpc is None and tracker is None
    needs("--optimization", "optimization", measured_with_ort, "when onnxruntime measures (not with --predict or TVM)")
    needs("--check-segments", "check_segments", measured_with_ort, "when onnxruntime measures")
    needs("--data", "data_path", measured_with_ort and "int8" in precisions, "with --precision int8 (measured)")
    needs("--target", "target", not predict and (backend == "tvm" or rpc is not None or tracker is not None),
          "with --backend tvm, --rpc or --tracker")
    needs("--warmup", "warmup", not predict, "when measuring (not with --predict)")
    needs("--repeat", "repeat", not predict, "when measuring (not with --predict)")
    api.output_apart(output, model, calibration, data_path)
    profiler = api.profiler(device=device, backend=backend, predict=predict, calibrate_with=calibration,
                            precisions=precisions, threads=threads, warmup=warmup, repeat=repeat,
                            optimization=optimization, check_segments=check_segments, data=data_path, target=target,
                            rpc=rpc, tracker=tracker, key=key)
    loaded = graph.load(model, graph.parse_input_shapes(input_shapes))
    with progress_bar(out, profiler.rounds(loaded), profiler.label) as update:
        profile = profiler.profile(loaded, update)
    if output:
        profile.dump(output)
    emit(out, profile.doc, render)


def _profile_on_farm(out: OutputOptions, models: tuple[str, ...], tracker: str | None, key: str | None,
                     target: str | None, device: str, warmup: int, repeat: int, output: str | None) -> None:
    if tracker is None or output is None:
        raise BadInputError("several models are profiled on a farm: give --tracker HOST:PORT --key KEY --target T "
                            "and -o FOLDER")
    if target is None:
        raise BadInputError("--tracker needs --target, the preset the key's boards run (e.g. aarch64, rpi4)")

    def done(outcome) -> None:
        if not out.quiet:
            lost = f" (lost on {len(outcome.lost_on)} board(s) first)" if outcome.lost_on else ""
            click.echo(f"{outcome.unit.path.name}: {'measured on ' + outcome.board if outcome.board else 'failed'}"
                       f"{lost}", err=True)

    def started(outcome, board: str) -> None:
        if not out.quiet:
            click.echo(f"{outcome.unit.path.name}: measuring on {board}", err=True)

    found = api.profile_on_farm(models, output, tracker=tracker, key=key or "", target=target, device=device,
                                warmup=warmup, repeat=repeat, done=done, started=started)
    summary = schema.document("farm_profiles", 1, {"tracker": tracker, "key": key, "target": target, "profiles": [
        {"model": p.model_path, "output": p.source, "board": p.farm["board"], "lost_on": p.farm["lost_on"],
         "end_to_end_s": p.end_to_end_s} for p in found]})
    emit(out, summary, render_farm)


def render_farm(summary: dict[str, Any]) -> str:
    rows = [(Path(p["model"]).name, p["board"], len(p["lost_on"]), f"{p['end_to_end_s'] * 1e3:.3f} ms", p["output"])
            for p in summary["profiles"]]
    return text.table(["model", "measured on", "lost on", "end to end", "profile"], rows, right=(2, 3))


def _calibrated_times(layer: dict[str, Any]) -> tuple[str, str, str]:
    """ms, p10 ms, p90 ms of a layer on one scale: the calibrated median and the measured p10/p90
    scaled by the same factor (calibrated_s / median_s), so that p10 <= ms <= p90 reads as it should."""
    ms = f"{layer['calibrated_s'] * 1e3:.4f}"
    if "median_s" not in layer:  # predicted: one number, no spread
        return ms, "-", "-"
    factor = layer["calibrated_s"] / layer["median_s"] if layer["median_s"] > 0 else 1.0
    return ms, f"{layer['p10_s'] * factor * 1e3:.4f}", f"{layer['p90_s'] * factor * 1e3:.4f}"


def render(doc: dict[str, Any]) -> str:
    p = doc["provenance"]
    lines = [f"{doc['model']['path']} on {doc['device']}: {p['method']}"]
    for precision, body in doc["precisions"].items():
        layers = body["layers"]
        top = sorted(layers.items(), key=lambda item: -item[1]["calibrated_s"])[:10]
        rows = [(name, *_calibrated_times(v), f"{v['energy_j'] * 1e3:.4f}") for name, v in top]
        total = sum(v["calibrated_s"] for v in layers.values())
        lines += ["", f"{precision}: {len(layers)} layers, {total * 1e3:.3f} ms in all; slowest:",
                  text.table(["layer", "ms", "p10 ms", "p90 ms", "mJ"], rows, right=(1, 2, 3, 4))]
    if doc["predicted"]:
        lines += ["", "ms: predicted from the device profile, what the planner uses (a prediction has no p10/p90)"]
    else:
        lines += ["", "ms: what the planner uses, the layer's median run times the calibration factor; p10/p90: "
                      "the spread of its runs,", "scaled by the same factor so the three columns share one scale "
                      "(the raw median_s, p10_s, p90_s are in the JSON)"]
    if not doc["predicted"]:
        lines += ["", f"end to end {p['end_to_end']['median_s'] * 1e3:.3f} ms (median of {p['end_to_end']['n']}); "
                      f"sum of layers + per-run overhead is {p['sum_error'] * 100:+.1f}% off; "
                      f"calibration factor {p['calibration_factor']:.3f}"]
        if p.get("idle"):
            idle = p["idle"]
            lines.append(f"after {idle['gap_s'] * 1e3:g} ms idle a run takes {idle['after_gap_s'] * 1e3:.3f} ms, "
                         f"{idle['penalty_s'] * 1e3:.3f} ms more than back to back; the plan scales these layer "
                         f"times by {idle['factor']:.3f}, pricing a tier as it runs between requests")
        if p["segment_median_abs_error"] is not None:
            lines.append(f"{len(p['segments'])} segments: median |predicted - measured| / measured = "
                         f"{p['segment_median_abs_error'] * 100:.1f}%")
    return "\n".join(lines)
