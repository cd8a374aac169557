"""run(build) -> report: start a process per tier, shape the links, stream requests through the
chain, check every result against onnxruntime, and compare what was measured with the plan.

Closed loop (`rate` None): one request at a time, the plan's latency objective. Open loop: requests
leave at `rate` per second whatever comes back, the pipelined (throughput) regime.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import zmq

from edgepart.children import die_with_parent
from edgepart.compile import manifest
from edgepart.errors import BadInputError, CheckFailedError, ToolError
from edgepart.runtime.run import shaping, transport
from edgepart.runtime.run.transport import FAILED, READY, UP, Message, now

SHAPING = ("auto", "netns", "pacing", "ideal")
START_TIMEOUT_S = 120.0
UP_PORT, DOWN_PORT = 5600, 5601
WARMUP = 5
MAX_FAILURES = 10  # lost requests after which a run stops sending


@dataclass(frozen=True)
class RunOptions:
    requests: int = 100
    rate: float | None = None  # requests per second; None: closed loop
    rate_max: bool = False  # open loop at the rate the slowest stage sustains (measured while warming up)
    shaping: str = "auto"
    timeout_s: float | None = None  # per request; default from the plan's prediction
    check: bool = True  # each result against onnxruntime on the original model
    seed: int = 0
    model: str | None = None  # the original model, if it moved since compile


@dataclass
class Request:
    id: int
    inputs: dict[str, np.ndarray]
    sent_at: float = 0.0
    done_at: float | None = None
    outputs: dict[str, np.ndarray] | None = None
    timings: dict[str, float] | None = None
    error: str | None = None


def run(build_dir: str | Path, options: RunOptions = RunOptions(),
        progress: Callable[[int], None] = lambda n: None) -> dict[str, Any]:
    build_dir = Path(build_dir)
    doc = manifest.load(build_dir)
    network = doc.get("network")
    if network is None:
        raise BadInputError(f"{build_dir}: built by an edgepart without network data; compile it again")
    from edgepart.runtime.verify import original_model  # noqa: PLC0415 - onnxruntime

    model = original_model(doc, options.model)
    layout = _layout(doc, network)
    shaping_mode = _shaping_mode(options.shaping, layout)
    timeout_s = options.timeout_s or max(10.0, 20 * (network["predicted"]["latency_s"] or 0.0))
    with tempfile.TemporaryDirectory(prefix="edgepart-run-") as tmp, ExitStack() as stack:
        namespaces = None
        if shaping_mode == "netns":
            namespaces = stack.enter_context(shaping.Namespaces(layout["links"], str(os.getpid())))
        context = zmq.Context()
        stack.callback(context.destroy, 0)
        client = _Client(context, Path(tmp), doc["outputs"])
        workers = _Workers(build_dir, doc, layout, Path(tmp), client, namespaces, shaping_mode)
        stack.callback(workers.stop)
        ran_with = workers.start()
        requests = _requests(model, options)
        client.stream(requests[:WARMUP], None, timeout_s, workers)  # warm caches, sockets, TCP windows
        broken = next((r.error for r in requests[:WARMUP] if r.error), None)
        if broken:
            raise ToolError(f"warm-up failed: {broken}")
        rate = slowest_stage_rate(requests[:WARMUP], layout, shaping_mode) if options.rate_max else options.rate
        started = now()
        client.stream(requests[WARMUP:], rate, timeout_s, workers, progress)
        wall_s = now() - started
    measured = requests[WARMUP:]
    if namespaces is not None and not namespaces.kernel_delay:
        shaping_mode = "netns-tbf"
    report = {"build": str(build_dir), **_report(doc, network, layout, measured, wall_s, rate, shaping_mode, ran_with)}
    errors = [r for r in measured if r.error]
    if errors:
        failed = [r for r in errors if r.sent_at]
        reason = (failed or errors)[0].error
        ids = f" (ids {_ids([r.id - WARMUP for r in failed])})" if failed else ""
        raise CheckFailedError(f"{reason}: {len(failed)} of {len(measured)} requests failed{ids}, "
                               f"{len(errors) - len(failed)} not sent", report)
    if options.check:
        _check(doc, model, measured, report)
    return report


def slowest_stage_rate(warmup: list[Request], layout: dict, mode: str) -> float:
    """Requests per second the slowest stage sustains: a tier's busy time per request (compute,
    coding, sending) or a link's serialisation time (bytes / bandwidth, both directions)."""
    done = [r for r in warmup if r.timings]
    stages = [statistics.median([r.timings.get(f"busy:{t}", 0.0) for r in done]) for t in layout["tiers"]]
    if mode != "ideal":
        for link in layout["links"]:
            stages.append(statistics.median([8 * r.timings.get(f"bytes:{link['name']}:up", 0) / link["uplink_bps"]
                                             + 8 * r.timings.get(f"bytes:{link['name']}:down", 0)
                                             / link["downlink_bps"] for r in done]))
    return 1.0 / max(max(stages), 1e-6)


