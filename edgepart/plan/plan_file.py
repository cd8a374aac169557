"""The plan file as compile reads it: `Plan.load` checks the envelope and the fields compile needs,
and its methods are all compile asks of a plan (compile reads no plan key by hand). Whether the
plan fits its model and deployment is edgepart.plan.validate's."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from functools import cached_property
from typing import Any, ClassVar

import onnx

from edgepart import checks, names, schema
from edgepart.compress import codecs as codec_formats
from edgepart.compress import composed
from edgepart.compress.codecs import CODECS, PRECISIONS
from edgepart.errors import BadInputError
from edgepart.plan.document import SCHEMA_VERSION

REQUIRED = ("model", "deployment", "solver", "assignment", "cuts")
MAX_THREADS = 1024


@dataclass(frozen=True)
class PlannedTier:
    """A tier as the plan records it: where it runs and the backend the plan chose."""

    name: str
    index: int
    device: str
    target: str
    backend: str
    candidates: tuple[str, ...]  # the backends the plan chose from
    allowed: tuple[str, ...]  # the precisions the deployment allows the tier
    threads: int


@dataclass(frozen=True)
class Crossing:
    """A tensor going up a link (codec, bytes on the wire) or an output coming down it (raw)."""

    tensor: str
    codec: str
    bytes: int
    seconds: float | None = None  # on the wire, as the plan predicted it


@dataclass(frozen=True)
class PlannedLink:
    name: str
    uplink_bps: float | None
    downlink_bps: float | None
    rtt_s: float | None
    up: tuple[Crossing, ...]
    down: tuple[Crossing, ...]
    used: bool = True  # False: no tier above it runs anything


@dataclass(frozen=True)
class TierTotals:
    """What the plan puts on a tier: layers, their MACs, predicted compute seconds, memory bytes."""

    layers: int
    macs: int
    compute_s: float
    memory_bytes: float


@dataclass(frozen=True)
class Predicted:
    """The plan's predictions, as compile records them and run and the budget check hold a build to."""

    latency_s: float | None
    throughput_s: float | None
    energy_j: float | None
    accuracy_drop: float
    compute_s: dict[str, float]  # per tier
    transfer_s: dict[str, float]  # per link


@dataclass(frozen=True)
class AdaptivePlans:
    """A plan file's sweep (`plan --sweep`, edgepart.plan.adaptive): the plans compile builds
    together, by id, and where each is the cheapest over the swept link's bandwidth."""

    link: str
    range_bps: tuple[float, float]
    start: str  # the plan at the deployment's own bandwidth: the file's top-level plan
    fallback: str  # every layer on the device tier
    breakpoints: tuple[dict[str, Any], ...]  # {from_bps, to_bps, plan}, in increasing bandwidth
    plans: dict[str, Plan]

    @classmethod
    def of(cls, doc: Any, source: str) -> AdaptivePlans:
        where = f"{source}: adaptive"
        checks.table(doc, where)
        plans = {names.checked(plan_id, f"{where}.plans.{plan_id}"): Plan.of(each, f"{where}.plans.{plan_id}")
                 for plan_id, each in checks.table(doc.get("plans"), f"{where}.plans").items()}
        for key in ("start", "fallback"):
            if doc.get(key) not in plans:
                raise BadInputError(f"{where}.{key}: {doc.get(key)!r} is not one of its plans ({', '.join(plans)})")
        low, high = (checks.number(v, f"{where}.range_bps", above=0) for v in (doc.get("range_bps") or [0, 0])[:2])
        table = doc.get("breakpoints")
        if not isinstance(table, list) or not table:
            raise BadInputError(f"{where}.breakpoints: expected the table of plans over bandwidth")
        for i, row in enumerate(table):
            checks.table(row, f"{where}.breakpoints[{i}]")
            for key in ("from_bps", "to_bps"):
                checks.number(row.get(key), f"{where}.breakpoints[{i}].{key}", above=0)
            if row.get("plan") not in plans:
                raise BadInputError(f"{where}.breakpoints[{i}].plan: {row.get('plan')!r} is not one of its plans")
        link = checks.text(doc.get("link"), f"{where}.link")
        if any(link not in {each.name for each in plan.links} for plan in plans.values()):
            raise BadInputError(f"{where}.link: '{link}' is not a link of its plans")
        return cls(link, (low, high), doc["start"], doc["fallback"], tuple(table), plans)


