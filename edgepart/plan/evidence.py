"""No lossy choice without evidence: which precisions and codecs a plan may use when nobody has
measured what they cost in accuracy.

A lower precision or a lossy codec is priced by its measured accuracy drop (`edgepart sensitivity`).
Without that measurement the planner would count it as free, and a plan made for speed would pick
int8 for every tensor it sends (a ResNet-50 plan did, and its own `verify` then failed). So without
sensitivity data a plan keeps to lossless choices, fp32 and the raw/zlib codecs, unless the user
opts in (`plan --allow-lossy`); a tier or deployment that allows nothing lossless keeps what it
lists, since the user asked for exactly that.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from edgepart.compress import codecs as codec_formats
from edgepart.hardware.deploy import Deployment

LOSSLESS_PRECISIONS = ("fp32",)
WHY = "no sensitivity data (edgepart sensitivity): their accuracy cost is unmeasured"


def lossless(codec: str) -> bool:
    return codec_formats.base(codec) == "raw"


def restrict(deployment: Deployment, has_evidence: bool, allow_lossy: bool) -> tuple[Deployment, dict[str, Any]]:
    """The deployment the planner may choose from, and the plan's `lossy` record: whether lossy
    choices were allowed, on what ground, and those left out (per tier, and of the codecs)."""
    if has_evidence and allow_lossy:
        return deployment, {"allowed": True, "ground": "sensitivity data; --allow-lossy: choices it does not "
                                                       "cover priced as free"}
    if has_evidence:
        return deployment, {"allowed": True, "ground": "sensitivity data; choices it does not cover are left out"}
    if allow_lossy:
        return deployment, {"allowed": True, "ground": "--allow-lossy without sensitivity data: lower precisions "
                                                       "and lossy codecs priced as free of accuracy cost"}
    tiers, left_out = [], {}
    for tier in deployment.tiers:
        kept = tuple(p for p in tier.precisions if p in LOSSLESS_PRECISIONS)
        if kept and kept != tier.precisions:
            left_out[tier.name] = [p for p in tier.precisions if p not in kept]
            tier = dataclasses.replace(tier, precisions=kept)
        tiers.append(tier)
    codecs = tuple(c for c in deployment.codecs if lossless(c)) or deployment.codecs
    record: dict[str, Any] = {"allowed": False, "ground": WHY}
    if left_out:
        record["precisions_left_out"] = left_out
    if codecs != deployment.codecs:
        record["codecs_left_out"] = [c for c in deployment.codecs if c not in codecs]
    return dataclasses.replace(deployment, tiers=tuple(tiers), codecs=codecs), record
