"""`edgepart compile MODEL --plan plan.json -o build/` and `edgepart verify build/`."""

from __future__ import annotations

import time
from typing import Any

import click

from edgepart import api, graph
from edgepart.cli import text
from edgepart.cli.options import needs
from edgepart.cli.output import LOG_AFTER_S, OutputOptions, emit, output_options
from edgepart.errors import CheckFailedError
from edgepart.plan.plan_file import Plan


@click.command("compile")
@click.argument("model", type=click.Path(dir_okay=False))
@click.option("--plan", "plan_path", required=True, type=click.Path(dir_okay=False),
              help="The plan file (edgepart plan -o) made for MODEL.")
@click.option("-o", "--output", default="build", show_default=True, type=click.Path(file_okay=False),
              help="Build folder; replaced only when the new build is complete.")
@click.option("--input-shape", "input_shapes", multiple=True, metavar="NAME=DxDx...",
              help="The same --input-shape the plan was made with.")
@click.option("--tune", "tune_trials", type=int, default=0, show_default=True,
              help="MetaSchedule trials per kernel for CPU tiers this host runs, and with --tracker those a farm's "
                   "boards run (0: untuned).")
@click.option("--tuning-db", type=click.Path(file_okay=False),
              help="Tuning database folder (default: ~/.cache/edgepart/tuning, shared by all models).")
@click.option("--calibration", "calibration_path", type=click.Path(dir_okay=False),
              help="Calibration data for int8 layers (.npz: an array per model input, samples first).")
@click.option("--byoc-report", is_flag=True,
              help="Only report, per tier, what each BYOC backend (TensorRT, NNAPI, cuBLAS, cuDNN, "
                   "CUTLASS) would take.")
@click.option("--tracker", metavar="HOST:PORT",
              help="With --tune: measure the candidates on the boards of a TVM RPC tracker's --key, a worker per "
                   "board; candidates are linked here with the tier target's (cross) compiler.")
@click.option("--key", help="With --tracker: the key the boards registered under.")
@click.option("--on", "on_tiers", multiple=True, metavar="TIER",
              help="With --tracker: a CPU tier to tune on the boards (repeatable; default: every CPU tier this "
                   "host cannot run; the others are tuned here).")
@output_options
def compile_command(out: OutputOptions, model: str, plan_path: str, output: str, input_shapes: tuple[str, ...],
                    tune_trials: int, tuning_db: str | None, calibration_path: str | None, byoc_report: bool,
                    tracker: str | None, key: str | None, on_tiers: tuple[str, ...]) -> None:
    """Cut MODEL into per-tier sub-models as the plan says and compile each for its tier's target."""
    needs("--tuning-db", "tuning_db", tune_trials > 0, "with --tune")
    needs("--tracker", "tracker", tune_trials > 0, "with --tune")
    building = (("--tune", "tune_trials"), ("--tuning-db", "tuning_db"), ("--calibration", "calibration_path"))
    for option, name in building:
        needs(option, name, not byoc_report, "when building (not with --byoc-report)")
    loaded = graph.load(model, graph.parse_input_shapes(input_shapes))
    if byoc_report:
        from edgepart.compile.build import byoc_report as report  # noqa: PLC0415

        emit(out, report(loaded, Plan.load(plan_path)), render_byoc)
        return

    started = time.monotonic()

    def progress(message: str) -> None:  # in a log, only once the compile proves long
        if out.show_progress or (out.log_progress and time.monotonic() - started > LOG_AFTER_S):
            click.echo(f"edgepart: {message}", err=True)

    built = api.compile(loaded, plan_path, output, tune=tune_trials, tuning_db=tuning_db,
                        calibration=calibration_path, tracker=tracker, key=key, on=on_tiers,
                        progress=progress)
    emit(out, built.doc, lambda d: render_manifest(d, output))


def render_byoc(doc: dict[str, Any]) -> str:
    names = sorted({b for tier in doc["tiers"] for b in tier["backends"]})
    rows = []
    for tier in doc["tiers"]:
        cells = []
        for name in names:
            entry = tier["backends"][name]
            cells.append("error" if "error" in entry else f"{entry['operator_calls']}/{tier['operator_calls']}")
        rows.append((tier["tier"], tier["layers"], *cells))
    return ("operator calls each BYOC backend's partitioner would take (none can be built from the apache-tvm "
            "wheel)\n" + text.table(["tier", "layers", *names], rows, right=tuple(range(1, len(names) + 2))))


def render_manifest(doc: dict[str, Any], output: str) -> str:
    rows = [(t["name"], t["target"]["preset"], t["backend"], t["layers"], t["artifact"], text.size(t["bytes"]),
             t["elf_machine"] or "-", t["verification"], _ms(t.get("priced_s")), *_measured(t.get("timing")))
            for t in doc["tiers"]]
    notes = [f"  {t['name']}: not measurable here: {t['timing']['not_measurable']}" for t in doc["tiers"]
             if t.get("timing") and t["timing"]["not_measurable"]]
    return f"built {output}/manifest.json\n" + "\n".join([text.table(
        ["tier", "target", "backend", "layers", "artifact", "size", "ELF", "checked by", "priced", "measured here",
         "/ price"], rows, right=(3, 5, 8, 9, 10)), *notes, *_adaptive_lines(doc.get("adaptive"))])


