"""What compression costs, as the cost model reads it from a sensitivity measurement."""

from __future__ import annotations

from edgepart.compress import codecs
from edgepart.compress.sensitivity import Sensitivity
from edgepart.cost.build import Compression


def from_sensitivity(sensitivity: Sensitivity, allow_lossy: bool = False) -> Compression:
    """The planner's view of a sensitivity measurement (edgepart.compress.sensitivity); a lossy
    choice it does not cover is left out unless `allow_lossy`. Every drop is scaled by how much more
    a plan's choices cost together than alone, where that was run (Sensitivity.interaction)."""
    scale, _ = sensitivity.interaction()
    drop: dict[tuple[str, str], float] = {}
    wire: dict[tuple[str, str], float] = {}
    seconds: dict[tuple[str, str], tuple[float, float]] = {}
    fp32_only = set()
    for layer, precision, accuracy_drop, applies in sensitivity.layer_choices():
        drop[(layer, precision)] = accuracy_drop * scale
        if precision == "int8" and not applies:
            fp32_only.add(layer)
    for tensor, codec, result in sensitivity.codec_choices():
        if "drop" in result:
            drop[(f"tensor:{tensor}", codec)] = result["drop"] * scale
        if codecs.entropy_coded(codec):
            wire[(tensor, codec)] = result["bytes"]
        if codec != "raw":  # the transport sends raw buffers as they are
            seconds[(tensor, codec)] = (result["encode_s"], result["decode_s"])
    return Compression(drop, wire, seconds, sensitivity.host_memory_bandwidth, frozenset(fp32_only),
                       evidence_only=not allow_lossy)
