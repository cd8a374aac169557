"""The reports verify and run write (docs/file-formats.md: edgepart.verify, edgepart.accuracy,
edgepart.run), typed like every stage document: `load(path)` checks kind, version and the fields
the accessors read; `of(doc)`, `dump(path)`. Nothing later in the flow reads them; build scripts
(edgepart.api) and the command line do."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from edgepart import schema
from edgepart.errors import BadInputError

SCHEMA_VERSION = 1  # of all three reports


@dataclass(frozen=True)
class Report(schema.Document):
    VERSION: ClassVar[int] = SCHEMA_VERSION
    FIELDS: ClassVar[dict[str, type | tuple[type, ...]]] = {}  # what the accessors read, by JSON type

    @classmethod
    def check(cls, doc: Any, source: str) -> None:
        for key, kind in {"build": str, **cls.FIELDS}.items():
            if not isinstance(doc.get(key), kind):
                raise BadInputError(f"{source}: {key}: missing or of the wrong type; is this an "
                                    f"{schema.KIND_PREFIX}{cls.KIND} report?")

    @property
    def build(self) -> str:
        return self.doc["build"]

    @property
    def passed(self) -> bool:
        return bool(self.doc.get("passed", True))


@dataclass(frozen=True)
class VerifyReport(Report):
    """The chain's outputs against onnxruntime, and each tier's time against its price."""

    KIND: ClassVar[str] = "verify"
    FIELDS: ClassVar = {"tiers": list, "outputs": dict, "tolerance": dict, "passed": bool, "held_to_price": dict}

    @property
    def relative_errors(self) -> dict[str, float]:
        """Per output, the largest relative error over the samples."""
        return {name: entry["relative_error"] for name, entry in self.doc["outputs"].items()}

    @property
    def tolerance(self) -> float:
        return self.doc["tolerance"]["relative_error"]

    @property
    def over_price(self) -> list[str]:
        """The tiers measured over the strict limit times their price."""
        return list(self.doc["held_to_price"]["over"])


@dataclass(frozen=True)
class AccuracyReport(Report):
    """verify --validate-accuracy: the chain's task metric on held-out data against the plan's budget."""

    KIND: ClassVar[str] = "accuracy"
    FIELDS: ClassVar = {"metric": str, "fp32": (int, float), "compressed": (int, float),
                        "measured_drop": (int, float), "passed": bool}

    @property
    def measured_drop(self) -> float:
        return self.doc["measured_drop"]

    @property
    def predicted_drop(self) -> float | None:
        return self.doc.get("predicted_drop")

    @property
    def budget(self) -> float | None:
        return self.doc.get("budget")


@dataclass(frozen=True)
class RunReport(Report):
    """The tiers as processes over shaped links: latency, throughput, and each tier against the plan."""

    KIND: ClassVar[str] = "run"
    FIELDS: ClassVar = {"latency_s": dict, "tiers": dict, "per_link": dict, "held_to_price": dict}

    @property
    def latency_p50_s(self) -> float | None:
        return self.doc["latency_s"].get("p50")

    @property
    def throughput_per_s(self) -> float | None:
        return self.doc.get("throughput_per_s")

    @property
    def error(self) -> float | None:
        """Measured p50 latency against the plan's, as a fraction; None when a tier ran as a stand-in."""
        return self.doc.get("error")

    @property
    def tier_times(self) -> dict[str, dict[str, Any]]:
        """Per tier: measured_s, priced_s, ratio, over, stand_in (why it is not comparable, or None)."""
        return self.doc["tiers"]

    @property
    def over_price(self) -> list[str]:
        return list(self.doc["held_to_price"]["over"])
