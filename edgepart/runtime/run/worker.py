"""One tier as a process: `python -m edgepart.runtime.run.worker CONFIG.json`.

It receives requests from the tier below (or the client, for the device), runs its sub-model,
sends on up the tensors the plan sends up its link (in their codecs), and sends the model outputs
it makes down towards the tier that consumes them. The output tier hands results to the client; an
output tier above the device acknowledges each request down the links, as a device would learn
that its request was served. Messages are held until their shaped arrival time (pacing, or the
one-way delay on a kernel-shaped link without netem), and lost while a paced link is down. The
run stops a worker with SIGTERM, and a worker dies with the run (PR_SET_PDEATHSIG).

A build of several plans (an adaptive build) has each message name its plan: the worker holds a
route per plan (the tier's artifact in that plan, what goes up and down) and loads each artifact
once. A probe goes up to the tier above the swept link and comes straight back: the client measures
the link by it when no request crosses it.
"""

from __future__ import annotations

import heapq
import itertools
import json
import sys
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import zmq

from edgepart.compile.manifest import BuiltTier
from edgepart.errors import BadInputError
from edgepart.runtime.run import transport
from edgepart.runtime.run.shaping import Direction, LinkState, Pacer
from edgepart.runtime.run.transport import ACK, DOWN, FAILED, PROBE, PROBE_BACK, READY, RESULT, UP, Message, now

UNSHAPED = Pacer(None)


@dataclass
class Route:
    """What this tier does for requests of one plan: its artifact (None: it relays), the tensors it
    sends up its link (with their codecs) and down it, where the results are consumed, and the time
    to hold each run to (a device not at hand, run at its price: `run --device-speed priced`)."""

    entry: BuiltTier | None
    runner: Any
    up_tensors: dict[str, str]
    down_tensors: list[str]
    output_tier: int
    pad_to_s: float | None


