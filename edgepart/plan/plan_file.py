"""The plan file as compile reads it: `Plan.load` checks the envelope and the fields compile needs,
and its methods are all compile asks of a plan (compile reads no plan key by hand). Whether the
plan fits its model and deployment is edgepart.plan.validate's."""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from edgepart import names, schema
from edgepart.errors import BadInputError
from edgepart.plan.document import SCHEMA_VERSION

REQUIRED = ("model", "deployment", "solver", "assignment", "cuts")


@dataclass(frozen=True)
class PlannedTier:
    """A tier as the plan records it: where it runs and the backend the plan chose."""

    name: str
    index: int
    device: str
    target: str
    backend: str
    threads: int
    raw: dict[str, Any]  # the entry as written, for validate


@dataclass(frozen=True)
class Crossing:
    """A tensor going up a link (codec, bytes on the wire) or an output coming down it (raw)."""

    tensor: str
    codec: str
    bytes: int


@dataclass(frozen=True)
class PlannedLink:
    name: str
    uplink_bps: float | None
    downlink_bps: float | None
    rtt_s: float | None
    up: tuple[Crossing, ...]
    down: tuple[Crossing, ...]


@dataclass(frozen=True)
class Plan:
    doc: dict[str, Any]
    source: str = "plan"

    @classmethod
    def load(cls, path: str | os.PathLike) -> Plan:
        return cls.of(schema.load_json(str(path), "plan", SCHEMA_VERSION), str(path))

    @classmethod
    def of(cls, doc: dict[str, Any], source: str = "plan") -> Plan:
        missing = [key for key in REQUIRED if not isinstance(doc.get(key), (dict, list))]
        if missing:
            raise BadInputError(f"{source}: not a complete plan file (no '{missing[0]}'); write one with "
                                "edgepart plan -o")
        if not isinstance(doc["model"].get("sha256"), str):
            raise BadInputError(f"{source}: model.sha256: missing; write the plan with edgepart plan -o")
        tiers = doc["deployment"].get("tiers") if isinstance(doc["deployment"], dict) else None
        if not isinstance(tiers, list) or not tiers or not all(isinstance(t, dict) for t in tiers):
            raise BadInputError(f"{source}: deployment.tiers: expected a list of tiers; write the plan with "
                                "edgepart plan -o")
        for i, tier in enumerate(tiers):
            names.checked(tier.get("name"), f"{source}: deployment.tiers[{i}].name")
        return cls(doc, source)

    def dump(self, path: str | os.PathLike) -> None:
        schema.write_json(str(path), self.doc)

    @property
    def model_path(self) -> str:
        return str(self.doc["model"].get("path", "the plan's model"))

    @property
    def deployment_path(self) -> str | None:
        return self.doc["deployment"].get("path") or None

    @cached_property
    def tiers(self) -> tuple[PlannedTier, ...]:
        return tuple(PlannedTier(t["name"], i, str(t.get("device")), str(t.get("target")), str(t.get("backend", "tvm")),
                                 int(t.get("threads", 1)), t)
                     for i, t in enumerate(self.doc["deployment"]["tiers"]))

    @property
    def output_tier(self) -> str:
        return self.doc["deployment"].get("output_tier", self.tiers[0].name)

    def tier_of(self, node: str) -> str:
        return self.doc["assignment"][node]

    def precision_of(self, node: str) -> str:
        return self.doc.get("precision", {}).get(node, "fp32")

    @property
    def precisions(self) -> dict[str, str]:
        """Node -> precision, for the nodes not in fp32."""
        return {n: p for n, p in self.doc.get("precision", {}).items() if p != "fp32"}

    def int8_layers(self, layers: Iterable[str]) -> list[str]:
        return [n for n in layers if self.precision_of(n) == "int8"]

    @cached_property
    def links(self) -> tuple[PlannedLink, ...]:
        declared = {link.get("name"): link for link in self.doc["deployment"].get("links", [])}
        return tuple(PlannedLink(
            cut["link"], *(declared.get(cut["link"], {}).get(k) for k in ("uplink_bps", "downlink_bps", "rtt_s")),
            tuple(Crossing(u["tensor"], u["codec"], int(u["bytes"])) for u in cut["up"]),
            tuple(Crossing(d["tensor"], "raw", int(d["bytes"])) for d in cut["down"])) for cut in self.doc["cuts"])

    def codecs_into(self, tier_index: int, tensor: str) -> dict[str, str]:
        """Link -> codec on the way up to tier `tier_index` for this tensor."""
        return {link.name: up.codec for link in self.links[:tier_index] for up in link.up if up.tensor == tensor}

    def priced_s(self, tier: str) -> float | None:
        return self.doc.get("predicted", {}).get("per_tier", {}).get(tier, {}).get("compute_s")

    def price_source(self, tier: str) -> str | None:
        return self.doc.get("costs", {}).get("source", {}).get(tier)

    @property
    def predicted(self) -> dict[str, Any]:
        """latency_s, throughput_s, compute_s per tier, transfer_s per link, accuracy_drop: the plan's
        predictions as run holds a build to them."""
        p = self.doc.get("predicted", {})
        return {"latency_s": p.get("latency_s"), "throughput_s": p.get("throughput_s"),
                "compute_s": {t: v["compute_s"] for t, v in p.get("per_tier", {}).items()},
                "transfer_s": {link: v["transfer_s"] for link, v in p.get("per_link", {}).items()},
                "accuracy_drop": p.get("accuracy_drop", 0.0)}

    @property
    def accuracy_budget(self) -> float | None:
        budget = self.doc.get("budgets", {}).get("accuracy_drop")
        return None if budget is None else budget["limit"]

    @property
    def sensitivity(self) -> dict | None:
        """The metric and data of the sensitivity measurement the plan was made with, or None."""
        return self.doc.get("accuracy", {}).get("sensitivity")
