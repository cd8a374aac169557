"""`edgepart plan MODEL --deploy deploy.toml`: where each layer runs and in what precision."""

from __future__ import annotations

import logging
from typing import Any

import click

from edgepart import api, graph, schema
from edgepart.cli import text
from edgepart.cli.inspect_cmd import input_shape_option
from edgepart.cli.options import needs
from edgepart.cli.output import OutputOptions, emit, output_options
from edgepart.cli.sweep_cmd import bandwidth_range
from edgepart.errors import CheckFailedError
from edgepart.plan import solvers

log = logging.getLogger(__name__)
OBJECTIVES = ("latency", "energy", "throughput", "weighted")


@click.command("plan")
@click.argument("model", type=click.Path(dir_okay=False))
@click.option("--deploy", "deploy_path", required=True, type=click.Path(dir_okay=False),
              help="The deployment: tiers, links, budgets, pins (deploy.toml).")
@click.option("--solver", type=click.Choice(solvers.SOLVERS), default="auto", show_default=True,
              help="auto: exact min-cut, or the ILP when budgets or throughput need it.")
@click.option("--objective", type=click.Choice(OBJECTIVES), default="latency", show_default=True,
              help="latency (one inference at a time), device energy, throughput (pipelined), or weighted.")
@click.option("--energy-weight", type=float, default=0.0, show_default=True,
              help="For --objective weighted: seconds a joule of device energy is worth.")
@click.option("--time-limit", type=float, default=60.0, show_default=True, help="ILP time limit in seconds.")
@click.option("--profiles", "profiles_dir", type=click.Path(file_okay=False),
              help="Folder of profile files (edgepart profile -o); a tier whose device has one uses it.")
@click.option("--sensitivity", "sensitivity_path", type=click.Path(dir_okay=False),
              help="Measured accuracy costs of precisions and codecs (edgepart sensitivity -o); needed for "
                   "an accuracy budget to mean anything.")
@click.option("--allow-lossy", is_flag=True,
              help="Without --sensitivity, still allow the deployment's lower precisions and lossy codecs, "
                   "priced as costing no accuracy (otherwise a plan without accuracy data stays lossless).")
@click.option("--sweep", "sweep_range",
              help="Also plan every distinct split over this range of a link's bandwidth, LOW..HIGH with units "
                   "(e.g. 1Mbit/s..100Mbit/s), and the device-only fallback: compile builds them all and "
                   "`run --adapt` switches between them as the link changes.")
@click.option("--sweep-link", help="With --sweep: the link whose bandwidth changes (default: the first).")
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="Write the plan file here.")
@click.option("--explain", is_flag=True,
              help="Print a readable breakdown: tiers, cuts, baselines (on stderr with --json).")
@click.option("--svg", type=click.Path(dir_okay=False),
              help="Draw the plan into this SVG file: a lane per tier with its totals, layers (blocks of layers "
                   "by name prefix for a large model), each tensor sent over a link once with its size and codec.")
@click.option("--reproducible", is_flag=True,
              help="Write 0 for solver.seconds so plan files are byte-identical (also SOURCE_DATE_EPOCH).")
@input_shape_option
@output_options
def plan_command(out: OutputOptions, model: str, deploy_path: str, solver: str, objective: str,
                 energy_weight: float, time_limit: float, profiles_dir: str | None, sensitivity_path: str | None,
                 allow_lossy: bool, sweep_range: str | None, sweep_link: str | None, output: str | None,
                 explain: bool, svg: str | None,
                 reproducible: bool, input_shapes: tuple[str, ...]) -> None:
    """Decide where each layer of MODEL runs and in what precision, for the tiers of a deployment."""
    needs("--energy-weight", "energy_weight", objective == "weighted", "with --objective weighted")
    needs("--time-limit", "time_limit", solver in ("auto", "ilp"), "for the ilp solver (--solver ilp or auto)")
    needs("--sweep-link", "sweep_link", sweep_range is not None, "with --sweep")
    sweep = bandwidth_range(sweep_range, "--sweep") if sweep_range is not None else None
    loaded = graph.load(model, graph.parse_input_shapes(input_shapes))
    try:
        planned = api.plan(loaded, deploy_path, profiles=profiles_dir or (), sensitivity=sensitivity_path,
                           objective=objective, energy_weight=energy_weight, solver=solver, time_limit_s=time_limit,
                           reproducible=reproducible, allow_lossy=allow_lossy, sweep=sweep, sweep_link=sweep_link,
                           output=output)
    except CheckFailedError as exc:
        if out.json and exc.details:  # a pipeline gets the reason as JSON too (exit code 1 all the same)
            emit(out, exc.details, render)
        raise
    doc = planned.doc
    if svg:
        from edgepart.plan.drawing import plan_svg  # noqa: PLC0415

        schema.write_atomic(svg, plan_svg(loaded.graph, planned))
    if out.json:
        emit(out, doc, render)
        if explain:  # stdout holds only the JSON document; the breakdown asked for goes to stderr
            click.echo(render(doc), err=True)
    elif explain:
        click.echo(render(doc))
    else:
        click.echo(summary(doc, output))
    if planned.unmet_budgets:
        raise CheckFailedError(f"budget not met: {', '.join(planned.unmet_budgets)}")


