"""Per-layer TVM kernel times on this host's CPU, in a process of its own:
`python -m edgepart.profile.tvm_kernels SPEC.json` prints {"layers": {layer: [seconds per run]},
"kernels": the kernel library record as compile writes it, or null} as JSON.

TVM 0.27 keeps no ONNX names and has no VM profiler (docs/cli.md, `--backend tvm`). So the import names the
binding that holds each ONNX node's result (the bindings a converter emits before it belong to the
same node), the model is compiled without operator fusion so each kernel serves one node, and a VM
instrument times every kernel call; calls are matched in order to the main function's call_tir
bindings by kernel name (a binding the VM runs as a builtin, a reshape, has no kernel and costs 0).
The caller scales these unfused times to the deployed, fused artifact's measured total.

A CPU tier's convolutions and matrix products run in edgepart's kernel library, not in TVM's
kernels (edgepart.toolchain.offload); when the spec names the library (`kernels`: what compile
decides for the target) the module is offloaded here exactly as compile does, before the unfused
lowering. One library call computes a pattern's operators (conv + bias add + ReLU/SiLU, matmul +
bias + ReLU), which may belong to several ONNX nodes (a Conv and the Relu after it):
`offloaded_sites` finds each call site's bindings in the module before partitioning, and the
call's time is split over their nodes by each operator's work (multiply-adds for the convolution or
matrix product, output elements for an elementwise epilogue), as the kernel spends it.
"""

from __future__ import annotations

import json
import sys
import time
from collections import defaultdict
from pathlib import Path

TAG = "epnode"
SITE = "@offloaded"  # calls[] entry of a kernel library call site: SITE + its index in offloaded_sites


def named_import(model, shapes: dict, dtypes: dict):
    """Relax module whose node-result bindings are named TAG<i>; and the ONNX node names by i."""
    from tvm import relax  # noqa: PLC0415
    from tvm.relax.frontend.onnx import onnx_frontend  # noqa: PLC0415

    nodes: list[str] = []
    convert = onnx_frontend.ONNXGraphImporter._convert_operator

    def named(self, op_name, inputs, attrs, opset):
        result = convert(self, op_name, inputs, attrs, opset)
        bindable = (relax.Call, relax.Var)
        if isinstance(result, relax.Tuple) and result.fields and isinstance(result.fields[0], bindable):
            nodes.append(attrs["tvm_custom"]["name"])  # several outputs: the first one names the node
            first = self.bb.emit(result.fields[0], name_hint=f"{TAG}{len(nodes) - 1}")
            return relax.Tuple([first, *result.fields[1:]])
        if not isinstance(result, bindable):
            return result  # constants and shapes: their bindings, if any, go to the next node
        nodes.append(attrs["tvm_custom"]["name"])
        return self.bb.emit(result, name_hint=f"{TAG}{len(nodes) - 1}")

    onnx_frontend.ONNXGraphImporter._convert_operator = named
    try:
        module = onnx_frontend.from_onnx(model, shape_dict=shapes, dtype_dict=dtypes)
    finally:
        onnx_frontend.ONNXGraphImporter._convert_operator = convert
    return module, nodes


def owners(module, nodes: list[str]) -> dict[str, str]:
    """Binding name -> ONNX node, for the main function right after import."""
    owner, waiting = {}, []
    for block in module["main"].body.blocks:
        for binding in block.bindings:
            waiting.append(binding.var.name)
            if binding.var.name.startswith(TAG):
                for name in waiting:
                    owner[name] = nodes[int(binding.var.name[len(TAG):])]
                waiting = []
    return owner


def offloaded_sites(folded, partitioned) -> list[list[tuple[str, float]]]:
    """Per call site of the kernel library in `partitioned`'s main, in order: (binding name, work)
    of the bindings of `folded` (the module just before partitioning) that the call computes.

    FuseOpsByPattern shares one function between structurally equal call sites and names the
    call's result afresh, so sites are matched by data flow: a site's arguments (its input, its
    an earlier site's result; weights and biases are bound into the site) are what its bindings read."""
    from tvm import relax  # noqa: PLC0415

    before = [b for block in folded["main"].body.blocks for b in block.bindings]
    after = [b for block in partitioned["main"].body.blocks for b in block.bindings]

    def codegen_call(binding) -> bool:
        value = binding.value
        return (isinstance(value, relax.Call) and isinstance(value.op, relax.GlobalVar)
                and "Codegen" in (partitioned[value.op].attrs or {}))

    kept = {b.var for b in after if not codegen_call(b)}
    grouped = [b for b in before if b.var not in kept and isinstance(b.value, relax.Call)]
    taken: set = set()
    result_of: dict = {}  # a site's result var -> the var of its last binding in `folded`
    sites = []
    for site in filter(codegen_call, after):
        wanted = [call.op.name for call in _operator_calls(partitioned[site.value.op])]
        known = {result_of.get(arg, arg) for arg in site.value.args}
        group = []
        for binding in grouped:
            if not wanted:
                break
            if binding.var in taken or binding.value.op.name not in wanted:
                continue
            operands = [a for a in binding.value.args if isinstance(a, relax.Var)]  # constants are bound in
            if all(a in known for a in operands):
                wanted.remove(binding.value.op.name)
                group.append(binding)
                taken.add(binding.var)
                known.add(binding.var)
        if wanted or not group:
            raise RuntimeError(f"cannot find the bindings of kernel library call {site.value.op.name_hint}")
        result_of[site.var] = group[-1].var
        sites.append([(b.var.name, _work(b.value)) for b in group])
    return sites


