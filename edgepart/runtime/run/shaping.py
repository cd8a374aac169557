"""Links shaped to a deployment's bandwidth and round trip, two ways.

- netns: each tier runs in a network namespace of its own, joined to the tier below by a veth
  pair whose two ends carry tc netem (one-way delay = RTT / 2, rate = that direction's bandwidth).
  Needs root and iproute2; the run makes and removes them. A kernel without netem (containers often
  lack sch_netem) shapes the rate with tc tbf, and the receiver holds each message for the one-way
  delay.
- pacing: where the host does not allow that, the sender paces: messages leave one after another at
  the link's bandwidth, and the receiver holds each until its one-way delay has passed. The timing
  is the same model; no packet is delayed by the kernel.
Either way the cost model's rule holds: a link used by a request costs one round trip (up, and the
result or its acknowledgement down) plus bytes / bandwidth each way.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from edgepart.errors import ToolError

if TYPE_CHECKING:
    from edgepart.plan.plan_file import PlannedLink


@dataclass(frozen=True)
class Direction:
    """One direction of one link."""

    link: str
    bps: float | None  # None: the kernel shapes the rate; only the delay is added here
    one_way_s: float


class LinkState:
    """A paced link as change injection left it (edgepart.runtime.run.faults): its bandwidth as a
    factor of the deployment's and whether it is down, in a small JSON file of the run folder that
    the senders on both ends re-read when it changes (a stat per message)."""

    def __init__(self, path: str | None) -> None:
        self.path, self.seen, self.scale, self.down = path, None, 1.0, False

    def refresh(self) -> None:
        if self.path is None:
            return
        try:
            stamp = os.stat(self.path).st_mtime_ns
        except FileNotFoundError:
            return
        if stamp != self.seen:
            self.seen = stamp
            with open(self.path) as f:
                state = json.load(f)
            self.scale, self.down = float(state["scale"]), bool(state["down"])

    @staticmethod
    def write(path: str, scale: float, down: bool) -> None:
        """Replaced whole (a reader never sees half a file)."""
        with open(f"{path}.new", "w") as f:
            json.dump({"scale": scale, "down": down}, f)
        os.replace(f"{path}.new", path)


class Pacer:
    """Sender-side model of one link direction: serialisation queue, then propagation."""

    def __init__(self, direction: Direction | None, state: LinkState | None = None) -> None:
        self.direction = direction
        self.state = state or LinkState(None)
        self.free_at = 0.0

    def stamp(self, nbytes: int, sent_at: float) -> dict[str, float] | None:
        """Header fields for the receiver: when to hand the message over (`deliver_at`), or, where
        the kernel already shaped the rate, how long to hold it after it arrived (`hold_s`); None
        when the link is down (the message is lost, as on a dead link)."""
        if self.direction is None:
            return {}
        self.state.refresh()
        if self.state.down:
            return None
        if self.direction.bps is None:
            return {"hold_s": self.direction.one_way_s}
        start = max(sent_at, self.free_at)
        self.free_at = start + 8 * nbytes / (self.direction.bps * self.state.scale)
        return {"deliver_at": self.free_at + self.direction.one_way_s}


def netns_available() -> bool:
    """Root, iproute2 and tc, and the kernel lets us make a namespace."""
    if os.geteuid() != 0 or shutil.which("ip") is None or shutil.which("tc") is None:
        return False
    probe = f"edgepart-probe-{os.getpid()}"
    made = subprocess.run(["ip", "netns", "add", probe], capture_output=True).returncode == 0
    if made:
        subprocess.run(["ip", "netns", "del", probe], capture_output=True)
    return made


class Namespaces:
    """A namespace per tier, veth pairs between neighbours with netem on both ends. Addresses are
    private to the namespaces, so runs side by side do not collide; the client talks to the tiers
    over Unix sockets, which reach across namespaces. `address(i)` is tier i's address on the link
    below it, `below_address(i)` that of tier i - 1 on the same link."""

    def __init__(self, links: Sequence[PlannedLink], tag: str) -> None:
        self.links, self.tag = links, tag
        self.names = [f"ep-{tag}-{i}" for i in range(len(links) + 1)]
        self.made: list[str] = []
        self.kernel_delay = True  # netem delays packets; without it only the rate is shaped here

    def __enter__(self) -> Namespaces:
        try:
            for name in self.names:
                self._ip("netns", "add", name)
                self.made.append(name)
            for i, link in enumerate(self.links, start=1):
                lower, upper = f"ep{self.tag}l{i}", f"ep{self.tag}u{i}"
                self._ip("link", "add", lower, "type", "veth", "peer", "name", upper)
                self._ip("link", "set", upper, "netns", self.names[i])
                self._ip("link", "set", lower, "netns", self.names[i - 1])
                self._ns(i - 1, "ip", "addr", "add", f"{self.below_address(i)}/30", "dev", lower)
                self._ns(i, "ip", "addr", "add", f"{self.address(i)}/30", "dev", upper)
                for side, ns, bps in ((lower, i - 1, link.uplink_bps), (upper, i, link.downlink_bps)):
                    self._ns(ns, "ip", "link", "set", side, "up")
                    self._shape(ns, side, bps, link.rtt_s / 2)
            for i in range(len(self.names)):
                self._ns(i, "ip", "link", "set", "lo", "up")
                # a shaped link idles between requests: keep TCP's window open across the gaps
                self._ns(i, "sysctl", "-q", "-w", "net.ipv4.tcp_slow_start_after_idle=0")
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc) -> None:
        for name in reversed(self.made):  # deleting a namespace deletes its veth ends and their peers
            subprocess.run(["ip", "netns", "del", name], capture_output=True)
        self.made.clear()

    def change(self, link: int, scale: float | None = None, down: bool | None = None) -> None:
        """Change injection on link `link`: its rate to `scale` times the deployment's (both
        directions), or its veth pair down or up (packets queue in TCP and go once it is up)."""
        i, spec = link + 1, self.links[link]
        ends = ((f"ep{self.tag}l{i}", i - 1, spec.uplink_bps), (f"ep{self.tag}u{i}", i, spec.downlink_bps))
        for side, ns, bps in ends:
            if down is not None:
                self._ns(ns, "ip", "link", "set", side, "down" if down else "up")
            if scale is not None:
                self._shape(ns, side, bps * scale, spec.rtt_s / 2, verb="change")

    def _shape(self, tier: int, device: str, bps: float, one_way_s: float, verb: str = "add") -> None:
        command = [*self.prefix(tier), "tc", "qdisc", verb, "dev", device, "root"]
        if self.kernel_delay:
            result = subprocess.run([*command, "netem", "delay", f"{one_way_s * 1e6:.0f}us", "rate", f"{bps:.0f}bit",
                                     "limit", "100000"], capture_output=True, text=True)
            if result.returncode == 0:
                return
            if "unknown" not in result.stderr:
                raise ToolError(f"shaping links: tc netem failed: {result.stderr.strip()}")
            self.kernel_delay = False
        # token bucket: a burst of two full frames, so even small messages leave at the link's rate
        self._run([*command, "tbf", "rate", f"{bps:.0f}bit", "burst", "3028", "latency", "2000ms"])

    def address(self, tier: int) -> str:
        return f"10.213.{tier}.2"

    def below_address(self, tier: int) -> str:
        return f"10.213.{tier}.1"

    def prefix(self, tier: int) -> list[str]:
        """The command prefix that runs a program in tier `tier`'s namespace."""
        return ["ip", "netns", "exec", self.names[tier]]

    def _ns(self, tier: int, *command: str) -> None:
        self._run([*self.prefix(tier), *command])

    def _ip(self, *args: str) -> None:
        self._run(["ip", *args])

    @staticmethod
    def _run(command: list[str]) -> None:
        result = subprocess.run(command, capture_output=True, text=True)
        if result.returncode != 0:
            raise ToolError(f"shaping links: '{' '.join(command)}' failed: {result.stderr.strip()}")
