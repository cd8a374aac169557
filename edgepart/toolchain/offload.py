"""Take a CPU tier's convolutions and matrix products out of TVM's hands: Relax's pattern
partitioning marks them (with their bias and ReLU/SiLU epilogues) for an external code generator
that edgepart registers as `relax.ext.edgepart`; it writes one C wrapper per call site that calls
native/kernels.c (OpenBLAS underneath), and TVM links the object into the tier library.

Why: TVM 0.27's wheel has no untuned CPU schedules for these operators, so they run as plain loops
(ResNet-18: ~42x onnxruntime, one thread). With the kernels the zoo runs at 1.2-2x onnxruntime with
no tuning (bench/results/tvm_vs_ort_zoo.md); TVM keeps everything else (elementwise, pooling,
softmax, layer norm), and tuning, when asked, covers those.

Runs inside the TVM worker (imports TVM).
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable
from pathlib import Path

import tvm
import tvm_ffi
from tvm import relax
from tvm.relax.backend.utils import has_leaking_intermediate_variables
from tvm.relax.dpl import is_op, wildcard
from tvm.relax.transform import FusionPattern, PatternCheckContext

from edgepart.toolchain import kernel_library, offload_c, winograd

CODEGEN = "edgepart"  # the Codegen attribute; TVM looks the generator up as relax.ext.edgepart
WINOGRAD = offload_c.WINOGRAD


def offload(mod: tvm.IRModule, library: kernel_library.KernelLibrary, packed: bool = False,
            inspect: Callable[[tvm.IRModule, tvm.IRModule], None] | None = None) -> tuple[tvm.IRModule, dict]:
    """The module with every call the patterns take replaced by a call into the kernel library,
    and the count of such call sites (`offloaded_calls`; `winograd_calls` of them Winograd,
    `packed_calls` on gemm.c's packed kernels). `packed`: convolutions with constant weights get
    them packed at compile time for native/gemm.c (AVX-512 targets, edgepart.toolchain.packing).
    `inspect(folded, partitioned)`, when given, sees the module just before and just after
    partitioning (the profiler maps call sites back to ONNX nodes)."""
    tvm.register_global_func(f"relax.ext.{CODEGEN}", _codegen, override=True)
    # Constants folded first (a Gemm's transposed weights): they reach the kernels as plain tensors.
    folded = relax.transform.FoldConstant()(mod)
    # bind_constants: weights and biases come to the code generator as values, which it assembles
    # into the library (a Winograd convolution's transformed first); the VM's constant pool keeps none.
    taken = winograd_patterns() + (residual_patterns() if packed else []) + patterns()
    mod = relax.transform.FuseOpsByPattern(taken, bind_constants=True, annotate_codegen=True)(folded)
    if inspect is not None:
        inspect(folded, mod)
    winograd_calls = _winograd_functions(mod)
    packed_calls = _packed_functions(mod) if packed else 0
    options = {"library": json.dumps(library.to_spec()), "packed": "1" if packed else "0"}
    mod = relax.transform.RunCodegen({CODEGEN: options})(mod)
    return mod, {"offloaded_calls": _external_calls(mod), "winograd_calls": winograd_calls,
                 "packed_calls": packed_calls}


def patterns() -> list[FusionPattern]:
    """conv2d and matmul, each with an optional bias add and an optional ReLU; conv2d also with SiLU
    (x * sigmoid(x)), which would otherwise cost EfficientNet half its time in TVM's kernels.
    Longest first: FuseOpsByPattern takes the first pattern that matches."""
    found = []
    for bias in (True, False):
        for act in ("silu", "relu", None):
            suffix = ("_bias" if bias else "") + (f"_{act}" if act else "")
            found.append(FusionPattern(f"{CODEGEN}.conv2d{suffix}", *_pattern("relax.nn.conv2d", bias, act),
                                       _check_conv))
            if act != "silu":
                found.append(FusionPattern(f"{CODEGEN}.matmul{suffix}", *_pattern("relax.matmul", bias, act),
                                           _check_matmul))
    return sorted(found, key=lambda p: -len(p.name))


def winograd_patterns() -> list[FusionPattern]:
    """conv2d with an optional bias and ReLU, taken as Winograd F(4x4, 3x3) where its shape gains
    (edgepart.toolchain.winograd.eligible) and its weights (and bias) are constants. Tried before
    `patterns()`, whose conv2d patterns match the same calls."""
    found = [FusionPattern(f"{CODEGEN}.{WINOGRAD}" + ("_bias" if bias else "") + ("_relu" if act else ""),
                           *_pattern("relax.nn.conv2d", bias, act), _check_winograd)
             for bias in (True, False) for act in ("relu", None)]
    return sorted(found, key=lambda p: -len(p.name))


def residual_patterns() -> list[FusionPattern]:
    """conv2d (+ bias) + a residual tensor (+ ReLU): a ResNet block's last convolution and its
    shortcut, or MobileNetV2's projection and its skip, in one call whose stores add the residual
    (packed kernels only: ep_conv2d_packed takes it). Tried after the Winograd patterns, which take
    a 3x3 convolution's product faster than the add saves, and before `patterns()`."""
    found = [FusionPattern(f"{CODEGEN}.conv2d" + ("_bias" if bias else "") + "_residual" + ("_relu" if act else ""),
                           *_pattern("relax.nn.conv2d", bias, act, residual=True), _check_residual)
             for bias in (True, False) for act in ("relu", None)]
    return sorted(found, key=lambda p: -len(p.name))


def _pattern(op: str, bias: bool, act: str | None, residual: bool = False):
    lhs, rhs = wildcard(), wildcard()
    root = is_op(op)(lhs, rhs)
    annotations = {"root": root, "lhs": lhs, "rhs": rhs}
    out = root
    if bias:
        annotations["bias"] = wildcard()
        out = is_op("relax.add")(out, annotations["bias"])
    if residual:
        annotations["residual"] = wildcard()
        out = is_op("relax.add")(out, annotations["residual"]) | is_op("relax.add")(annotations["residual"], out)
    if act == "silu":
        sigmoid = is_op("relax.sigmoid")(out)
        out = is_op("relax.multiply")(out, sigmoid) | is_op("relax.multiply")(sigmoid, out)
    elif act == "relu":
        out = is_op("relax.nn.relu")(out)
    return out, annotations


def _check_conv(context: PatternCheckContext) -> bool:
    """fp32, static shapes, NCHW/OIHW (a tuned build converts layouts later, after this), bias per
    output channel, and no value inside the match used outside it (the call has one output)."""
    if has_leaking_intermediate_variables(context):
        return False
    conv = context.annotated_expr["root"]
    attrs = conv.attrs
    if (attrs.data_layout, attrs.kernel_layout, attrs.out_layout) != ("NCHW", "OIHW", "NCHW"):
        return False
    if not all(offload_c.static_f32(e) for e in (conv.args[0], conv.args[1], conv)):
        return False
    bias = context.annotated_expr.get("bias")
    channels = offload_c.shape(conv)[1]
    return bias is None or (offload_c.static_f32(bias) and offload_c.shape(bias) in ([1, channels, 1, 1],
                                                                                     [channels, 1, 1]))


def _check_winograd(context: PatternCheckContext) -> bool:
    conv = context.annotated_expr["root"]
    bias = context.annotated_expr.get("bias")
    if not _check_conv(context) or not isinstance(conv.args[1], tvm.ir.expr.Constant):
        return False
    if bias is not None and not isinstance(bias, tvm.ir.expr.Constant):
        return False
    attrs, (_, channels, _, _), (outputs, _, kh, kw) = conv.attrs, offload_c.shape(conv.args[0]), \
        offload_c.shape(conv.args[1])
    return winograd.eligible(channels, outputs, (kh, kw), tuple(map(int, attrs.strides)),
                             tuple(map(int, attrs.dilation)), int(attrs.groups), tuple(offload_c.shape(conv)[2:]))


def _check_residual(context: PatternCheckContext) -> bool:
    """A convolution the packed kernel takes (one group, constant weights and bias) and a residual of
    exactly its output's shape (no broadcasting)."""
    conv = context.annotated_expr["root"]
    bias, residual = context.annotated_expr.get("bias"), context.annotated_expr["residual"]
    return (_check_conv(context) and int(conv.attrs.groups) == 1 and isinstance(conv.args[1], tvm.ir.expr.Constant)
            and (bias is None or isinstance(bias, tvm.ir.expr.Constant))
            and not isinstance(residual, tvm.ir.expr.Constant) and offload_c.static_f32(residual)
            and offload_c.shape(residual) == offload_c.shape(conv))


def _check_matmul(context: PatternCheckContext) -> bool:
    """fp32, static shapes, a 2-D right operand or equal batch dimensions (no broadcasting), bias
    along the last axis."""
    if has_leaking_intermediate_variables(context):
        return False
    matmul = context.annotated_expr["root"]
    lhs, rhs = matmul.args
    if not all(offload_c.static_f32(e) for e in (lhs, rhs, matmul)):
        return False
    left, right = offload_c.shape(lhs), offload_c.shape(rhs)
    if len(left) < 2 or len(right) < 2 or (len(right) > 2 and left[:-2] != right[:-2]):
        return False
    bias = context.annotated_expr.get("bias")
    if bias is None:
        return True
    bias_shape = offload_c.shape(bias) if offload_c.static_f32(bias) else None
    return bias_shape is not None and bias_shape[-1:] == right[-1:] and all(d == 1 for d in bias_shape[:-1])


def _codegen(functions, options, constant_names) -> list:
    """relax.ext.edgepart, as RunCodegen calls it: the offloaded functions -> one static-library
    module holding their wrappers, which export_library links into the tier library."""
    library = kernel_library.KernelLibrary(**json.loads(str(options["library"])))
    symbols = [str(func.attrs["global_symbol"]) for func in functions]
    exported = [offload_c.FFI_PREFIX + symbol for symbol in symbols]
    includes = [tvm_ffi.libinfo.find_include_path(), tvm_ffi.libinfo.find_dlpack_include_path(), library.include]
    with tempfile.TemporaryDirectory(prefix="edgepart-kernels-") as workdir:
        source = offload_c.source([(symbol, func) for symbol, func in zip(symbols, functions)], Path(workdir),
                                  packed=str(options["packed"]) == "1")
        obj = kernel_library.link(library, source, exported, includes, Path(workdir))
        # load_static_library reads the object now, so the folder may go
        return [tvm.runtime.load_static_library(str(obj), symbols)]


def _winograd_functions(mod: tvm.IRModule) -> int:
    """Offloaded functions of the partitioned module that hold a Winograd convolution."""
    return sum(WINOGRAD in str(composite.attrs["Composite"]) for composite in _composites(mod))


def _packed_functions(mod: tvm.IRModule) -> int:
    """Offloaded functions of the partitioned module whose product runs on packed weights."""
    return sum(offload_c.runs_packed(str(composite.attrs["Composite"]), composite) for composite in _composites(mod))


def _composites(mod: tvm.IRModule) -> list[relax.Function]:
    """The pattern functions (Composite attribute) of the partitioned module."""
    found = []

    def visit(expr):
        if isinstance(expr, relax.Function) and expr.attrs is not None and "Composite" in expr.attrs:
            found.append(expr)

    for func in mod.functions.values():
        if isinstance(func, relax.Function):
            visit(func)
            relax.analysis.post_order_visit(func.body, visit)
    return found


def _external_calls(mod: tvm.IRModule) -> int:
    """Call sites in the module's Relax functions that call into the kernel library."""
    dps_packed = tvm.ir.Op.get("relax.call_dps_packed")
    count = 0

    def visit(expr):
        nonlocal count
        if isinstance(expr, relax.Call) and expr.op == dps_packed:
            count += 1

    for func in mod.functions.values():
        if isinstance(func, relax.Function):
            relax.analysis.post_order_visit(func.body, visit)
    return count
