"""Which layers each BYOC accelerator backend would take from a tier (run in a process of its own:
`python -m edgepart.toolchain.byoc_worker SUBMODEL.onnx`, prints JSON).

TVM's partitioners run here; their code generators (TensorRT, NNAPI, cuBLAS, cuDNN, CUTLASS, CoreML)
are not built into the apache-tvm wheel, so no artifact can be produced for them (docs/targets.md).
"""

from __future__ import annotations

import json
import sys
from collections import Counter


def partitioners() -> dict:
    from tvm.relax.backend.contrib.nnapi import partition_for_nnapi
    from tvm.relax.backend.contrib.tensorrt import partition_for_tensorrt
    from tvm.relax.backend.cuda.cublas import partition_for_cublas
    from tvm.relax.backend.cuda.cudnn import partition_for_cudnn
    from tvm.relax.backend.cuda.cutlass import partition_for_cutlass

    return {"tensorrt": partition_for_tensorrt, "nnapi": partition_for_nnapi, "cublas": partition_for_cublas,
            "cudnn": partition_for_cudnn, "cutlass": partition_for_cutlass}


def coverage(path: str) -> dict:
    import onnx
    from tvm import relax
    from tvm.relax.frontend.onnx import from_onnx

    from edgepart.toolchain.compilers import io_types

    model = onnx.load(path)
    shapes, dtypes = io_types(model)
    mod = from_onnx(model, shape_dict=shapes, dtype_dict=dtypes)
    total = _op_calls(mod["main"])
    report = {"operator_calls": sum(total.values()), "backends": {}}
    for name, partition in partitioners().items():
        try:
            partitioned = partition(mod)
        except Exception as exc:  # noqa: BLE001 - a partitioner that rejects the model takes nothing
            report["backends"][name] = {"error": f"{type(exc).__name__}: {str(exc)[:200]}"}
            continue
        # what left the main function went to the backend's functions
        taken = total - _op_calls(partitioned["main"])
        functions = sum(1 for func in partitioned.functions.values()
                        if isinstance(func, relax.Function) and func.attrs and "Codegen" in func.attrs)
        report["backends"][name] = {"functions": functions, "operator_calls": sum(taken.values()),
                                    "operators": dict(sorted(taken.items()))}
    return report


def _op_calls(func) -> Counter:
    """Calls of primitive operators in a function's own body (not in the functions it calls)."""
    import tvm
    from tvm import relax

    counts: Counter = Counter()

    def visit(expr):
        if isinstance(expr, relax.Call) and isinstance(expr.op, tvm.ir.Op):
            counts[expr.op.name] += 1

    relax.analysis.post_order_visit(func.body, visit)
    return counts


if __name__ == "__main__":
    print(json.dumps(coverage(sys.argv[1])))
