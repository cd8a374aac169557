"""Per-layer TVM kernel times on this host's CPU, in a process of its own:
`python -m edgepart.profile.tvm_kernels SPEC.json` prints {layer: [seconds per run]} as JSON.

TVM 0.27 keeps no ONNX names and has no VM profiler (TVM.md section 10). So the import names the
binding that holds each ONNX node's result (the bindings a converter emits before it belong to the
same node), the model is compiled without operator fusion so each kernel serves one node, and a VM
instrument times every kernel call; calls are matched in order to the main function's call_tir
bindings by kernel name (a binding the VM runs as a builtin, a reshape, has no kernel and costs 0).
The caller scales these unfused times to the deployed, fused artifact's measured total.
"""

from __future__ import annotations

import json
import sys
import time
from collections import defaultdict
from pathlib import Path

TAG = "epnode"


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


def profile(spec: dict) -> dict[str, list[float]]:
    import numpy as np  # noqa: PLC0415
    import onnx  # noqa: PLC0415
    import tvm  # noqa: PLC0415
    from tvm import relax  # noqa: PLC0415
    from tvm.relax.backend.cpu_generic import pipeline as cpu  # noqa: PLC0415

    model = onnx.load(spec["onnx"])
    module, nodes = named_import(model, spec["input_shapes"], spec["input_dtypes"])
    owner = owners(module, nodes)
    calls: list[tuple[str, str]] = []  # (binding, kernel) in execution order

    @tvm.transform.module_pass(opt_level=0)
    def record_calls(mod, _ctx):
        call_tir = tvm.ir.Op.get("relax.call_tir")
        for block in mod["main"].body.blocks:
            for binding in block.bindings:
                value = binding.value
                if isinstance(value, relax.Call) and value.op == call_tir:
                    calls.append((binding.var.name, value.args[0].name_hint))
        return mod

    target = tvm.target.Target(spec["target"])

    @tvm.transform.module_pass(opt_level=0)
    def unfused(mod, _ctx):
        with target:
            return tvm.transform.Sequential(
                cpu.library_dispatch_passes(target)
                + [relax.transform.LegalizeOps(), relax.transform.AnnotateTIROpPattern(),
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
            per_run[owner.get(calls[position][0], "?")][run] += seconds
            position += 1
    return {name: per_run.get(name, [0.0] * spec["repeat"]) for name in dict.fromkeys(nodes)}


def main() -> None:
    print(json.dumps(profile(json.loads(Path(sys.argv[1]).read_text()))))


if __name__ == "__main__":
    main()
