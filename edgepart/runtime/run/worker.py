"""One tier as a process: `python -m edgepart.runtime.run.worker CONFIG.json`.

It receives requests from the tier below (or the client, for the device), runs its sub-model,
sends on up the tensors the plan sends up its link (in their codecs), and sends the model outputs
it makes down towards the tier that consumes them. The output tier hands results to the client; an
output tier above the device acknowledges each request down the links, as a device would learn
that its request was served. Messages are held until their shaped arrival time (pacing, or the
one-way delay on a kernel-shaped link without netem). The run stops a worker with SIGTERM, and a
worker dies with the run (PR_SET_PDEATHSIG).
"""

from __future__ import annotations

import heapq
import itertools
import json
import sys
import traceback
from pathlib import Path

import zmq

from edgepart.compile.manifest import BuiltTier
from edgepart.errors import BadInputError
from edgepart.runtime.run import transport
from edgepart.runtime.run.shaping import Direction, Pacer
from edgepart.runtime.run.transport import ACK, DOWN, FAILED, READY, RESULT, UP, Message, now

UNSHAPED = Pacer(None)


class Worker:
    def __init__(self, config: dict) -> None:
        self.name, self.index, self.output_tier = config["tier"], config["index"], config["output_tier"]
        self.context = zmq.Context()
        endpoints = config["endpoints"]
        self.inbound = [self._socket(zmq.PULL, endpoints[key], bind=True) for key in ("up_in", "down_in")
                        if endpoints.get(key)]
        self.up_out = self._socket(zmq.PUSH, endpoints.get("up_out"))
        self.down_out = self._socket(zmq.PUSH, endpoints.get("down_out"))
        self.results = self._socket(zmq.PUSH, endpoints.get("results"))
        self.control = self._socket(zmq.PUSH, endpoints["control"])
        self.up, self.down = config.get("up") or {}, config.get("down") or {}
        self.up_pacer = Pacer(Direction(**self.up["pace"]) if self.up.get("pace") else None)
        self.down_pacer = Pacer(Direction(**self.down["pace"]) if self.down.get("pace") else None)
        # the tier's manifest entry (a relay has none), as the client read it from the build
        self.entry = BuiltTier.of(config["entry"], f"tier '{self.name}'") if config.get("entry") else None
        self.runner = None
        started = now()
        if self.entry:
            from edgepart.runtime.runners import runner_for  # noqa: PLC0415 - onnxruntime/TVM only where a tier runs

            self.runner = runner_for(Path(config["build"]), self.entry)
        self.load_s = now() - started  # the artifact's load: time-outs scale with it
        self.outputs = set(config["outputs"])

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
        self.control.send_json({"kind": READY, "tier": self.name,
                                "ran_with": self.runner.description if self.runner else "relay (no layers)",
                                "native": self.runner.native if self.runner else True, "load_s": self.load_s})
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
                                            "error": f"{type(exc).__name__}: {exc}"})

    def handle(self, message: Message) -> None:
        arrived = self.arrived = now()
        self.busy_before = message.timings.get(f"busy:{self.name}", 0.0) + message.receive_s
        if message.sent_at:  # it came over a link: its time on the link, queueing and delay included
            link = self.down["link"] if message.kind == UP else self.up["link"]
            direction = "up" if message.kind == UP else "down"
            message.timings[f"link:{link}:{direction}"] = arrived - message.sent_at
            message.timings[f"bytes:{link}:{direction}"] = 0 if message.kind == ACK else message.wire_bytes
        if message.kind == UP:
            self.on_up(message)
        elif message.kind == DOWN:
            self.deliver_or_forward(message.request, message.tensors, message.timings)
        elif message.kind == ACK:
            self.acknowledge(message.request, message.tensors, message.timings)

    def on_up(self, message: Message) -> None:
        tensors = dict(message.tensors)
        if self.runner is not None:
            start = now()
            produced = self.runner.run([tensors[spec.name] for spec in self.entry.inputs])
            message.timings[f"tier:{self.name}"] = now() - start
            tensors.update({spec.name: value for spec, value in zip(self.entry.outputs, produced)})
        going_up = {name: tensors[name] for name in self.up.get("tensors", {}) if name in tensors}
        if going_up:
            self.send(self.up_out, self.up_pacer, Message(UP, message.request, going_up, dict(message.timings)),
                      self.up["tensors"])
        made_here = {name: value for name, value in tensors.items() if name in self.outputs}
        if self.index == self.output_tier:
            self.deliver(message.request, made_here, message.timings)
        elif self.index > self.output_tier:
            going_down = {name: v for name, v in made_here.items() if name in self.down.get("tensors", ())}
            if going_down:
                self.send(self.down_out, self.down_pacer, Message(DOWN, message.request, going_down,
                                                                  dict(message.timings)))

    def deliver_or_forward(self, request: int, tensors: dict, timings: dict) -> None:
        if self.index == self.output_tier:
            self.deliver(request, tensors, timings)
        else:
            self.send(self.down_out, self.down_pacer, Message(DOWN, request, tensors, timings))

    def deliver(self, request: int, tensors: dict, timings: dict) -> None:
        """Results reach the tier that consumes them; the device learns of it by an acknowledgement."""
        if self.index == 0:
            self.send(self.results, UNSHAPED, Message(RESULT, request, tensors, timings))
        else:
            self.acknowledge(request, tensors, timings)

    def acknowledge(self, request: int, tensors: dict, timings: dict) -> None:
        if self.index == 0:
            self.send(self.results, UNSHAPED, Message(RESULT, request, tensors, timings))
            return
        # the outputs ride along for checking only: the acknowledgement itself is what the link carries
        self.send(self.down_out, self.down_pacer, Message(ACK, request, tensors, timings), charged_bytes=0)

    def send(self, socket, pacer: Pacer, message: Message, codec_of: dict | None = None,
             charged_bytes: int | None = None) -> None:
        message.sent_at = now()  # encoding is part of the link's cost, as in the cost model
        # how long this tier has been busy with the request: its stage time when pipelined
        message.timings[f"busy:{self.name}"] = self.busy_before + message.sent_at - self.arrived
        frames = transport.pack(message, codec_of)
        charged = transport.payload_bytes(frames) if charged_bytes is None else charged_bytes
        socket.send_multipart(transport.stamped(frames, pacer.stamp(charged, now())))


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