def _operator_calls(func) -> list:
    from tvm import ir, relax  # noqa: PLC0415

    calls = []
    relax.analysis.post_order_visit(func.body, lambda e: calls.append(e) if isinstance(e, relax.Call)
                                    and isinstance(e.op, ir.Op) else None)
    return calls


def _work(call) -> float:
    """Multiply-adds of a convolution or matrix product; output elements of anything else."""
    import math  # noqa: PLC0415

    def dims(expr) -> list[int]:
        return [int(d) for d in expr.ty.shape.values]

    out = math.prod(dims(call))
    if call.op.name == "relax.nn.conv2d":
        return float(out * math.prod(dims(call.args[1])[1:]))
    if call.op.name == "relax.matmul":
        return float(out * dims(call.args[0])[-1])
    return float(out)


def profile(spec: dict) -> dict:
    """Per-layer seconds of the model's unfused kernels; when TVM cannot import or lower the file as
    it is, of onnxruntime's constant-folded copy, as compile does (tvm_worker.import_onnx)."""
    import onnx  # noqa: PLC0415

    from edgepart.toolchain import tvm_worker  # noqa: PLC0415

    try:
        return _profile(onnx.load(spec["onnx"]), spec)
    except Exception as exc:  # TVM raises its own error types
        original = exc
    try:
        return _profile(tvm_worker.onnxruntime_folded(spec["onnx"]), spec)
    except Exception:  # the folded copy does not help: report why the original failed
        raise original from None


def _profile(model, spec: dict) -> dict:
    import numpy as np  # noqa: PLC0415
    import tvm  # noqa: PLC0415
    from tvm import relax  # noqa: PLC0415
    from tvm.relax.backend.cpu_generic import pipeline as cpu  # noqa: PLC0415

    from edgepart.toolchain import cpu_pipeline, tvm_worker  # noqa: PLC0415

    module, nodes = named_import(model, spec["input_shapes"], spec["input_dtypes"])
    owner = owners(module, nodes)
    sites: list[list[tuple[str, float]]] = []
    library = None
    if spec.get("kernels"):  # as compile builds a CPU tier (tvm_worker.compile_onnx)
        module, library = tvm_worker.cpu_kernels(module, spec["kernels"],
                                                 lambda folded, partitioned: sites.extend(
                                                     offloaded_sites(folded, partitioned)))
    calls: list[tuple[str, str]] = []  # (binding, kernel) in execution order

    @tvm.transform.module_pass(opt_level=0)
    def record_calls(mod, _ctx):
        call_tir, dps_packed = tvm.ir.Op.get("relax.call_tir"), tvm.ir.Op.get("relax.call_dps_packed")
        for block in mod["main"].body.blocks:
            for binding in block.bindings:
                value = binding.value
                if isinstance(value, relax.Call) and value.op == call_tir:
                    calls.append((binding.var.name, value.args[0].name_hint))
                elif isinstance(value, relax.Call) and value.op == dps_packed:  # the kernel library
                    calls.append((f"{SITE}{sum(c[0].startswith(SITE) for c in calls)}", value.args[0].global_symbol))
        return mod

    target = tvm.target.Target(spec["target"])

    @tvm.transform.module_pass(opt_level=0)
    def unfused(mod, _ctx):
        with target:
            return tvm.transform.Sequential(
                cpu.library_dispatch_passes(target)
                + [relax.transform.LegalizeOps(customize_legalize_map=cpu_pipeline.FAST_LEGALIZATION),
                   relax.transform.AnnotateTIROpPattern(),
                   relax.transform.FoldConstant(), record_calls]
                + cpu.dataflow_lower_passes(target) + cpu.finalize_passes(target))(mod)

    executable = tvm.compile(module, target, relax_pipeline=unfused)
    vm = relax.VirtualMachine(executable, tvm.cpu())
    events: list[list] = []

    def instrument(func, symbol, before, result, *args):
        if before:
            events.append([symbol, time.perf_counter()])
        else:
            events[-1][1] = time.perf_counter() - events[-1][1]
        return 0

    rng = np.random.default_rng(0)
    inputs = [tvm.runtime.tensor(rng.standard_normal(shape).astype(spec["input_dtypes"][name])
                                 if np.dtype(spec["input_dtypes"][name]).kind == "f"
                                 else np.zeros(shape, dtype=spec["input_dtypes"][name]))
              for name, shape in spec["input_shapes"].items()]
    for _ in range(spec["warmup"]):
        vm["main"](*inputs)
    vm.set_instrument(instrument)
    per_run: dict[str, list[float]] = defaultdict(lambda: [0.0] * spec["repeat"])
    for run in range(spec["repeat"]):
        events.clear()
        vm["main"](*inputs)
        position = 0
        for symbol, seconds in events:
            if symbol.startswith("vm.builtin"):
                continue
            while position < len(calls) and calls[position][1] != symbol:
                position += 1
            if position == len(calls):
                raise RuntimeError(f"kernel {symbol} does not match the compiled call sequence")
            binding = calls[position][0]
            if binding.startswith(SITE):  # one library call: its time over the nodes it computes
                bindings = sites[int(binding[len(SITE):])]
                total = sum(work for _, work in bindings) or 1.0
                for name, work in bindings:
                    per_run[owner.get(name, "?")][run] += seconds * work / total
            else:
                per_run[owner.get(binding, "?")][run] += seconds
            position += 1
    layers = {name: per_run.get(name, [0.0] * spec["repeat"]) for name in dict.fromkeys(nodes)}
    return {"layers": layers, "kernels": library}


def main() -> None:
    print(json.dumps(profile(json.loads(Path(sys.argv[1]).read_text()))))


if __name__ == "__main__":
    main()