@dataclass(frozen=True)
class Plan(schema.Document):
    KIND: ClassVar[str] = "plan"
    VERSION: ClassVar[int] = SCHEMA_VERSION

    @classmethod
    def check(cls, doc: Any, source: str) -> None:
        _check(doc, source)
        if doc.get("adaptive") is not None:
            AdaptivePlans.of(doc["adaptive"], source)

    @property
    def model_path(self) -> str:
        return str(self.doc["model"].get("path", "the plan's model"))

    @property
    def model_sha256(self) -> str:
        return self.doc["model"]["sha256"]

    @property
    def deployment_path(self) -> str | None:
        return self.doc["deployment"].get("path") or None

    @property
    def deployment_sha256(self) -> str | None:
        return self.doc["deployment"].get("sha256") or None

    @property
    def solver(self) -> str:
        return str(self.doc["solver"].get("name"))

    @property
    def solver_status(self) -> str:
        return str(self.doc["solver"].get("status"))

    @property
    def objective(self) -> str:
        return str(self.doc.get("objective"))

    @cached_property
    def tiers(self) -> tuple[PlannedTier, ...]:
        return tuple(PlannedTier(t["name"], i, str(t.get("device")), str(t.get("target")), str(t.get("backend", "tvm")),
                                 tuple(t.get("backends", [t.get("backend", "tvm")])), tuple(t.get("precisions", [])),
                                 int(t.get("threads", 1)))
                     for i, t in enumerate(self.doc["deployment"]["tiers"]))

    @property
    def output_tier(self) -> str:
        return self.doc["deployment"].get("output_tier", self.tiers[0].name)

    @property
    def assignment(self) -> dict[str, str]:
        """Node -> tier, every node of the model (graph inputs and outputs too)."""
        return dict(self.doc["assignment"])

    def tier_of(self, node: str) -> str:
        return self.doc["assignment"][node]

    @property
    def precision_nodes(self) -> set[str]:
        """The nodes the plan gives a precision (its layers)."""
        return set(self.doc.get("precision", {}))

    def precision_of(self, node: str) -> str:
        return self.doc.get("precision", {}).get(node, "fp32")

    @property
    def precisions(self) -> dict[str, str]:
        """Node -> precision, for the nodes not in fp32."""
        return {n: p for n, p in self.doc.get("precision", {}).items() if p != "fp32"}

    def lossy_choices(self) -> set[tuple[str, str]]:
        """The plan's lossy choices as sensitivity names them: (layer, precision) and
        ("tensor:<name>", lossy codec) for each tensor sent up a link in an fp16/int8 codec."""
        chosen = set(self.precisions.items())
        for link in self.links:
            chosen |= {(f"tensor:{up.tensor}", codec_formats.base(up.codec)) for up in link.up
                       if codec_formats.base(up.codec) != "raw"}
        return chosen

    def composition(self, model: onnx.ModelProto) -> composed.Composition:
        """The plan's lossy choices as the chain runs them on `model` (its named nodes): each layer's
        precision, and each reader on a tier above a tensor's producer reading it through the lossy
        codecs of the links it crossed."""
        index = {tier.name: tier.index for tier in self.tiers}
        reads: dict[tuple[str, tuple[str, ...]], set[str]] = {}
        for node in model.graph.node:
            tier = self.doc["assignment"].get(node.name)
            for tensor in node.input if tier is not None else ():
                chain = composed.lossy_chain(list(self.codecs_into(index[tier], tensor).values()))
                if chain:
                    reads.setdefault((tensor, chain), set()).add(node.name)
        return composed.Composition(self.precisions, {key: frozenset(nodes) for key, nodes in reads.items()},
                                    frozenset(self.lossy_choices()))

    def int8_layers(self, layers: Iterable[str]) -> list[str]:
        return [n for n in layers if self.precision_of(n) == "int8"]

    @cached_property
    def links(self) -> tuple[PlannedLink, ...]:
        declared = {link.get("name"): link for link in self.doc["deployment"].get("links", [])}
        return tuple(PlannedLink(
            cut["link"], *(declared.get(cut["link"], {}).get(k) for k in ("uplink_bps", "downlink_bps", "rtt_s")),
            tuple(Crossing(u["tensor"], u["codec"], int(u["bytes"]), u.get("seconds")) for u in cut["up"]),
            tuple(Crossing(d["tensor"], "raw", int(d["bytes"]), d.get("seconds")) for d in cut["down"]),
            bool(cut.get("used", True))) for cut in self.doc["cuts"])

    def codecs_into(self, tier_index: int, tensor: str) -> dict[str, str]:
        """Link -> codec on the way up to tier `tier_index` for this tensor."""
        return {link.name: up.codec for link in self.links[:tier_index] for up in link.up if up.tensor == tensor}

    def priced_s(self, tier: str) -> float | None:
        return self.predicted.compute_s.get(tier)

    def price_source(self, tier: str) -> str | None:
        return self.doc.get("costs", {}).get("source", {}).get(tier)

    @cached_property
    def predicted(self) -> Predicted:
        p = self.doc.get("predicted", {})
        return Predicted(p.get("latency_s"), p.get("throughput_s"), p.get("energy_j"), p.get("accuracy_drop", 0.0),
                         {t: v["compute_s"] for t, v in p.get("per_tier", {}).items()},
                         {link: v["transfer_s"] for link, v in p.get("per_link", {}).items()})

    def totals(self, tier: str) -> TierTotals:
        entry = self.doc.get("predicted", {}).get("per_tier", {}).get(tier, {})
        return TierTotals(int(entry.get("layers", 0)), int(entry.get("macs", 0)), float(entry.get("compute_s", 0.0)),
                          float(entry.get("memory_bytes", 0.0)))

    @property
    def budgets(self) -> dict[str, bool]:
        """Budget name -> whether the plan's predictions meet it."""
        return {name: bool(budget.get("met", True)) for name, budget in self.doc.get("budgets", {}).items()}

    @property
    def unmet_budgets(self) -> list[str]:
        """The budgets the plan's predictions miss (a plan is written even then; the command exits 1)."""
        return [name for name, met in self.budgets.items() if not met]

    @property
    def accuracy_budget(self) -> float | None:
        budget = self.doc.get("budgets", {}).get("accuracy_drop")
        return None if budget is None else budget["limit"]

    @cached_property
    def adaptive(self) -> AdaptivePlans | None:
        """The sweep's plans (`plan --sweep`), or None for a plan of one bandwidth."""
        doc = self.doc.get("adaptive")
        return None if doc is None else AdaptivePlans.of(doc, self.source)

    @property
    def sensitivity(self) -> dict | None:
        """The metric and data of the sensitivity measurement the plan was made with, or None."""
        return self.doc.get("accuracy", {}).get("sensitivity")