def _layout(doc: dict, network: dict) -> dict:
    """The chain of tier processes: every tier from the device up to the highest one that runs layers
    or consumes the outputs (an empty tier in between relays)."""
    names = network["tiers"]
    entries = {t["name"]: t for t in doc["tiers"]}
    used = [names.index(t["name"]) for t in doc["tiers"]] + [names.index(doc["output_tier"])]
    top = max(used)
    return {"tiers": names[: top + 1], "entries": entries, "links": network["links"][:top],
            "output_tier": names.index(doc["output_tier"])}


def _shaping_mode(requested: str, layout: dict) -> str:
    if requested not in SHAPING:
        raise BadInputError(f"--links: unknown shaping '{requested}'; choose from {', '.join(SHAPING)}")
    if not layout["links"] or requested in ("pacing", "ideal"):
        return requested if layout["links"] else "ideal"
    available = shaping.netns_available()
    if requested == "netns" and not available:
        raise BadInputError("--links netns needs root, iproute2 and tc (use --links pacing)")
    return "netns" if available else "pacing"


def _requests(model: Path, options: RunOptions) -> list[Request]:
    """Seeded inputs, a different seed per request."""
    import onnxruntime as ort  # noqa: PLC0415

    from edgepart.graph import feeds  # noqa: PLC0415

    session = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    return [Request(i, feeds.for_session(session, options.seed + i)) for i in range(WARMUP + options.requests)]


class _Client:
    """The device-side driver: sends inputs to the device tier, collects results and failures."""

    def __init__(self, context: zmq.Context, folder: Path, outputs: list[str]) -> None:
        self.results = context.socket(zmq.PULL)
        self.results.bind(f"ipc://{folder}/results")
        self.control = context.socket(zmq.PULL)
        self.control.bind(f"ipc://{folder}/control")
        self.to_device = context.socket(zmq.PUSH)
        self.to_device.setsockopt(zmq.LINGER, 0)
        self.expected = set(outputs)

    def stream(self, requests: list[Request], rate: float | None, timeout_s: float, workers: _Workers,
               progress: Callable[[int], None] = lambda n: None) -> None:
        poller = zmq.Poller()
        poller.register(self.results, zmq.POLLIN)
        poller.register(self.control, zmq.POLLIN)
        by_id = {r.id: r for r in requests}
        pending: dict[int, Request] = {}
        start, sent, failures = now(), 0, 0
        due = [start + k / rate for k in range(len(requests))] if rate else []
        while sent < len(requests) or pending:
            if sent < len(requests) and (not pending if rate is None else now() >= due[sent]):
                request = requests[sent]
                request.sent_at = now()
                self.to_device.send_multipart(transport.pack(Message(UP, request.id, request.inputs)))
                pending[request.id] = request
                sent += 1
                continue
            wait = 0.05 if rate is None or sent == len(requests) else min(0.05, max(0.0, due[sent] - now()))
            for socket, _ in poller.poll(int(wait * 1000)):
                if socket is self.results:
                    self._result(transport.unpack(socket.recv_multipart()), by_id, pending, progress)
                else:
                    event = socket.recv_json()
                    if event["kind"] == FAILED and event.get("request") in pending:
                        pending.pop(event["request"]).error = f"tier '{event['tier']}': {event['error']}"
                        failures += 1
                        progress(1)
            dead = workers.dead()
            for request in list(pending.values()):
                if dead or now() - request.sent_at > timeout_s:
                    request.error = (f"tier '{dead}' stopped (exit code {workers.exit_code(dead)})" if dead
                                     else f"no result within {timeout_s:g} s (a lost message or a dropped link)")
                    pending.pop(request.id)
                    failures += 1
            if dead or failures >= MAX_FAILURES:  # nothing more would come through: stop sending
                for request in [*requests[sent:], *pending.values()]:
                    request.error = request.error or (f"tier '{dead}' stopped (exit code {workers.exit_code(dead)})"
                                                      if dead else f"the run stopped after {failures} failures")
                return

    def _result(self, message: Message, by_id: dict, pending: dict, progress) -> None:
        request = by_id.get(message.request)
        if request is None or request.error:
            return
        request.outputs = {**(request.outputs or {}), **message.tensors}
        request.timings = {**(request.timings or {}), **message.timings}
        if self.expected <= set(request.outputs):
            request.done_at = now()
            pending.pop(request.id, None)
            progress(1)