def _adaptive_lines(adaptive: dict[str, Any] | None) -> list[str]:
    """An adaptive build: its plans, their tiers' artifacts (shared between plans), the breakpoints."""
    if not adaptive:
        return []
    rows = [(plan_id, ", ".join(f"{t['name']} {t['artifact'].split('/')[-2]}" for t in entry["tiers"]),
             f"{entry['line']['fixed_s'] * 1e3:.3f} ms + {text.size(entry['line']['bits'] / 8)} / bandwidth")
            for plan_id, entry in adaptive["plans"].items()]
    table = " | ".join(f"{row['from_bps'] / 1e6:.4g}-{row['to_bps'] / 1e6:.4g} Mbit/s: {row['plan']}"
                       for row in adaptive["breakpoints"])
    return ["", f"adaptive build over link {adaptive['link']}: {len(rows)} plans (start {adaptive['start']}, "
                f"fallback {adaptive['fallback']}); {table}",
            text.table(["plan", "tiers (artifact folder)", "predicted latency"], rows)]


def _measured(timing: dict[str, Any] | None) -> tuple[str, str]:
    """The artifact's time here and its ratio to the price, or why there is none."""
    if not timing or timing["measured_s"] is None:
        return "-", "not measurable here" if timing and timing["not_measurable"] else "-"
    return _ms(timing["measured_s"]), (f"{timing['ratio']:.2f}x" if timing["ratio"] is not None else "-")


def _ms(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds * 1e3:.3f} ms"


@click.command("verify")
@click.argument("build_dir", type=click.Path(file_okay=False))
@click.option("--inputs", "inputs_path", type=click.Path(dir_okay=False),
              help="An .npz file with an array per model input: one sample at the input's shape, or samples "
                   "along the first axis, each verified (default: the build's sample_inputs.npz, stored by "
                   "compile --calibration; else seeded inputs).")
@click.option("--model", "model_path", type=click.Path(dir_okay=False),
              help="The original model, if it moved since compile.")
@click.option("--validate-accuracy", "accuracy_data", type=click.Path(dir_okay=False),
              help="Held-out data (.npz, like --calibration, with 'labels' for task accuracy): measure the "
                   "chain's accuracy drop against the plan's budget (exit 1 when over it).")
@click.option("--samples", type=int, help="With --validate-accuracy: use only the first N samples.")
@click.option("--strict", is_flag=True,
              help="Exit 1 when a tier this host can measure (its device is 'local', its artifact runs natively) "
                   "runs over 1.5x the plan's price for it.")
@click.option("--tracker", metavar="HOST:PORT",
              help="Run TVM tiers on a board of a farm (TVM's RPC tracker) instead of under emulation; with --key.")
@click.option("--key", help="With --tracker: the key of the boards of the tiers' device.")
@click.option("--on", "on_tiers", multiple=True, metavar="TIER",
              help="With --tracker: the tier to run on the board (repeatable; default: every TVM tier this host "
                   "cannot run itself).")
@output_options
def verify_command(out: OutputOptions, build_dir: str, inputs_path: str | None, model_path: str | None,
                   accuracy_data: str | None, samples: int | None, strict: bool, tracker: str | None,
                   key: str | None, on_tiers: tuple[str, ...]) -> None:
    """Run the tier chain of BUILD_DIR and compare its outputs with onnxruntime on the original model."""
    render = render_accuracy if accuracy_data else render_verify
    try:
        report = api.verify(build_dir, inputs=inputs_path, model=model_path, strict=strict,
                            validate_accuracy=accuracy_data, samples=samples, tracker=tracker, key=key, on=on_tiers)
    except CheckFailedError as exc:
        if out.json and exc.details:
            emit(out, exc.details, render)
        raise
    emit(out, report.doc, render)


def _against_price(tier: dict[str, Any]) -> str:
    if tier.get("not_measurable"):
        return f"priced {_ms(tier.get('priced_s'))}, not measurable here ({tier['not_measurable']})"
    return (f"{_ms(tier['measured_s'])} measured, priced {_ms(tier['priced_s'])}: {tier['ratio']:.2f}x"
            + (" (over 1.5x)" if tier["over"] else ""))


def render_accuracy(report: dict[str, Any]) -> str:
    lines = [f"{t['name']}: {t['ran_with']}" for t in report["tiers"]]
    predicted = report["predicted_drop"]
    budget = report["budget"]
    lines += [f"{report['metric']} on {report['data']['samples']} samples of {report['data']['source']}: "
              f"fp32 {report['fp32']:.4f}, this build {report['compressed']:.4f}",
              f"drop: measured {100 * report['measured_drop']:.2f}%, predicted "
              f"{'-' if predicted is None else f'{100 * predicted:.2f}%'}, budget "
              f"{'none' if budget is None else f'{100 * budget:.2f}%'}",
              "PASSED" if report["passed"] else "FAILED"]
    return "\n".join(lines)


def render_verify(report: dict[str, Any]) -> str:
    lines = [f"{t['name']}: {t['ran_with']}; " + _against_price(t) for t in report["tiers"]]
    for name, error in report["outputs"].items():
        lines.append(f"output {name}: max abs error {error['max_abs_error']:.3g}, "
                     f"relative {error['relative_error']:.3g}")
    tolerance = report["tolerance"]
    for plan_id, plan in report.get("plans", {}).items():
        error = plan["worst_relative_error"]
        lines.append(f"plan {plan_id} ({', '.join(t['name'] for t in plan['tiers'])}): "
                     f"{'-' if error is None else f'{error:.3g}'} relative, {'passed' if plan['passed'] else 'FAILED'}")
    lines.append(f"{'PASSED' if report['passed'] else 'FAILED'} on {report['inputs']} (tolerance "
                 f"{tolerance['relative_error']:g}, {tolerance['precision']})")
    return "\n".join(lines)


