"""The Relax pipeline CPU tiers are built with: TVM's own CPU pipeline (cpu_generic: legalize, fuse,
lower), with erf and tanh legalized to TOPI's polynomial approximations.

Why: the stock legalization calls libm's scalar erff/tanhf per element, which LLVM cannot
vectorise; GELU (ViT, Swin, ConvNeXt) spent ~24x longer there ([1,144,56,56] x*erf(x), AVX2: 9.6 ms
stock, 0.40 ms fast_erf). With the approximations ViT-B/16 and Swin-T still match onnxruntime to
~1e-6 of the output's magnitude. Other elementwise operators are left alone: LLVM already
vectorises their plain loops, and scheduling them made them slower (FINDINGS of issue #16).
"""

from __future__ import annotations

import tvm
from tvm import relax, topi
from tvm.relax.backend.cpu_generic import pipeline as cpu


def _unary(function):
    def legalize(block_builder, call):
        return block_builder.call_te(function, call.args[0], primfunc_name_hint=call.op.name.split(".")[-1])

    return legalize


FAST_LEGALIZATION = {"relax.erf": _unary(topi.fast_erf), "relax.tanh": _unary(topi.fast_tanh)}


def pipeline(target: tvm.target.Target) -> tvm.transform.Pass:
    """TVM's cpu_generic default pipeline with FAST_LEGALIZATION."""

    @tvm.transform.module_pass(opt_level=0)
    def _pipeline(mod: tvm.IRModule, _context) -> tvm.IRModule:
        with target:
            legalize = [relax.transform.LegalizeOps(customize_legalize_map=FAST_LEGALIZATION),
                        *cpu.legalize_passes(target)[1:]]  # the stock list minus its own LegalizeOps
            passes = (cpu.library_dispatch_passes(target) + legalize + cpu.dataflow_lower_passes(target)
                      + cpu.finalize_passes(target))
            return tvm.transform.Sequential(passes)(mod)

    return _pipeline
