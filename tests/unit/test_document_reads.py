"""Stage documents are read through their types (docs/architecture.md): no stage module indexes a
profile's, plan's, manifest's or report's top-level keys by hand, outside the module that defines
the document's type or writes it."""

from __future__ import annotations

import re
from pathlib import Path

EDGEPART = Path(__file__).resolve().parents[2] / "edgepart"
STAGES = ("graph", "toolchain", "compress", "hardware", "profile", "cost", "plan", "compile", "runtime")
KEYS = ("assignment", "cuts", "predicted", "tiers", "precisions", "network", "accuracy", "provenance",
        "per_tier", "per_link", "budgets", "deployment", "sensitivity")
BY_HAND = re.compile(r"""\[\s*["'](""" + "|".join(KEYS) + r""")["']\s*\]""")
# The document types, and the writers of each document (which build it key by key).
OWNERS = {"plan/plan_file.py", "plan/document.py", "plan/planner.py", "compile/manifest.py", "profile/document.py",
          "compress/sensitivity.py", "runtime/reports.py", "runtime/verify.py", "runtime/run/report.py"}


def reads_by_hand() -> list[str]:
    found = []
    for stage in STAGES:
        for path in sorted((EDGEPART / stage).rglob("*.py")):
            name = path.relative_to(EDGEPART).as_posix()
            if name in OWNERS:
                continue
            for number, line in enumerate(path.read_text().splitlines(), start=1):
                if BY_HAND.search(line):
                    found.append(f"edgepart/{name}:{number}: {line.strip()}")
    return found


def test_no_stage_module_reads_a_document_key_by_hand():
    assert reads_by_hand() == []


def test_the_check_sees_a_read_by_hand():
    assert BY_HAND.search('tiers = plan["deployment"]["tiers"]')
    assert BY_HAND.search("x = doc['predicted']")
    assert not BY_HAND.search("plan.predicted.latency_s")
