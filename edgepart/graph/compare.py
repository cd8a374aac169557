"""Outputs compared with reference outputs: the one rule verify, run's checks and compile's check of
a TVM library share."""

from __future__ import annotations

import numpy as np


def output_errors(names: list[str], expected: list[dict], got: list[dict]) -> dict[str, dict]:
    """Per output, the largest error over the samples: max |error|, and max |error| / max |reference|
    with the sample where it is largest."""
    errors = {}
    for name in names:
        absolute, relative = [], []
        for sample, (reference, output) in enumerate(zip(expected, got)):
            ref, out = np.asarray(reference[name], np.float64), np.asarray(output[name], np.float64)
            if out.shape != ref.shape or (np.isnan(out) != np.isnan(ref)).any():
                # no number says how far apart they are (JSON has no NaN or infinity)
                errors[name] = {"max_abs_error": None, "relative_error": None, "worst_sample": sample,
                                "problem": f"shape {list(out.shape)}, onnxruntime's {list(ref.shape)}"
                                if out.shape != ref.shape else "NaN where onnxruntime has a number (or the reverse)"}
                break
            # NaN where onnxruntime has NaN too counts as equal, and the same infinity (an attention
            # mask's -inf) too; an empty output as exact
            with np.errstate(invalid="ignore"):
                absolute.append(float(np.abs(np.nan_to_num(out - ref)).max()) if out.size else 0.0)
            scale = float(np.abs(np.nan_to_num(ref)).max()) if ref.size else 0.0
            relative.append(absolute[-1] / (scale or 1.0))
        else:
            worst = int(np.argmax(relative))
            errors[name] = {"max_abs_error": max(absolute), "relative_error": relative[worst], "worst_sample": worst}
    return errors
