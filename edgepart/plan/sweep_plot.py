"""The picture of a sweep document: objective against bandwidth, one colour per plan, beside the
latency-energy Pareto front."""

from __future__ import annotations

from typing import Any

import numpy as np

FORMATS = (".png", ".svg", ".pdf")


def plot(doc: dict[str, Any], path: str) -> None:
    """Objective against bandwidth (one colour per plan) and the Pareto front, into an image file."""
    import matplotlib  # noqa: PLC0415 - optional, and slow to import

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    figure, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    for i, segment in enumerate(doc["segments"]):
        xs = np.geomspace(segment["from_bps"], segment["to_bps"], 32)
        lo, hi = segment["objective_at_ends"]
        beta = 1 / xs
        b_lo, b_hi = 1 / segment["from_bps"], 1 / segment["to_bps"]
        ys = lo + (hi - lo) * (beta - b_lo) / (b_hi - b_lo) if b_hi != b_lo else np.full_like(xs, lo)
        split = "/".join(str(n) for n in segment["layers_per_tier"].values())
        left.plot(xs / 1e6, ys * (1e3 if "latency" in doc["objective"] else 1), color=f"C{i % 10}",
                  label=f"layers per tier {split}")
    unit = "ms" if "latency" in doc["objective"] else "J"
    left.set(xscale="log", xlabel=f"uplink of {doc['link']} (Mbit/s)", ylabel=f"{doc['objective']} ({unit})",
             title="optimal plan over bandwidth")
    left.legend(fontsize=7)
    if doc["pareto"]:
        right.plot([p["latency_s"] * 1e3 for p in doc["pareto"]], [p["energy_j"] * 1e3 for p in doc["pareto"]], "o-")
    right.set(xlabel="latency (ms)", ylabel="device energy (mJ)", title="latency-energy Pareto front (supported)")
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)
