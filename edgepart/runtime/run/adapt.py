"""`run --adapt`: which plan of an adaptive build (edgepart.plan.adaptive) each request runs.

The swept link's uplink bandwidth is estimated from the run's own transfers: every message that
crosses it up tells its bytes and its time on the link (the receiver's arrival minus the sender's
send, less the link's one-way delay); the estimate is the median of the last few. When no request
has crossed the link for a while (the plan in use keeps everything below it) a probe of a few KiB
measures it. At each request boundary the cheapest plan at the estimate is chosen by the plans'
latency lines, but the plan in use is kept unless another is predicted faster by more than the
hysteresis, so an estimate wandering around a breakpoint does not flap between two plans.

When a link stops delivering (a request overdue: OVERDUE_FACTOR times its plan's predicted latency
at the estimate) or a tier above the device dies, the requests in
flight re-run on the fallback plan (every layer on the device) and later ones use it; a probe that
comes back says the link works again. Plans through a dead tier are not used again.
"""

from __future__ import annotations

import statistics
from collections import deque
from dataclasses import dataclass, field

from edgepart.compile.manifest import AdaptiveBuild
from edgepart.plan.adaptive import Line

HYSTERESIS = 0.1  # another plan must be predicted this much faster (a fraction) to switch to it
WINDOW = 3  # measurements the estimate is the median of
MIN_BYTES = 4096  # a smaller transfer measures the link's delay more than its bandwidth
PROBE_BYTES = 16384
PROBE_EVERY_S = 0.25  # a probe when nothing crossed the link for this long
PROBE_LOST_S = 0.5  # a probe not back by then is taken as lost (a later one is sent)
OVERDUE_FACTOR = 4.0  # a request is overdue after this many times its plan's latency at the estimate ...
OVERDUE_MIN_S = 0.2  # ... and at least this long


def choose(lines: dict[str, Line], current: str, bps: float, usable: list[str],
           hysteresis: float = HYSTERESIS) -> str:
    """The plan for a request at bandwidth `bps`: the cheapest usable one by its latency line, unless
    the current plan is usable and within `hysteresis` of it."""
    best = min(usable, key=lambda plan: (lines[plan].at(bps), plan))
    if current in usable and lines[best].at(bps) >= (1 - hysteresis) * lines[current].at(bps):
        return current
    return best


@dataclass
class Adapter:
    """The client's choice of plan, its estimate of the link, and the state of the link and tiers."""

    build: AdaptiveBuild
    tiers_of: dict[str, tuple[str, ...]]  # per plan, the tier processes its requests pass through
    one_way_s: float  # the swept link's one-way delay
    estimate_bps: float  # until measured: the bandwidth the build's start plan was made for
    hysteresis: float = HYSTERESIS
    current: str = ""
    link_up: bool = True
    dead: set[str] = field(default_factory=set)
    samples: deque = field(default_factory=lambda: deque(maxlen=WINDOW))
    last_measured: float = 0.0
    probe_sent_at: float | None = None
    probes: int = 0
    switches: list[dict] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.lines = {plan: Line(*line) for plan, line in self.build.lines.items()}
        self.current = self.current or self.build.start

    @property
    def fallback(self) -> str:
        return self.build.fallback

    def plan(self, request: int) -> str:
        """The plan for the next request (a request boundary: switching here loses nothing)."""
        if not self.link_up:
            chosen = self.fallback
        else:
            usable = [plan for plan, tiers in self.tiers_of.items() if not self.dead & set(tiers)]
            chosen = choose(self.lines, self.current if self.current in usable else self.fallback,
                            self.estimate_bps, usable, self.hysteresis)
        if chosen != self.current:
            self.switches.append({"request": request, "from": self.current, "to": chosen,
                                  "estimate_bps": self.estimate_bps, "link_up": self.link_up})
            self.current = chosen
        return chosen

    def measured(self, nbytes: float, seconds: float, at: float) -> None:
        """One transfer up the swept link: `nbytes` in `seconds` (send to arrival)."""
        on_wire = seconds - self.one_way_s
        if nbytes < MIN_BYTES or on_wire <= 0:
            return
        self.samples.append(8 * nbytes / on_wire)
        self.estimate_bps = statistics.median(self.samples)
        self.last_measured = at

    def overdue_after_s(self, plan: str) -> float | None:
        """Seconds after which a request of `plan` counts as lost on the link (a link that became many
        times slower than estimated is as good as lost: the device answers sooner); None for the
        fallback, which crosses no link (it has the run's own time-out)."""
        if plan == self.fallback:
            return None
        return max(OVERDUE_MIN_S, OVERDUE_FACTOR * self.lines[plan].at(self.estimate_bps))

    def link_failed(self) -> None:
        self.link_up = False
        self.samples.clear()

    def tier_died(self, tier: str) -> None:
        self.dead.add(tier)

    def uses_dead_tier(self, plan: str) -> bool:
        return bool(self.dead & set(self.tiers_of[plan]))

    def probe_due(self, at: float) -> bool:
        quiet = at - self.last_measured > PROBE_EVERY_S
        waiting = self.probe_sent_at is not None and at - self.probe_sent_at < PROBE_LOST_S
        return (quiet or not self.link_up) and not waiting

    def probe_sent(self, at: float) -> None:
        self.probe_sent_at = at
        self.probes += 1

    def probe_back(self, nbytes: float, seconds: float, at: float) -> None:
        """A probe came back: the link delivers again, and its time measured it."""
        self.probe_sent_at = None
        if not self.link_up:
            self.link_up = True
        self.measured(nbytes, seconds, at)
