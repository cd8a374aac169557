"""run(build) -> report: start a process per tier, shape the links, stream requests through the
chain, check every result against onnxruntime, and compare what was measured with the plan.

Closed loop (`rate` None): one request at a time, the plan's latency objective. Open loop: requests
leave at `rate` per second whatever comes back, the pipelined (throughput) regime.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import zmq

from edgepart.compile import manifest
from edgepart.compress import data
from edgepart.errors import BadInputError, CheckFailedError, ToolError
from edgepart.graph import feeds, sessions
from edgepart.runtime.reports import RunReport
from edgepart.runtime.run import report, shaping, transport
from edgepart.runtime.run.processes import Layout, TierProcesses
from edgepart.runtime.run.transport import FAILED, UP, Message, Request, now

SHAPING = ("auto", "netns", "pacing", "ideal")
WARMUP = 5
MAX_FAILURES = 10  # lost requests after which a run stops sending
LOST = "no result within"  # how a lost request's error begins
MAX_SOCKET_FOLDER = 60  # characters; the run folder and the socket names add about 35


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
    inputs: str | None = None  # .npz of samples (an array per model input, samples first)


def run(build_dir: str | Path, options: RunOptions = RunOptions(),
        progress: Callable[[int], None] = lambda n: None) -> RunReport:
    build_dir = Path(build_dir)
    built = manifest.Manifest.load(build_dir)
    for tier in built.tiers:  # a changed artifact is bad input (exit 2) here, as in verify, not a tier crash
        manifest.artifact_path(build_dir, tier)
        manifest.checked_submodel(build_dir, tier)
    network = built.network
    if network is None:
        raise BadInputError(f"{build_dir}: built by an edgepart without network data; compile it again")
    from edgepart.runtime.verify import original_model  # noqa: PLC0415 - onnxruntime

    model = original_model(built, options.model)
    layout = Layout.of(built, network)
    shaping_mode = _shaping_mode(options.shaping, layout)
    priced_s = network.latency_s or 0.0
    with tempfile.TemporaryDirectory(prefix="edgepart-run-", dir=_socket_folder()) as tmp, ExitStack() as stack:
        namespaces = None
        if shaping_mode == "netns":
            namespaces = stack.enter_context(shaping.Namespaces(layout.links, str(os.getpid())))
        context = zmq.Context()
        stack.callback(context.destroy, 0)
        client = _Client(context, Path(tmp), built.outputs)
        workers = TierProcesses(build_dir, built, layout, Path(tmp), namespaces, shaping_mode)
        stack.callback(workers.stop)
        client.to_device.connect(workers.endpoint(0, "up"))
        runners = workers.start(client.control)
        requests = _requests(model, build_dir, options)
        load_s = max((r.get("load_s") or 0.0 for r in runners.values()), default=0.0)
        warmup_s = options.timeout_s or warmup_timeout_s(priced_s, load_s)
        client.stream(requests[:WARMUP], None, warmup_s, workers)  # warm caches, sockets, TCP windows
        broken = next((r.error for r in requests[:WARMUP] if r.error), None)
        if broken:  # requests lost within the time-out are a check not met (exit 1); a tier's failure is not
            raise (CheckFailedError if broken.startswith(LOST) else ToolError)(f"warm-up failed: {broken}")
        timeout_s = options.timeout_s or request_timeout_s(priced_s, requests[:WARMUP])
        rate = (report.slowest_stage_rate(requests[:WARMUP], layout, shaping_mode) if options.rate_max
                else options.rate)
        started = now()
        client.stream(requests[WARMUP:], rate, timeout_s, workers, progress)
        wall_s = now() - started
    measured = requests[WARMUP:]
    if namespaces is not None and not namespaces.kernel_delay:
        shaping_mode = "netns-tbf"
    result = {"build": str(build_dir), **report.report(built, network, layout, measured, wall_s, rate,
                                                       shaping_mode, runners)}
    errors = [r for r in measured if r.error]
    if errors:
        failed = [r for r in errors if r.sent_at]
        reason = (failed or errors)[0].error
        ids = f" (ids {report.ids_text([r.id for r in failed])})" if failed else ""
        raise CheckFailedError(f"{reason}: {len(failed)} of {len(measured)} requests failed{ids}, "
                               f"{len(errors) - len(failed)} not sent", result)
    if options.check:
        report.check(built, model, measured, result)
    return RunReport.of(result, f"the run report of {build_dir}")


def _socket_folder() -> str:
    """Where the run's Unix sockets go: the temporary folder, unless its path is so long that a
    socket's would pass the kernel's limit (108 bytes, sockaddr_un), then /tmp."""
    folder = tempfile.gettempdir()
    return folder if len(folder) <= MAX_SOCKET_FOLDER else "/tmp"


def warmup_timeout_s(priced_s: float, load_s: float) -> float:
    """Seconds a warm-up request may take: its first run initialises kernels and caches, and a tier
    whose artifact is slow to load is a large one; generous, since nothing is measured yet."""
    return max(30.0, 20 * priced_s, 30 * load_s)


def request_timeout_s(priced_s: float, warmup: list[Request]) -> float:
    """Seconds before a measured request counts as lost: 20x the plan's latency or 10x the slowest
    warm-up after the first (which initialised), at least 10 s."""
    seen = [r.done_at - r.sent_at for r in warmup[1:] if r.done_at is not None] or \
        [r.done_at - r.sent_at for r in warmup if r.done_at is not None]
    return max(10.0, 20 * priced_s, 10 * max(seen, default=0.0))


def _shaping_mode(requested: str, layout: Layout) -> str:
    if requested not in SHAPING:
        raise BadInputError(f"--links: unknown shaping '{requested}'; choose from {', '.join(SHAPING)}")
    if not layout.links or requested in ("pacing", "ideal"):
        return requested if layout.links else "ideal"
    available = shaping.netns_available()
    if requested == "netns" and not available:
        raise BadInputError("--links netns needs root, iproute2 and tc (use --links pacing)")
    return "netns" if available else "pacing"


def _requests(model: Path, build_dir: Path, options: RunOptions) -> list[Request]:
    """Inputs per request: the samples of `options.inputs` in turn; else the calibration sample the
    build holds (int8 ranges fit it; seeded normal inputs may not); else seeded, a seed per request.
    Warm-up requests have negative ids; the measured ones count from 0."""
    count = WARMUP + options.requests
    session = sessions.session(model)
    if options.inputs:
        specs = feeds.session_specs(session)
        samples = list(data.load_for(options.inputs, specs, "--inputs", nan_allowed=True).samples())
        return [Request(i - WARMUP, samples[i % len(samples)]) for i in range(count)]
    stored = manifest.sample_inputs_path(build_dir)
    if stored is not None:
        sample = next(data.load_for(str(stored), feeds.session_specs(session), "the build's").samples())
        return [Request(i - WARMUP, sample) for i in range(count)]
    return [Request(i - WARMUP, feeds.for_session(session, options.seed + i)) for i in range(count)]


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

    def stream(self, requests: list[Request], rate: float | None, timeout_s: float, workers: TierProcesses,
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
                                     else f"{LOST} {timeout_s:g} s (a lost message or a dropped link)")
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