def summary(doc: dict[str, Any], output: str | None) -> str:
    p = doc["predicted"]
    split = ", ".join(f"{tier}: {info['layers']} layers" for tier, info in p["per_tier"].items())
    where = f" -> {output}" if output else ""
    lossy = doc.get("lossy") or {}
    left = " (lossy choices left out: no sensitivity data; --explain)" if (
        "precisions_left_out" in lossy or "codecs_left_out" in lossy) else ""
    line = (f"{doc['solver']['name']} ({doc['solver']['status']}): latency {_ms(p['latency_s'])}, "
            f"device energy {_mj(p['energy_j'])}; {split}{left}{where}")
    return "\n".join([line, *adaptive_lines(doc.get("adaptive"))])


def adaptive_lines(adaptive: dict[str, Any] | None) -> list[str]:
    """The sweep's plans: which is cheapest over which bandwidth of the link, and the fallback."""
    if not adaptive:
        return []
    rows = [(f"{row['from_bps'] / 1e6:.4g} - {row['to_bps'] / 1e6:.4g}", row["plan"],
             " / ".join(f"{tier} {layers}" for tier, layers in _layers(adaptive["plans"][row["plan"]]).items()))
            for row in adaptive["breakpoints"]]
    return [f"adaptive: {len(adaptive['plans'])} plan(s) over link {adaptive['link']} (start {adaptive['start']}, "
            f"fallback {adaptive['fallback']}: every layer on the device)",
            text.table(["Mbit/s", "plan", "layers per tier"], rows)]


def _layers(doc: dict[str, Any]) -> dict[str, int]:
    return {tier: info["layers"] for tier, info in doc["predicted"]["per_tier"].items()}


def render(doc: dict[str, Any]) -> str:
    p = doc["predicted"]
    lines = [f"model {doc['model']['path']}  objective: {doc['objective']}  solver: {doc['solver']['name']} "
             f"({doc['solver']['status']})", ""]
    rows = [(tier, info.get("backend") or "-", info["layers"], text.count(info["macs"]), _ms(info["compute_s"]),
             text.size(info["memory_bytes"])) for tier, info in p["per_tier"].items()]
    lines += [text.table(["tier", "backend", "layers", "MACs", "compute", "memory"], rows, right=(2, 3, 4, 5))]
    lines += [f"  {tier}: {source}" for tier, source in doc.get("costs", {}).get("source", {}).items()] + [""]
    for cut in doc["cuts"]:
        moved = sum(t["bytes"] for t in cut["up"])
        lines.append(f"link {cut['link']} ({cut['from']} -> {cut['to']}): {len(cut['up'])} tensor(s) up, "
                     f"{text.size(moved)}, {_ms(p['per_link'][cut['link']]['transfer_s'])}"
                     + (f", overhead {_ms(cut['overhead_s'])}" if cut["used"] else ", unused"))
        for t in cut["up"]:
            lines.append(f"    {t['tensor']}  {'x'.join(map(str, t['shape']))}  {t['codec']}  {text.size(t['bytes'])}")
        for t in cut["down"]:
            lines.append(f"    (result down) {t['tensor']}  {text.size(t['bytes'])}")
    lines += ["", f"predicted: latency {_ms(p['latency_s'])}, device energy {_mj(p['energy_j'])}, "
                  f"throughput {_ms(p['throughput_s'])}/inference", ""]
    rows = []
    for name, base in doc["baselines"].items():
        if base.get("latency_s") is None:
            rows.append((name, "infeasible", "-", "-"))
            continue
        speedup = base["latency_s"] / p["latency_s"] if p["latency_s"] else float("nan")
        rows.append((name + ("" if base["feasible"] else " (breaks a pin or budget)"), _ms(base["latency_s"]),
                     _mj(base["energy_j"]), f"{speedup:.2f}x"))
    lines.append(text.table(["baseline", "latency", "energy", "plan speed-up"], rows, right=(1, 2, 3)))
    for name, budget in doc["budgets"].items():
        lines.append(f"budget {name}: limit {budget['limit']:.4g}, predicted {budget['predicted']:.4g} "
                     f"({'met' if budget['met'] else 'NOT MET'})")
    lines += _lossy_lines(doc.get("lossy"))
    lines += adaptive_lines(doc.get("adaptive"))
    return "\n".join(lines)


def _lossy_lines(lossy: dict[str, Any] | None) -> list[str]:
    """Why the plan could or could not choose lower precisions and lossy codecs."""
    if not lossy:
        return []
    if lossy["allowed"]:
        return [f"lossy choices allowed: {lossy['ground']}"]
    left = [f"{tier}: {', '.join(precisions)}" for tier, precisions in lossy.get("precisions_left_out", {}).items()]
    if lossy.get("codecs_left_out"):
        left.append(f"codecs: {', '.join(lossy['codecs_left_out'])}")
    if not left:
        return []
    return [f"lossy choices left out ({'; '.join(left)}): {lossy['ground']}; plan --sensitivity FILE to price "
            "them, or --allow-lossy to take them as free"]


def _ms(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds * 1e3:.3f} ms"


def _mj(joules: float | None) -> str:
    return "-" if joules is None else f"{joules * 1e3:.2f} mJ"