class _Workers:
    """The tier processes: configured, started, watched and stopped."""

    def __init__(self, build_dir: Path, doc: dict, layout: dict, folder: Path, client: _Client,
                 namespaces: shaping.Namespaces | None, mode: str) -> None:
        self.build_dir, self.doc, self.layout, self.folder = build_dir, doc, layout, folder
        self.client, self.namespaces, self.mode = client, namespaces, mode
        self.processes: dict[str, subprocess.Popen] = {}
        client.to_device.connect(self.endpoint(0, "up"))

    def endpoint(self, tier: int, direction: str) -> str:
        """Where tier `tier` receives messages going `direction`: shaped TCP over the link's veth
        pair in netns mode, else a Unix socket (the client reaches the device tier by one always)."""
        if self.namespaces is None or (tier == 0 and direction == "up"):
            return f"ipc://{self.folder}/{self.layout['tiers'][tier]}.{direction}"
        address = self.namespaces.address(tier) if direction == "up" else self.namespaces.below_address(tier + 1)
        return f"tcp://{address}:{UP_PORT if direction == 'up' else DOWN_PORT}"

    def _endpoints(self, i: int) -> dict[str, str | None]:
        last = len(self.layout["tiers"]) - 1
        return {
            "up_in": self.endpoint(i, "up"),
            "down_in": self.endpoint(i, "down") if i < last else None,
            "up_out": self.endpoint(i + 1, "up") if i < last else None,
            "down_out": self.endpoint(i - 1, "down") if i > 0 else None,
            "results": f"ipc://{self.folder}/results" if i == 0 else None,
            "control": f"ipc://{self.folder}/control",
        }

    def _config(self, i: int) -> dict:
        links, name = self.layout["links"], self.layout["tiers"][i]
        paced = self.mode == "pacing"

        def side(link: dict, key: str) -> dict | None:
            if paced:
                return {"link": link["name"], "bps": link[key], "one_way_s": link["rtt_s"] / 2}
            if self.namespaces is not None and not self.namespaces.kernel_delay:  # tbf shapes the rate
                return {"link": link["name"], "bps": None, "one_way_s": link["rtt_s"] / 2}
            return None

        up = links[i] if i < len(links) else None
        down = links[i - 1] if i > 0 else None
        return {
            "tier": name, "index": i, "output_tier": self.layout["output_tier"], "build": str(self.build_dir),
            "entry": self.layout["entries"].get(name), "outputs": self.doc["outputs"],
            "endpoints": self._endpoints(i),
            "up": up and {"link": up["name"], "tensors": {u["tensor"]: u["codec"] for u in up["up"]},
                          "pace": side(up, "uplink_bps")},
            "down": down and {"link": down["name"], "tensors": [d["tensor"] for d in down["down"]],
                              "pace": side(down, "downlink_bps")},
        }

    def start(self) -> dict[str, str]:
        import json  # noqa: PLC0415

        for i, name in enumerate(self.layout["tiers"]):
            config = self.folder / f"{name}.json"
            config.write_text(json.dumps(self._config(i)))
            prefix = self.namespaces.prefix(i) if self.namespaces else []
            log = open(self.folder / f"{name}.log", "wb")  # noqa: SIM115 - closed with the folder
            self.processes[name] = subprocess.Popen(
                [*prefix, sys.executable, "-m", "edgepart.runtime.run.worker", str(config)],
                stdout=log, stderr=subprocess.STDOUT, start_new_session=True, preexec_fn=die_with_parent)
        ran_with, deadline = {}, now() + START_TIMEOUT_S
        while len(ran_with) < len(self.processes):
            if self.client.control.poll(100):
                event = self.client.control.recv_json()
                if event["kind"] == FAILED:
                    raise ToolError(f"tier '{event['tier']}' {event['error']}")
                if event["kind"] == READY:
                    ran_with[event["tier"]] = event["ran_with"]
            dead = self.dead()
            if dead:
                raise ToolError(f"tier '{dead}' exited while starting: {self._log_tail(dead)}")
            if now() > deadline:
                raise ToolError(f"tier processes not ready after {START_TIMEOUT_S:g} s")
        return ran_with

    def dead(self) -> str | None:
        return next((name for name, p in self.processes.items() if p.poll() is not None), None)

    def exit_code(self, name: str) -> int | None:
        return self.processes[name].poll()

    def pids(self) -> dict[str, int]:
        return {name: p.pid for name, p in self.processes.items()}

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


