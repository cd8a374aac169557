"""Messages between tier processes over ZeroMQ: one multipart message per hop, a JSON header frame
(request id, kind, timings, and per tensor its codec metadata: dtype, shape, scale) followed by one
frame per tensor encoded with the link's codec (edgepart.compress.codecs)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from edgepart.compress import codecs

UP, DOWN, RESULT, ACK, READY, FAILED = "up", "down", "result", "ack", "ready", "failed"
PROBE, PROBE_BACK = "probe", "probe-back"  # a few bytes up the swept link and back, to measure it when idle
MAIN = "main"  # the plan of a build that holds one


def now() -> float:
    """CLOCK_MONOTONIC: one clock for every process on the host, network namespaces included."""
    return time.monotonic()


@dataclass
class Request:
    """One inference as the client tracks it: sent, answered (outputs, per-phase timings) or failed."""

    id: int
    # its inputs, or what makes them: seeded inputs are made when first asked for (a timed run holds
    # up to --requests of them and sends what its duration allows; 100,000 made up front took minutes)
    given: dict[str, np.ndarray] | Callable[[], dict[str, np.ndarray]]
    sent_at: float = 0.0
    done_at: float | None = None
    outputs: dict[str, np.ndarray] | None = None
    timings: dict[str, float] | None = None
    error: str | None = None
    plan: str = MAIN  # the plan it runs on (an adaptive build holds several)
    attempt: int = 0  # re-runs on the fallback plan after a link or tier failed
    estimate_bps: float | None = None  # the swept link's bandwidth as estimated when it was sent

    @property
    def inputs(self) -> dict[str, np.ndarray]:
        self.make_inputs()
        return self.given

    def make_inputs(self) -> None:
        """Its inputs made now, if they are not yet (before its clock starts, so latency leaves it out)."""
        if callable(self.given):
            self.given = self.given()


@dataclass
class Message:
    kind: str
    request: int = -1
    plan: str = MAIN
    attempt: int = 0
    tensors: dict[str, np.ndarray] = field(default_factory=dict)
    # "tier:<name>" compute, "busy:<name>" stage time, "link:<name>:up|down" seconds, "bytes:<name>:up|down"
    timings: dict[str, float] = field(default_factory=dict)
    sent_at: float = 0.0
    deliver_at: float = 0.0  # when the shaped link hands it over; 0: on arrival
    wire_bytes: int = 0  # as received: header frame and tensor frames
    receive_s: float = 0.0  # set by the receiver: seconds to receive and decode it


def pack(message: Message, codec_of: dict[str, str] | None = None) -> list[bytes]:
    """Frames for `message`; each tensor in its codec (raw when not named)."""
    metas, payloads = [], []
    for name, value in message.tensors.items():
        payload, meta = codecs.encode(np.asarray(value), (codec_of or {}).get(name, "raw"))
        metas.append({"name": name, **meta})
        payloads.append(payload)
    header = {"kind": message.kind, "request": message.request, "plan": message.plan, "attempt": message.attempt,
              "timings": message.timings,
              "sent_at": message.sent_at, "deliver_at": message.deliver_at, "tensors": metas}
    return [json.dumps(header).encode(), *payloads]


def stamped(frames: list[bytes], fields: dict[str, float]) -> list[bytes]:
    """The same frames with the link's timing fields in the header (the payload is not re-encoded)."""
    if not fields:
        return frames
    header = json.loads(frames[0])
    header.update(fields)
    return [json.dumps(header).encode(), *frames[1:]]


def payload_bytes(frames: list[bytes]) -> int:
    return sum(len(f) for f in frames[1:])


def unpack(frames: list[bytes]) -> Message:
    """The message, its arrival time set: `deliver_at` from the sender's pacing, or the moment it
    arrived plus `hold_s` (the one-way delay a kernel-shaped link does not add itself)."""
    header = json.loads(frames[0])
    tensors = {meta["name"]: codecs.decode(payload, meta) for meta, payload in zip(header["tensors"], frames[1:])}
    deliver_at = now() + header["hold_s"] if "hold_s" in header else header["deliver_at"]
    return Message(header["kind"], header["request"], header["plan"], header["attempt"], tensors, header["timings"],
                   header["sent_at"], deliver_at, sum(len(f) for f in frames))
