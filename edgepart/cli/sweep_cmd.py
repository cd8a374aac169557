"""`edgepart sweep MODEL --deploy D --bandwidth LO..HI`: exact plan tables over a link's bandwidth."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from edgepart import api, graph
from edgepart.cli import text
from edgepart.cli.inspect_cmd import input_shape_option
from edgepart.cli.options import needs
from edgepart.cli.output import OutputOptions, emit, output_options
from edgepart.errors import BadInputError
from edgepart.hardware import units
from edgepart.plan import solvers, sweep_plot


@click.command("sweep")
@click.argument("model", type=click.Path(dir_okay=False))
@click.option("--deploy", "deploy_path", required=True, type=click.Path(dir_okay=False),
              help="The deployment (deploy.toml).")
@click.option("--bandwidth", "bandwidth", default="0.5 Mbit/s..1 Gbit/s", show_default=True,
              help="Uplink range to sweep, LOW..HIGH with units.")
@click.option("--link", "link_name", help="Which link to sweep (default: the first, from the device).")
@click.option("--objective", type=click.Choice(["latency", "energy", "weighted"]), default="latency",
              show_default=True, help="What the plans minimise.")
@click.option("--energy-weight", type=float, default=0.0, help="For --objective weighted: seconds per joule.")
@click.option("--solver", type=click.Choice(solvers.SOLVERS), default="auto", show_default=True,
              help="Solver used at each breakpoint.")
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="Write the plan table (JSON) here.")
@click.option("--plot", "plot_path", type=click.Path(dir_okay=False),
              help="Draw objective-vs-bandwidth and the Pareto front (PNG, SVG or PDF by extension).")
@input_shape_option
@output_options
def sweep_command(out: OutputOptions, model: str, deploy_path: str, bandwidth: str, link_name: str | None,
                  objective: str, energy_weight: float, solver: str, output: str | None, plot_path: str | None,
                  input_shapes: tuple[str, ...]) -> None:
    """Optimal plans of MODEL over a range of link bandwidths, with exact breakpoints."""
    needs("--energy-weight", "energy_weight", objective == "weighted", "with --objective weighted")
    low, high = bandwidth_range(bandwidth, "--bandwidth")
    if plot_path and Path(plot_path).suffix.lower() not in sweep_plot.FORMATS:
        raise BadInputError(f"--plot {plot_path}: the picture's format comes from its extension; use one of "
                            f"{', '.join(sweep_plot.FORMATS)}")
    loaded = graph.load(model, graph.parse_input_shapes(input_shapes))
    doc = api.sweep(loaded, deploy_path, low, high, link=link_name, objective=objective, energy_weight=energy_weight,
                    solver=solver, output=output)
    if plot_path:
        sweep_plot.plot(doc, plot_path)
    emit(out, doc, render)


def bandwidth_range(spec: str, option: str) -> tuple[float, float]:
    """LOW..HIGH with units, in bit/s."""
    parts = spec.split("..")
    if len(parts) != 2:
        raise BadInputError(f"{option} '{spec}': expected LOW..HIGH, e.g. 0.5Mbit/s..1Gbit/s")
    low, high = (units.parse(p.strip(), "bandwidth", option) for p in parts)
    if not 0 < low < high:
        raise BadInputError(f"{option} '{spec}': LOW must be positive and below HIGH")
    return low, high


def render(doc: dict[str, Any]) -> str:
    rows = []
    for s in doc["segments"]:
        rows.append((f"{s['from_bps'] / 1e6:.4g} - {s['to_bps'] / 1e6:.4g}",
                     " / ".join(f"{t} {n}" for t, n in s["layers_per_tier"].items()),
                     " .. ".join(f"{v * 1e3:.4g}" for v in s["objective_at_ends"])))
    unit = "ms" if "latency" in doc["objective"] or "weighted" in doc["objective"] else "mJ"
    lines = [f"{len(doc['segments'])} plan(s) over link {doc['link']} ({doc['objective']}):",
             text.table(["Mbit/s", "layers per tier", f"objective ({unit})"], rows)]
    if doc["pareto"]:
        lines += ["", f"latency-energy Pareto front: {len(doc['pareto'])} supported plan(s)"]
        lines.append(text.table(["latency ms", "energy mJ", "layers per tier"], [
            (f"{p['latency_s'] * 1e3:.4g}", f"{p['energy_j'] * 1e3:.4g}",
             " / ".join(f"{t} {n}" for t, n in p["layers_per_tier"].items())) for p in doc["pareto"]]))
    return "\n".join(lines)