def _report(doc: dict, network: dict, layout: dict, requests: list[Request], wall_s: float, rate: float | None,
            mode: str, ran_with: dict[str, str]) -> dict[str, Any]:
    done = [r for r in requests if r.done_at is not None and not r.error]
    latencies = [r.done_at - r.sent_at for r in done]
    predicted = network["predicted"]
    tiers = {}
    for name in layout["tiers"]:
        samples = [r.timings.get(f"tier:{name}") for r in done if r.timings.get(f"tier:{name}") is not None]
        tiers[name] = {"ran_with": ran_with.get(name), "measured_s": _median(samples),
                       "predicted_s": predicted["compute_s"].get(name)}
    links = {}
    for link in layout["links"]:
        name = link["name"]
        up = [r.timings.get(f"link:{name}:up", 0.0) + r.timings.get(f"link:{name}:down", 0.0) for r in done
              if f"link:{name}:up" in r.timings]
        bytes_up = [r.timings.get(f"bytes:{name}:up", 0) for r in done]
        bytes_down = [r.timings.get(f"bytes:{name}:down", 0) for r in done]
        used = bool(up)
        links[name] = {"measured_s": _median(up), "used": used,
                       "predicted_s": (predicted["transfer_s"].get(name, 0.0) + link["rtt_s"]) if used else 0.0,
                       "bytes_up": int(sum(bytes_up)), "bytes_down": int(sum(bytes_down)),
                       "bandwidth": {"up_bps": link["uplink_bps"], "down_bps": link["downlink_bps"],
                                     "rtt_s": link["rtt_s"]}}
    measured_latency = _median(latencies)
    predicted_latency = predicted["latency_s"]
    return {
        "kind": "edgepart.run", "model": doc["model"]["path"], "links": mode,
        "shaping": {"netns": "veth pairs in network namespaces with tc netem (delay RTT/2, rate)",
                    "netns-tbf": "veth pairs in network namespaces, rate by tc tbf in the kernel; one-way delay "
                                 "(RTT/2) held by the receiver (this kernel has no netem)",
                    "pacing": "paced in the sender: bandwidth queue and one-way delay (RTT/2) per direction",
                    "ideal": "no shaping (Unix sockets)"}[mode],
        "mode": "closed loop" if rate is None else "open loop", "rate_per_s": rate,
        "requests": len(requests), "completed": len(done),
        "failed": [r.id - WARMUP for r in requests if r.error and r.sent_at],
        "not_sent": sum(1 for r in requests if r.error and not r.sent_at),
        "latency_s": {"p50": _percentile(latencies, 50), "p90": _percentile(latencies, 90),
                      "p99": _percentile(latencies, 99)},
        "throughput_per_s": len(done) / wall_s if wall_s > 0 else None,
        "predicted": {"latency_s": predicted_latency, "throughput_s": predicted["throughput_s"]},
        "error": (measured_latency / predicted_latency - 1) if measured_latency and predicted_latency else None,
        "tiers": tiers,
        "per_link": links,
    }


def _check(doc: dict, model: Path, requests: list[Request], report: dict) -> None:
    """Every result against onnxruntime on the original model, and in the order sent."""
    import onnxruntime as ort  # noqa: PLC0415

    from edgepart.runtime.verify import TOLERANCE, Chain  # noqa: PLC0415

    session = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    tolerance = TOLERANCE[Chain.least_precise(doc)]
    worst = 0.0
    for request in requests:
        expected = dict(zip(names, session.run(None, request.inputs)))
        for name in doc["outputs"]:
            ref = expected[name].astype(np.float64)
            error = float(np.max(np.abs(request.outputs[name].astype(np.float64) - ref)) / (np.max(np.abs(ref)) or 1))
            worst = max(worst, error)
            if error > tolerance:
                raise CheckFailedError(f"request {request.id - WARMUP}: output '{name}' differs from onnxruntime "
                                       f"(relative error {error:.3g} > {tolerance:g})", report)
    arrival = [r.id for r in sorted(requests, key=lambda r: r.done_at)]
    report["checked"] = {"against": "onnxruntime on the original model", "worst_relative_error": worst,
                         "tolerance": tolerance, "in_order": arrival == sorted(arrival)}
    if arrival != sorted(arrival):
        raise CheckFailedError("results came back out of order", report)


def _median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def _percentile(values: list[float], q: float) -> float | None:
    return float(np.percentile(values, q)) if values else None


def _ids(ids: list[int]) -> str:
    shown = ", ".join(map(str, ids[:10]))
    return shown + (f", ... ({len(ids)} in all)" if len(ids) > 10 else "")