class Worker:
    def __init__(self, config: dict) -> None:
        self.name, self.index = config["tier"], config["index"]
        self.context = zmq.Context()
        endpoints = config["endpoints"]
        self.inbound = [self._socket(zmq.PULL, endpoints[key], bind=True) for key in ("up_in", "down_in")
                        if endpoints.get(key)]
        self.up_out = self._socket(zmq.PUSH, endpoints.get("up_out"))
        self.down_out = self._socket(zmq.PUSH, endpoints.get("down_out"))
        self.results = self._socket(zmq.PUSH, endpoints.get("results"))
        self.control = self._socket(zmq.PUSH, endpoints["control"])
        self.up, self.down = config.get("up") or {}, config.get("down") or {}
        self.up_pacer, self.down_pacer = self._pacer(self.up), self._pacer(self.down)
        self.probe_to = config.get("probe_to")
        self.outputs = set(config["outputs"])
        started = now()
        runners: dict[str, Any] = {}  # by artifact: plans that share a tier's artifact share its runner
        build = Path(config["build"])
        self.routes = {plan: self._route(build, route, runners) for plan, route in config["plans"].items()}
        self.load_s = now() - started  # the artifacts' load: time-outs scale with it
        self.description = "; ".join(sorted({r.description for r in runners.values()})) or "relay (no layers)"
        self.native = all(r.native for r in runners.values())

    def _route(self, build: Path, config: dict, runners: dict[str, Any]) -> Route:
        # the tier's manifest entry (a relay has none), as the client read it from the build
        entry = BuiltTier.of(config["entry"], f"tier '{self.name}'") if config.get("entry") else None
        if entry is not None and entry.artifact not in runners:
            from edgepart.runtime.runners import runner_for  # noqa: PLC0415 - onnxruntime/TVM only where a tier runs

            runners[entry.artifact] = runner_for(build, entry)
        return Route(entry, runners[entry.artifact] if entry else None, config["up_tensors"], config["down_tensors"],
                     config["output_tier"], config.get("pad_to_s"))

    @staticmethod
    def _pacer(side: dict) -> Pacer:
        return Pacer(Direction(**side["pace"]) if side.get("pace") else None, LinkState(side.get("state")))

    def _socket(self, kind: int, endpoint: str | None, bind: bool = False):
        if not endpoint:
            return None
        socket = self.context.socket(kind)
        socket.setsockopt(zmq.LINGER, 0)
        if bind:
            socket.bind(endpoint)
        else:
            socket.connect(endpoint)
        return socket

    def serve(self) -> None:
        self.control.send_json({"kind": READY, "tier": self.name, "ran_with": self.description,
                                "native": self.native, "load_s": self.load_s})
        poller = zmq.Poller()
        for socket in self.inbound:
            poller.register(socket, zmq.POLLIN)
        held: list[tuple[float, int, Message]] = []
        order = itertools.count()
        while True:
            wait_ms = None if not held else max(0, int((held[0][0] - now()) * 1000))
            for socket, _ in poller.poll(wait_ms):
                start = now()
                message = transport.unpack(socket.recv_multipart())
                message.receive_s = now() - start  # receiving and decoding: part of this tier's stage time
                heapq.heappush(held, (message.deliver_at, next(order), message))
            while held and held[0][0] <= now():
                message = heapq.heappop(held)[2]
                try:
                    self.handle(message)
                except Exception as exc:  # a failed request is reported, the tier keeps serving
                    self.control.send_json({"kind": FAILED, "tier": self.name, "request": message.request,
                                            "attempt": message.attempt, "error": f"{type(exc).__name__}: {exc}"})

    def handle(self, message: Message) -> None:
        arrived = self.arrived = now()
        self.busy_before = message.timings.get(f"busy:{self.name}", 0.0) + message.receive_s
        if message.sent_at:  # it came over a link: its time on the link, queueing and delay included
            going_up = message.kind in (UP, PROBE)
            link = self.down["link"] if going_up else self.up["link"]
            direction = "up" if going_up else "down"
            message.timings[f"link:{link}:{direction}"] = arrived - message.sent_at
            charged = 0 if message.kind in (ACK, PROBE_BACK) else message.wire_bytes
            message.timings[f"bytes:{link}:{direction}"] = charged
        if message.kind == UP:
            self.on_up(message)
        elif message.kind == DOWN:
            self.deliver_or_forward(message)
        elif message.kind == ACK:
            self.acknowledge(message)
        elif message.kind == PROBE:
            self.on_probe(message)
        elif message.kind == PROBE_BACK:
            self.pass_down(message, charged_bytes=0)

    def on_up(self, message: Message) -> None:
        route = self.routes[message.plan]
        tensors = dict(message.tensors)
        if route.runner is not None:
            start = now()
            produced = route.runner.run([tensors[spec.name] for spec in route.entry.inputs])
            if route.pad_to_s is not None:  # a device not at hand takes the time the plan priced it at
                time.sleep(max(0.0, route.pad_to_s - (now() - start)))
            message.timings[f"tier:{self.name}"] = now() - start
            tensors.update({spec.name: value for spec, value in zip(route.entry.outputs, produced)})
        going_up = {name: tensors[name] for name in route.up_tensors if name in tensors}
        if going_up:
            self.send(self.up_out, self.up_pacer, self.reply(message, UP, going_up), route.up_tensors)
        made_here = {name: value for name, value in tensors.items() if name in self.outputs}
        if self.index == route.output_tier:
            self.acknowledge(self.reply(message, RESULT, made_here))
        elif self.index > route.output_tier:
            going_down = {name: v for name, v in made_here.items() if name in route.down_tensors}
            if going_down:
                self.send(self.down_out, self.down_pacer, self.reply(message, DOWN, going_down))

    @staticmethod
    def reply(message: Message, kind: str, tensors: dict) -> Message:
        """A message of the same request, attempt and plan, with the timings so far."""
        return Message(kind, message.request, message.plan, message.attempt, tensors, dict(message.timings))

    def deliver_or_forward(self, message: Message) -> None:
        route = self.routes[message.plan]
        if self.index == route.output_tier:
            self.acknowledge(message)
        else:
            self.send(self.down_out, self.down_pacer, self.reply(message, DOWN, message.tensors))

    def acknowledge(self, message: Message) -> None:
        """Results reach the tier that consumes them; the device learns of it by an acknowledgement."""
        if self.index == 0:
            self.send(self.results, UNSHAPED, self.reply(message, RESULT, message.tensors))
            return
        # the outputs ride along for checking only: the acknowledgement itself is what the link carries
        self.send(self.down_out, self.down_pacer, self.reply(message, ACK, message.tensors), charged_bytes=0)

    def on_probe(self, message: Message) -> None:
        """Up to the tier above the swept link, which sends it straight back (its bytes measured the link)."""
        if self.index < self.probe_to:
            self.send(self.up_out, self.up_pacer, self.reply(message, PROBE, message.tensors))
        else:
            self.pass_down(self.reply(message, PROBE_BACK, {}), charged_bytes=0)

    def pass_down(self, message: Message, charged_bytes: int | None = None) -> None:
        if self.index == 0:
            self.send(self.results, UNSHAPED, message)
        else:
            self.send(self.down_out, self.down_pacer, self.reply(message, message.kind, message.tensors),
                      charged_bytes=charged_bytes)

    def send(self, socket, pacer: Pacer, message: Message, codec_of: dict | None = None,
             charged_bytes: int | None = None) -> None:
        message.sent_at = now()  # encoding is part of the link's cost, as in the cost model
        # how long this tier has been busy with the request: its stage time when pipelined
        message.timings[f"busy:{self.name}"] = self.busy_before + message.sent_at - self.arrived
        frames = transport.pack(message, codec_of)
        charged = transport.payload_bytes(frames) if charged_bytes is None else charged_bytes
        fields = pacer.stamp(charged, now())
        if fields is None:  # the link is down: the message is lost
            return
        socket.send_multipart(transport.stamped(frames, fields))


def main() -> None:
    config = json.loads(Path(sys.argv[1]).read_text())
    try:
        worker = Worker(config)
    except Exception as exc:  # reported to the run, which names the tier and stops
        context = zmq.Context()
        control = context.socket(zmq.PUSH)
        control.connect(config["endpoints"]["control"])
        control.send_json({"kind": FAILED, "tier": config["tier"], "request": None,
                           "error": str(exc) if isinstance(exc, BadInputError) else
                           f"cannot start: {type(exc).__name__}: {exc}", "bad_input": isinstance(exc, BadInputError),
                           "traceback": traceback.format_exc()[-2000:]})
        control.close(linger=2000)
        sys.exit(1)
    worker.serve()


if __name__ == "__main__":
    main()
