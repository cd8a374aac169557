"""`edgepart inspect MODEL`: the model's layers with their MACs, parameters and output sizes."""

from __future__ import annotations

from typing import Any

import click

from edgepart import graph, schema
from edgepart.cli import text
from edgepart.cli.output import OutputOptions, emit, output_options

SCHEMA_VERSION = 1


def input_shape_option(command):
    return click.option(
        "--input-shape", "input_shapes", multiple=True, metavar="NAME=DxDx...",
        help="Fix an input's dynamic dimensions, e.g. input=1x3x224x224 (repeatable).",
    )(command)


@click.command("inspect")
@click.argument("model", type=click.Path(dir_okay=False))
@input_shape_option
@output_options
def inspect_command(out: OutputOptions, model: str, input_shapes: tuple[str, ...]) -> None:
    """Show every layer of MODEL (an ONNX file) with its cost, and the totals."""
    loaded = graph.load(model, graph.parse_input_shapes(input_shapes))
    emit(out, inspect_document(loaded), render)


def inspect_document(loaded: graph.LoadedModel) -> dict[str, Any]:
    g = loaded.graph
    nodes = [
        {
            "name": n.name,
            "op_type": n.op_type,
            "inputs": list(n.inputs),
            "outputs": [
                {"name": t, "shape": list(g.tensors[t].shape), "dtype": g.tensors[t].dtype,
                 "bytes": g.tensors[t].nbytes}
                for t in n.outputs
            ],
            "macs": n.macs,
            "flops": n.flops,
            "params": n.params,
            "param_bytes": n.param_bytes,
            "output_bytes": n.output_bytes,
        }
        for n in g.layers
    ]
    return schema.document("inspect", SCHEMA_VERSION, {
        "model": loaded.describe(), "totals": g.totals(), "nodes": nodes,
    })


def render(doc: dict[str, Any]) -> str:
    model, totals = doc["model"], doc["totals"]

    def io(items: list[dict]) -> str:
        return ", ".join(f"{t['name']} {t['dtype']}[{text.shape(t['shape'])}]" for t in items)

    rows = [
        (i, n["name"], n["op_type"], " ".join(text.shape(o["shape"]) for o in n["outputs"]),
         text.count(n["macs"]) if n["macs"] else "-", text.count(n["params"]) if n["params"] else "-",
         text.size(n["output_bytes"]))
        for i, n in enumerate(doc["nodes"], 1)
    ]
    header = [
        f"model:   {model['path']}  (opset {model['opset']}, sha256 {model['sha256'][:12]})",
        f"inputs:  {io(model['inputs'])}",
        f"outputs: {io(model['outputs'])}",
        "",
    ]
    footer = (
        f"\ntotal: {totals['nodes']} layers, {text.count(totals['macs'])} MACs, "
        f"{text.count(totals['flops'])} FLOPs, {text.count(totals['params'])} params "
        f"({text.size(totals['param_bytes'])})"
    )
    body = text.table(["#", "node", "op", "output", "MACs", "params", "out bytes"], rows, right=(0, 4, 5, 6))
    return "\n".join(header) + body + footer