def _check(doc: Any, source: str) -> None:
    """Every field compile, the budget check and the drawing read: present, of its type, in range;
    BadInputError names the file and field."""
    missing = [key for key in REQUIRED if not isinstance(doc.get(key), (dict, list))]
    if missing:
        raise BadInputError(f"{source}: not a complete plan file (no '{missing[0]}'); write one with "
                            "edgepart plan -o")
    if not isinstance(doc["model"].get("sha256"), str):
        raise BadInputError(f"{source}: model.sha256: missing; write the plan with edgepart plan -o")
    checks.text(doc["model"]["sha256"], f"{source}: model.sha256")
    deployment = checks.table(doc["deployment"], f"{source}: deployment")
    for key in ("sha256", "path"):
        if deployment.get(key) is not None:
            checks.text(deployment[key], f"{source}: deployment.{key}", empty=True)
    tiers = deployment.get("tiers")
    if not isinstance(tiers, list) or not tiers or not all(isinstance(t, dict) for t in tiers):
        raise BadInputError(f"{source}: deployment.tiers: expected a list of tiers; write the plan with "
                            "edgepart plan -o")
    for i, tier in enumerate(tiers):
        where = f"{source}: deployment.tiers[{i}]"
        names.checked(tier.get("name"), f"{where}.name")
        for key in ("device", "target"):
            checks.text(tier.get(key), f"{where}.{key}")
        backend = checks.text(tier.get("backend", "tvm"), f"{where}.backend")
        checks.texts(tier.get("backends", [backend]), f"{where}.backends")
        for precision in checks.texts(tier.get("precisions"), f"{where}.precisions"):
            _known(precision, PRECISIONS, f"{where}.precisions")
        checks.whole(tier.get("threads", 1), f"{where}.threads", 1, MAX_THREADS)
    tier_names = [t["name"] for t in tiers]
    if deployment.get("output_tier", tier_names[0]) not in tier_names:
        raise BadInputError(f"{source}: deployment.output_tier: {deployment.get('output_tier')!r} is not one of its "
                            f"tiers ({', '.join(tier_names)})")
    links = deployment.get("links", [])
    if not isinstance(links, list):
        raise BadInputError(f"{source}: deployment.links: expected a list of links")
    for i, link in enumerate(links):
        where = f"{source}: deployment.links[{i}]"
        checks.table(link, where)
        names.checked(link.get("name"), f"{where}.name")
        for key in ("uplink_bps", "downlink_bps"):
            checks.number(link.get(key), f"{where}.{key}", above=0)
        checks.number(link.get("rtt_s"), f"{where}.rtt_s", least=0)
    for key in ("assignment", "precision"):
        for node, value in checks.table(doc.get(key, {}), f"{source}: {key}").items():
            checks.text(value, f"{source}: {key}.{node}")
            if key == "precision":
                _known(value, PRECISIONS, f"{source}: precision.{node}")
    checks.text(checks.table(doc["solver"], f"{source}: solver").get("name"), f"{source}: solver.name")
    for name, budget in checks.table(doc.get("budgets", {}), f"{source}: budgets").items():
        where = f"{source}: budgets.{name}"
        checks.table(budget, where)
        checks.number(budget.get("limit"), f"{where}.limit")
        if not isinstance(budget.get("met", True), bool):
            raise BadInputError(f"{where}.met: expected true or false")
    for tier, text in checks.table(checks.table(doc.get("costs", {}), f"{source}: costs").get("source", {}),
                                   f"{source}: costs.source").items():
        checks.text(text, f"{source}: costs.source.{tier}")
    _check_cuts(doc["cuts"], source)
    declared = [link["name"] for link in links]
    for i, cut in enumerate(doc["cuts"]):
        if cut["link"] not in declared:
            raise BadInputError(f"{source}: cuts[{i}].link: '{cut['link']}' is not one of deployment.links "
                                f"({', '.join(declared) or 'none'})")
    _check_predicted(doc.get("predicted", {}), source)


