"""Change and fault injection during a run (`run --event AT:WHAT`), for tests, benches and drills.

  10s:wifi=2Mbit/s    link 'wifi' to 2 Mbit/s up (its downlink scaled by the same factor)
  20s:wifi=down       link 'wifi' stops delivering ...
  23s:wifi=up         ... and works again
  30s:kill=edge       the tier process 'edge' is killed (SIGKILL)

Times count from the first measured request. On network-namespace links the change is the
kernel's (tc qdisc change, ip link set down/up: TCP holds what was sent and delivers it once the
link is up); on paced links the senders re-read the link's state (edgepart.runtime.run.shaping.
LinkState), and a message sent while the link is down is lost.
"""

from __future__ import annotations

from dataclasses import dataclass

from edgepart.errors import BadInputError
from edgepart.hardware import units
from edgepart.plan.plan_file import PlannedLink
from edgepart.runtime.run import shaping
from edgepart.runtime.run.processes import Chain, TierProcesses

ACTIONS = ("rate", "down", "up", "kill")


@dataclass(frozen=True)
class Event:
    at_s: float
    action: str  # one of ACTIONS
    target: str  # a link's name; for kill a tier's
    bps: float | None = None  # for rate: the new uplink bandwidth

    def describe(self) -> str:
        what = {"rate": f"{self.target} to {(self.bps or 0) / 1e6:g} Mbit/s", "down": f"{self.target} down",
                "up": f"{self.target} up", "kill": f"tier {self.target} killed"}[self.action]
        return f"{self.at_s:g} s: {what}"


def parse(spec: str, option: str = "--event") -> Event:
    """AT:LINK=RATE, AT:LINK=down, AT:LINK=up or AT:kill=TIER; AT in seconds (a trailing 's' allowed)."""
    when, sep, what = spec.partition(":")
    target, eq, value = what.partition("=")
    if not sep or not eq or not target or not value:
        raise BadInputError(f"{option} '{spec}': expected AT:LINK=RATE, AT:LINK=down, AT:LINK=up or AT:kill=TIER "
                            "(e.g. 10s:wifi=2Mbit/s)")
    try:
        at = float(when.strip().removesuffix("s"))
    except ValueError:
        raise BadInputError(f"{option} '{spec}': '{when}' is not a time in seconds") from None
    if not at >= 0:
        raise BadInputError(f"{option} '{spec}': the time must be 0 or later")
    target, value = target.strip(), value.strip()
    if target == "kill":
        return Event(at, "kill", value)
    if value in ("down", "up"):
        return Event(at, value, target)
    return Event(at, "rate", target, units.parse(value, "bandwidth", f"{option} '{spec}'"))


class Injector:
    """Applies the events as their times come (`due`), and says what each link was set to. `links`:
    the build's links; one this run does not use (a plan of an adaptive build that stays below it)
    takes its events without effect, so that every run of the build has the same phases."""

    def __init__(self, events: tuple[Event, ...], links: tuple[PlannedLink, ...], chain: Chain,
                 workers: TierProcesses, namespaces: shaping.Namespaces | None, mode: str) -> None:
        names, live = [link.name for link in links], [link.name for link in chain.links]
        for event in events:
            if event.action == "kill" and event.target not in chain.tiers:
                raise BadInputError(f"--event kill={event.target}: no such tier in this run "
                                    f"({', '.join(chain.tiers)})")
            if event.action == "kill" and event.target == chain.tiers[0]:
                raise BadInputError(f"--event kill={event.target}: the device tier runs the client's requests; "
                                    "kill a tier above it")
            if event.action != "kill" and event.target not in names:
                raise BadInputError(f"--event {event.target}=...: no such link ({', '.join(names) or 'none'})")
            if event.action != "kill" and event.target in live and mode == "ideal":
                raise BadInputError("--event: link changes need shaped links (--links shaped, netns or pacing)")
        self.pending = sorted(events, key=lambda e: e.at_s)
        self.links, self.live = {link.name: link for link in links}, live
        self.workers, self.namespaces = workers, namespaces
        self.scale = {name: 1.0 for name in names}
        self.down = {name: False for name in names}
        self.applied: list[dict] = []

    def due(self, elapsed_s: float) -> None:
        while self.pending and self.pending[0].at_s <= elapsed_s:
            event = self.pending.pop(0)
            self._apply(event)
            self.applied.append({"at_s": event.at_s, "applied_at_s": elapsed_s, "event": event.describe(),
                                 "uplink_bps": {name: self.uplink_bps(name) for name in self.links}})

    def _apply(self, event: Event) -> None:
        if event.action == "kill":
            self.workers.kill(event.target)
            return
        if event.action == "rate":
            self.scale[event.target] = event.bps / self.links[event.target].uplink_bps
        else:
            self.down[event.target] = event.action == "down"
        if event.target not in self.live:
            return
        k = self.live.index(event.target)
        if self.namespaces is not None:
            self.namespaces.change(k, scale=self.scale[event.target] if event.action == "rate" else None,
                                   down=None if event.action == "rate" else self.down[event.target])
        else:
            shaping.LinkState.write(self.workers.link_state(k), self.scale[event.target], self.down[event.target])

    def uplink_bps(self, link: str) -> float:
        """The link's uplink bandwidth as the events have set it so far (0 while it is down)."""
        return 0.0 if self.down[link] else self.links[link].uplink_bps * self.scale[link]
