"""The C source edgepart.toolchain.offload generates: per offloaded function, a wrapper with TVM-FFI's
C calling convention that checks its tensors against the shapes fixed at compile time and calls
native/kernels.c (or winograd.c).

Constant operands (weights, biases) are assembled into the object (`.incbin` of files written
beside the source; a Winograd convolution's weights transformed first, at compile time), so a
wrapper gets only the activations and the output as tensors.

A wrapper `__tvm_ffi_<symbol>(self, args, n, result)` gets the function's parameters in order, then
the output tensor (TVM's destination-passing style); an error goes back through
TVMFFIErrorSetRaisedFromCStr, so a wrongly shaped call raises in Python instead of reading out of
bounds.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import tvm
from tvm import relax

from edgepart.toolchain import packing, winograd

FFI_PREFIX = "__tvm_ffi_"
WINOGRAD = "winograd_conv2d"  # the pattern name's stem of a Winograd convolution (offload)

PRELUDE = r"""
#include <stddef.h>
#include <stdint.h>
#include <tvm/ffi/c_api.h>
#include "kernels.h"

/* A tensor argument arrives as a DLTensor pointer or as a tensor object that holds one. */
static DLTensor* ep_tensor(const TVMFFIAny* a) {
  if (a->type_index == kTVMFFIDLTensorPtr) return (DLTensor*)a->v_ptr;
  if (a->type_index == kTVMFFITensor) return (DLTensor*)((char*)a->v_obj + sizeof(TVMFFIObject));
  return NULL;
}
static int ep_fail(const char* message) {
  TVMFFIErrorSetRaisedFromCStr("RuntimeError", message);
  return -1;
}
/* 1 when the argument is a compact float32 CPU tensor of exactly this shape */
static int ep_matches(const TVMFFIAny* a, int ndim, const int64_t* shape) {
  const DLTensor* t = ep_tensor(a);
  if (!t || t->ndim != ndim || t->dtype.code != kDLFloat || t->dtype.bits != 32 || t->dtype.lanes != 1) return 0;
  if (t->device.device_type != kDLCPU) return 0;
  for (int i = 0; i < ndim; ++i) if (t->shape[i] != shape[i]) return 0;
  if (t->strides) {
    int64_t stride = 1;
    for (int i = ndim - 1; i >= 0; --i) {
      if (t->shape[i] != 1 && t->strides[i] != stride) return 0;
      stride *= t->shape[i];
    }
  }
  return 1;
}
#define EP_DATA(i) ((float*)((char*)ep_tensor(&args[i])->data + ep_tensor(&args[i])->byte_offset))
"""


def static_f32(expr) -> bool:
    """Whether a Relax expression is a float32 tensor with every dimension known."""
    ty = expr.ty
    return (isinstance(ty, relax.TensorType) and ty.dtype == "float32" and isinstance(ty.shape, relax.ShapeExpr)
            and all(isinstance(d, tvm.tirx.IntImm) for d in ty.shape.values))


def shape(expr) -> list[int]:
    return [int(d) for d in expr.ty.shape.values]


def source(functions: list[tuple[str, relax.Function]], workdir: Path, packed: bool = False) -> str:
    """The C file for (symbol, offloaded function) pairs; constants it assembles in are written to
    `workdir`, where the file is compiled. `packed`: products with constant weights run on
    native/gemm.c, their weights packed here (edgepart.toolchain.packing)."""
    return PRELUDE + "\n".join(_wrapper(symbol, func, workdir, packed) for symbol, func in functions)


def runs_packed(name: str, composite: relax.Function) -> bool:
    """Whether a pattern's product can run on packed weights: a Winograd convolution, or a
    convolution of one group whose weights are a constant."""
    if WINOGRAD in name:
        return True
    conv = _operator_calls(composite).get("relax.nn.conv2d")
    return conv is not None and int(conv.attrs.groups) == 1 and isinstance(conv.args[1], tvm.ir.expr.Constant)


def _wrapper(symbol: str, func: relax.Function, workdir: Path, packed: bool) -> str:
    name, inner = _composite(func)
    calls = _operator_calls(inner)
    packed = packed and runs_packed(name, inner)
    # The outer function calls the composite with its own parameters in order: operand -> position.
    position = {param: i for i, param in enumerate(inner.params)}
    assembled: list[str] = []  # constants assembled into the object

    def data(expr) -> str:
        if isinstance(expr, tvm.ir.expr.Constant):  # bound in by the pattern
            values = expr.value.numpy()
            if "relax.nn.conv2d" in calls and expr.same_as(calls["relax.nn.conv2d"].args[1]):
                values = _conv_weights(values, WINOGRAD in name, packed)
            label = f"ep_const_{symbol}_{len(assembled)}"
            assembled.append(_embedded(label, values, workdir))
            return label
        if expr not in position:
            raise ValueError(f"{symbol}: an operand of {name} is not a parameter of the offloaded function")
        return f"EP_DATA({position[expr]})"

    def operand(add):  # the add's operand from outside the pattern (the other is a result inside it)
        outside = [a for a in add.args if a in position or isinstance(a, tvm.ir.expr.Constant)]
        if len(outside) != 1:
            raise ValueError(f"{symbol}: cannot tell which operand of the add is the bias or residual")
        return data(outside[0])

    bias_add, residual_add = _adds(inner)
    bias = "NULL" if bias_add is None else operand(bias_add)
    residual = None if residual_add is None else operand(residual_add)
    act = "EP_ACT_SILU" if name.endswith("_silu") else "EP_ACT_RELU" if name.endswith("_relu") else "EP_ACT_NONE"
    tensors = [*func.params, func.body]
    checks = "".join(
        f"  {{ static const int64_t s[] = {{{', '.join(map(str, shape(t))) or '0'}}};\n"
        f"    if (!ep_matches(&args[{i}], {len(shape(t))}, s)) return ep_fail(\"{symbol}: argument {i} is not a "
        f"compact float32 CPU tensor of shape {shape(t)}\"); }}\n" for i, t in enumerate(tensors))
    if "relax.nn.conv2d" in calls:
        kernel = ("ep_conv2d_winograd" if WINOGRAD in name else "ep_conv2d_packed" if packed
                  else "ep_conv2d_nchw")
        call = _conv_call(symbol, calls["relax.nn.conv2d"], data, bias, act, len(func.params), kernel, packed,
                          residual)
    else:
        call = _matmul_call(calls["relax.matmul"], data, bias, act, len(func.params))
    return ("".join(assembled) +
            f"TVM_FFI_DLL_EXPORT int {FFI_PREFIX}{symbol}(void* self, const TVMFFIAny* args, int32_t n, "
            f"TVMFFIAny* result) {{\n"
            f"  if (n != {len(tensors)}) return ep_fail(\"{symbol}: expected {len(tensors)} arguments\");\n"
            f"{checks}{call}  return 0;\n}}\n")


def _embedded(label: str, values, workdir: Path) -> str:
    """C declaring `label` as float32 `values`, assembled in from a file (a C initialiser of a
    ResNet layer's transformed weights would be megabytes of text)."""
    path = workdir / f"{label}.bin"
    values.astype("<f4").tofile(path)
    return (f'__asm__(".pushsection .rodata\\n.balign 64\\n{label}:\\n.incbin \\"{path}\\"\\n.popsection");\n'
            f'extern const float {label}[] __attribute__((visibility("hidden")));\n')


def _conv_weights(weights: np.ndarray, is_winograd: bool, packed: bool) -> np.ndarray:
    """A convolution's constant OIHW weights as its kernel reads them: Winograd-transformed (36 x O x
    C), and with `packed` as packed panels (each of the 36 matrices, or the O x C*KH*KW matrix)."""
    if is_winograd:
        transformed = winograd.transform(weights)
        return np.concatenate([packing.panels(m) for m in transformed]) if packed else transformed
    return packing.panels(weights.reshape(weights.shape[0], -1)) if packed else weights


def _conv_call(symbol: str, conv, data, bias: str, act: str, out: int, kernel: str, packed: bool,
               residual: str | None) -> str:
    attrs = conv.attrs
    n, c, h, w = shape(conv.args[0])
    o, _, kh, kw = shape(conv.args[1])
    _, _, oh, ow = shape(conv)
    fields = [n, c, h, w, o, kh, kw, *map(int, attrs.strides), *map(int, attrs.padding), *map(int, attrs.dilation),
              int(attrs.groups), oh, ow]
    residual = f"{residual or 'NULL'}, " if kernel == "ep_conv2d_packed" else ""
    return (f"  static const ep_conv_t p = {{{', '.join(map(str, fields))}, {act}, {int(packed)}}};\n"
            f"  const int failed = {kernel}({data(conv.args[0])}, {data(conv.args[1])}, {bias}, {residual}"
            f"EP_DATA({out}), &p);\n"
            f"  if (failed) return ep_fail(failed == -2 ? \"{symbol}: this CPU lacks AVX-512F, which the tier was "
            f"built for\" : \"{symbol}: out of memory for the convolution's scratch buffer\");\n")


def _matmul_call(matmul, data, bias: str, act: str, out: int) -> str:
    left, right = shape(matmul.args[0]), shape(matmul.args[1])
    m, k, n = left[-2], left[-1], right[-1]
    if len(right) == 2:  # one weight matrix: every leading dimension of the left operand is rows
        batch, m, a_stride, w_stride = 1, m * math.prod(left[:-2]), 0, 0
    else:
        batch, a_stride, w_stride = math.prod(left[:-2]), m * k, k * n
    return (f"  static const ep_matmul_t p = {{{batch}, {m}, {n}, {k}, {a_stride}, {w_stride}, {act}}};\n"
            f"  ep_matmul({data(matmul.args[0])}, {data(matmul.args[1])}, {bias}, EP_DATA({out}), &p);\n")


def _composite(func: relax.Function) -> tuple[str, relax.Function]:
    """The pattern name and the inner function of an offloaded function (annotate_codegen wraps
    the pattern's composite function in one that carries the Codegen attribute)."""
    found = []

    def visit(expr):
        if isinstance(expr, relax.Function) and expr.attrs is not None and "Composite" in expr.attrs:
            found.append(expr)

    relax.analysis.post_order_visit(func.body, visit)
    if len(found) != 1:
        raise ValueError(f"expected one composite function in an offloaded function, found {len(found)}")
    return str(found[0].attrs["Composite"]), found[0]


def _adds(func: relax.Function) -> tuple:
    """A pattern's bias add and residual add, each None where the pattern has none: with two adds
    the inner one (post order visits it first) adds the bias; a lone add is the residual where the
    pattern's name says "_residual"."""
    adds = []

    def visit(expr):
        if isinstance(expr, relax.Call) and isinstance(expr.op, tvm.ir.Op) and expr.op.name == "relax.add":
            adds.append(expr)

    relax.analysis.post_order_visit(func.body, visit)
    if len(adds) == 2:
        return adds[0], adds[1]
    if len(adds) == 1:
        return (None, adds[0]) if "_residual" in str(func.attrs["Composite"]) else (adds[0], None)
    return None, None


def _operator_calls(func: relax.Function) -> dict:
    calls = {}

    def visit(expr):
        if isinstance(expr, relax.Call) and isinstance(expr.op, tvm.ir.Op):
            calls[expr.op.name] = expr

    relax.analysis.post_order_visit(func.body, visit)
    return calls