def _known(value: str, known: tuple[str, ...], where: str) -> None:
    if value not in known:
        raise BadInputError(f"{where}: unknown '{value}'; known: {', '.join(known)}")


def _check_cuts(cuts: list, source: str) -> None:
    """Each cut names its link and lists what goes up (tensor, codec, bytes) and comes down (tensor, bytes)."""
    for i, cut in enumerate(cuts):
        where = f"{source}: cuts[{i}]"
        if not isinstance(cut, dict) or not all(isinstance(cut.get(k), list) for k in ("up", "down")):
            raise BadInputError(f"{where}: expected 'up' and 'down' lists")
        names.checked(cut.get("link"), f"{where}.link")
        for key in ("up", "down"):
            listed = [entry.get("tensor") for entry in cut[key] if isinstance(entry, dict)]
            if len(set(map(str, listed))) != len(listed):
                raise BadInputError(f"{where}.{key}: a tensor is listed twice")
            for j, entry in enumerate(cut[key]):
                checks.table(entry, f"{where}.{key}[{j}]")
                for field in ("tensor", "codec") if key == "up" else ("tensor",):
                    checks.text(entry.get(field), f"{where}.{key}[{j}].{field}")
                if key == "up":
                    _known(entry["codec"], CODECS, f"{where}.up[{j}].codec")
                checks.whole(entry.get("bytes"), f"{where}.{key}[{j}].bytes", most=2**50)
                checks.optional_number(entry.get("seconds"), f"{where}.{key}[{j}].seconds", least=0)


def _check_predicted(predicted: Any, source: str) -> None:
    """Predictions are seconds, joules and fractions: finite numbers (seconds and joules >= 0) or null."""
    checks.table(predicted, f"{source}: predicted")
    for key in ("latency_s", "throughput_s", "energy_j"):
        checks.optional_number(predicted.get(key), f"{source}: predicted.{key}", least=0)
    checks.optional_number(predicted.get("accuracy_drop"), f"{source}: predicted.accuracy_drop")
    for group, keys in (("per_tier", ("compute_s", "layers", "macs", "memory_bytes")), ("per_link", ("transfer_s",))):
        for name, entry in checks.table(predicted.get(group, {}), f"{source}: predicted.{group}").items():
            checks.table(entry, f"{source}: predicted.{group}.{name}")
            for key in keys:  # the first is what compile and run read; the others only describe
                default = None if key == keys[0] else 0
                checks.number(entry.get(key, default), f"{source}: predicted.{group}.{name}.{key}", least=0)
