"""The tier processes of a run: their sockets and link settings, start-up, watch and stop."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import zmq

from edgepart.children import die_with_parent
from edgepart.compile.manifest import FILE, BuiltTier, Manifest, Network
from edgepart.errors import BadInputError, ToolError
from edgepart.plan.plan_file import PlannedLink
from edgepart.runtime.price import LOCAL_DEVICE
from edgepart.runtime.run import shaping
from edgepart.runtime.run.transport import FAILED, READY, now

START_TIMEOUT_S = 120.0
UP_PORT, DOWN_PORT = 5600, 5601


@dataclass(frozen=True)
class Layout:
    """The chain of tier processes: every tier from the device up to the highest one that runs layers
    or consumes the outputs (an empty tier in between relays), and the links between them."""

    tiers: tuple[str, ...]
    entries: dict[str, BuiltTier]  # the tiers with layers, by name
    links: tuple[PlannedLink, ...]
    output_tier: int

    @classmethod
    def of(cls, built: Manifest, network: Network) -> Layout:
        names = list(network.tiers)
        unknown = [t.name for t in built.tiers if t.name not in names] + \
            ([built.output_tier] if built.output_tier not in names else [])
        if unknown:
            raise BadInputError(f"{built.build_dir / FILE}: tier '{unknown[0]}' is not in network.tiers "
                                f"({', '.join(names)})")
        top = max([names.index(t.name) for t in built.tiers] + [names.index(built.output_tier)])
        for tier in built.tiers:  # a tier waits for every input: each must come up the link below it
            k = names.index(tier.name)
            brought = {c.tensor for c in network.links[k - 1].up} if k else {spec.name for spec in tier.inputs}
            missing = [spec.name for spec in tier.inputs if spec.name not in brought]
            if missing:
                raise BadInputError(f"{built.build_dir / FILE}: network.links[{k - 1}].up: tier '{tier.name}' needs "
                                    f"input '{missing[0]}', which the link does not bring up")
        strays = [c.tensor for link in network.links for c in link.down if c.tensor not in built.outputs]
        if strays:
            raise BadInputError(f"{built.build_dir / FILE}: network.links: '{strays[0]}' comes down a link but is not "
                                "an output of the model")
        return cls(tuple(names[: top + 1]), {t.name: t for t in built.tiers}, network.links[:top],
                   names.index(built.output_tier))


@dataclass(frozen=True)
class Chain:
    """The tier processes of a run and what each does per plan (one, or an adaptive build's): every
    tier up to the highest any plan uses, the links between them, and each plan's Layout."""

    tiers: tuple[str, ...]
    links: tuple[PlannedLink, ...]  # for their names, bandwidths and round trips (what crosses is per plan)
    layouts: dict[str, Layout]

    @classmethod
    def of(cls, plans: dict[str, Manifest]) -> Chain:
        layouts = {}
        for plan_id, built in plans.items():
            if built.network is None:
                raise BadInputError(f"{built.build_dir}: built by an edgepart without network data; compile it again")
            layouts[plan_id] = Layout.of(built, built.network)
        longest = max(layouts.values(), key=lambda layout: len(layout.tiers))
        return cls(longest.tiers, longest.links, layouts)

    def tiers_of(self, plan: str) -> tuple[str, ...]:
        """The tier processes requests of `plan` pass through."""
        return self.layouts[plan].tiers


class TierProcesses:
    """The tier processes: configured, started, watched and stopped. `device_speed` 'priced': a tier
    whose device is not this host holds each run to the time the plan priced it at."""

    def __init__(self, build_dir: Path, built: Manifest, chain: Chain, folder: Path,
                 namespaces: shaping.Namespaces | None, mode: str, device_speed: str = "host",
                 probe_link: int | None = None) -> None:
        self.build_dir, self.built, self.chain, self.folder = build_dir, built, chain, folder
        self.namespaces, self.mode, self.device_speed, self.probe_link = namespaces, mode, device_speed, probe_link
        self.processes: dict[str, subprocess.Popen] = {}

    def link_state(self, link: int) -> str:
        """The file a paced link's change injection writes (edgepart.runtime.run.shaping.LinkState)."""
        return str(self.folder / f"link-{link}.json")

    def endpoint(self, tier: int, direction: str) -> str:
        """Where tier `tier` receives messages going `direction`: shaped TCP over the link's veth
        pair in netns mode, else a Unix socket (the client reaches the device tier by one always)."""
        if self.namespaces is None or (tier == 0 and direction == "up"):
            return f"ipc://{self.folder}/{tier}.{direction}"  # by index: a long tier name would pass the limit
        address = self.namespaces.address(tier) if direction == "up" else self.namespaces.below_address(tier + 1)
        return f"tcp://{address}:{UP_PORT if direction == 'up' else DOWN_PORT}"

    def _endpoints(self, i: int) -> dict[str, str | None]:
        last = len(self.chain.tiers) - 1
        return {
            "up_in": self.endpoint(i, "up"),
            "down_in": self.endpoint(i, "down") if i < last else None,
            "up_out": self.endpoint(i + 1, "up") if i < last else None,
            "down_out": self.endpoint(i - 1, "down") if i > 0 else None,
            "results": f"ipc://{self.folder}/results" if i == 0 else None,
            "control": f"ipc://{self.folder}/control",
        }

    def _config(self, i: int) -> dict:
        links, name = self.chain.links, self.chain.tiers[i]
        paced = self.mode == "pacing"

        def side(k: int, link: PlannedLink, bps: float | None) -> dict:
            pace = None
            if paced:
                pace = {"link": link.name, "bps": bps, "one_way_s": link.rtt_s / 2}
            elif self.namespaces is not None and not self.namespaces.kernel_delay:  # tbf shapes the rate
                pace = {"link": link.name, "bps": None, "one_way_s": link.rtt_s / 2}
            return {"link": link.name, "pace": pace, "state": self.link_state(k) if paced else None}

        up = side(i, links[i], links[i].uplink_bps) if i < len(links) else None
        down = side(i - 1, links[i - 1], links[i - 1].downlink_bps) if i > 0 else None
        return {
            "tier": name, "index": i, "build": str(self.build_dir), "outputs": self.built.outputs,
            "endpoints": self._endpoints(i), "up": up, "down": down,
            "probe_to": None if self.probe_link is None else self.probe_link + 1,
            "plans": {plan: self._route(i, layout) for plan, layout in self.chain.layouts.items()},
        }

    def _route(self, i: int, layout: Layout) -> dict:
        """What tier i does for requests of the plan laid out as `layout` (edgepart.runtime.run.worker.Route)."""
        entry = layout.entries.get(self.chain.tiers[i])
        links = layout.links
        paced = entry is not None and self.device_speed == "priced" and entry.device != LOCAL_DEVICE
        return {"entry": entry.raw if entry else None, "output_tier": layout.output_tier,
                "up_tensors": {u.tensor: u.codec for u in links[i].up} if i < len(links) else {},
                "down_tensors": [d.tensor for d in links[i - 1].down] if 0 < i <= len(links) else [],
                "pad_to_s": entry.priced_s if paced else None}

    def start(self, control: zmq.Socket) -> dict[str, dict]:
        """Start every tier; once all have loaded their artifacts, returns how each runs:
        tier -> {ran_with (words), native (False: an emulator or an onnxruntime stand-in), load_s (seconds
        the worker took to load its artifact)}."""
        for i, name in enumerate(self.chain.tiers):
            config = self.folder / f"{name}.json"
            config.write_text(json.dumps(self._config(i)))
            prefix = self.namespaces.prefix(i) if self.namespaces else []
            log = open(self.folder / f"{name}.log", "wb")  # noqa: SIM115 - closed with the folder
            self.processes[name] = subprocess.Popen(
                [*prefix, sys.executable, "-m", "edgepart.runtime.run.worker", str(config)],
                stdout=log, stderr=subprocess.STDOUT, start_new_session=True, preexec_fn=die_with_parent)
        ran_with, deadline = {}, now() + START_TIMEOUT_S
        while len(ran_with) < len(self.processes):
            if control.poll(100):
                event = control.recv_json()
                if event["kind"] == FAILED and event.get("bad_input"):
                    raise BadInputError(event["error"])
                if event["kind"] == FAILED:
                    raise ToolError(f"tier '{event['tier']}' {event['error']}")
                if event["kind"] == READY:
                    ran_with[event["tier"]] = {"ran_with": event["ran_with"], "native": event["native"],
                                               "load_s": event.get("load_s")}
            dead = self.dead()
            if dead:
                raise ToolError(f"tier '{dead}' exited while starting: {self._log_tail(dead)}")
            if now() > deadline:
                raise ToolError(f"tier processes not ready after {START_TIMEOUT_S:g} s")
        return ran_with

    def dead(self) -> str | None:
        return next((name for name, p in self.processes.items() if p.poll() is not None), None)

    def all_dead(self) -> set[str]:
        return {name for name, p in self.processes.items() if p.poll() is not None}

    def kill(self, name: str) -> None:
        """Fault injection: the tier process dies at once, as a crashed server would."""
        self.processes[name].kill()

    def exit_code(self, name: str) -> int | None:
        return self.processes[name].poll()

    def stop(self) -> None:
        """Every process this run started ends here, whatever happened."""
        for process in self.processes.values():
            if process.poll() is None:
                process.terminate()
        for process in self.processes.values():
            try:
                process.wait(timeout=3)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    def _log_tail(self, name: str) -> str:
        text = (self.folder / f"{name}.log").read_text(errors="replace").strip().splitlines()
        return text[-1] if text else "(no output)"
