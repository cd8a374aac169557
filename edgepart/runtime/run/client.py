"""run(build) -> report: start a process per tier, shape the links, stream requests through the
chain, check every result against onnxruntime, and compare what was measured with the plan.

Closed loop (`rate` None): one request at a time, the plan's latency objective. Open loop: requests
leave at `rate` per second whatever comes back, the pipelined (throughput) regime.
"""

from __future__ import annotations

import functools
import os
import tempfile
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import zmq

from edgepart.compile import manifest
from edgepart.compress import data
from edgepart.errors import BadInputError, CheckFailedError, ToolError
from edgepart.graph import feeds, sessions
from edgepart.runtime.reports import RunReport
from edgepart.runtime.run import faults, report, shaping, transport
from edgepart.runtime.run.adapt import PROBE_BYTES, Adapter
from edgepart.runtime.run.processes import Chain, TierProcesses
from edgepart.runtime.run.transport import FAILED, MAIN, PROBE, PROBE_BACK, UP, Message, Request, now

SHAPING = ("auto", "netns", "pacing", "ideal")
DEVICE_SPEEDS = ("host", "priced")
WARMUP = 5
MAX_FAILURES = 10  # lost requests after which a run stops sending
LOST = "no result within"  # how a lost request's error begins
MAX_SOCKET_FOLDER = 60  # characters; the run folder and the socket names add about 35


@dataclass(frozen=True)
class RunOptions:
    requests: int = 100  # with duration_s: the most
    rate: float | None = None  # requests per second; None: closed loop
    rate_max: bool = False  # open loop at the rate the slowest stage sustains (measured while warming up)
    shaping: str = "auto"
    timeout_s: float | None = None  # per request; default from the plan's prediction
    check: bool = True  # each result against onnxruntime on the original model
    seed: int = 0
    model: str | None = None  # the original model, if it moved since compile
    inputs: str | None = None  # .npz of samples (an array per model input, samples first)
    adapt: bool = False  # an adaptive build: switch plans as the link changes, fall back when it fails
    plan: str | None = None  # one plan of an adaptive build, run fixed
    device_speed: str = "host"  # "priced": a tier whose device is not this host takes its priced time
    events: tuple[faults.Event, ...] = ()  # link changes and faults, timed from the first measured request
    duration_s: float | None = None  # send requests until this many seconds have passed


def run(build_dir: str | Path, options: RunOptions = RunOptions(),
        progress: Callable[[int], None] = lambda n: None) -> RunReport:
    build_dir = Path(build_dir)
    built = manifest.Manifest.load(build_dir)
    plans = _plans(built, options)
    for each in plans.values():  # a changed artifact is bad input (exit 2) here, as in verify, not a tier crash
        for tier in each.tiers:
            manifest.artifact_path(build_dir, tier)
            manifest.checked_submodel(build_dir, tier)
    if options.device_speed not in DEVICE_SPEEDS:
        raise BadInputError(f"--device-speed: unknown '{options.device_speed}'; choose from {', '.join(DEVICE_SPEEDS)}")
    from edgepart.runtime.verify import original_model  # noqa: PLC0415 - onnxruntime

    model = original_model(built, options.model)
    chain = Chain.of(plans)
    start_plan = built.adaptive.start if options.adapt else next(iter(plans))
    shaping_mode = _shaping_mode(options.shaping, chain)
    network = plans[start_plan].network
    priced_s = max((each.network.latency_s or 0.0 for each in plans.values()), default=0.0)
    probe_link = [link.name for link in chain.links].index(built.adaptive.link) if options.adapt else None
    with tempfile.TemporaryDirectory(prefix="edgepart-run-", dir=_socket_folder()) as tmp, ExitStack() as stack:
        namespaces = None
        if shaping_mode == "netns":
            namespaces = stack.enter_context(shaping.Namespaces(chain.links, str(os.getpid())))
        context = zmq.Context()
        stack.callback(context.destroy, 0)
        client = _Client(context, Path(tmp), built.outputs)
        workers = TierProcesses(build_dir, built, chain, Path(tmp), namespaces, shaping_mode, options.device_speed,
                                probe_link)
        stack.callback(workers.stop)
        injector = faults.Injector(options.events, built.network.links, chain, workers, namespaces, shaping_mode)
        client.to_device.connect(workers.endpoint(0, "up"))
        runners = workers.start(client.control)
        warm = WARMUP * len(plans)
        requests = _requests(model, build_dir, options, warm)
        _warm_up(client, workers, chain, requests[:warm], list(plans), start_plan,
                 options.timeout_s or warmup_timeout_s(priced_s, max((r.get("load_s") or 0.0 for r in runners.values()),
                                                                     default=0.0)))
        timeout_s = options.timeout_s or request_timeout_s(priced_s, requests[:warm])
        rate = (report.slowest_stage_rate(requests[:warm], chain.layouts[start_plan], shaping_mode)
                if options.rate_max else options.rate)
        adapter = None
        if options.adapt:
            link = chain.links[probe_link]
            adapter = Adapter(built.adaptive, {plan: chain.tiers_of(plan) for plan in plans}, link.rtt_s / 2,
                              plans[start_plan].network.links[probe_link].uplink_bps)
        schedule = _Schedule(rate, timeout_s, start_plan, adapter, injector, options.duration_s)
        client.stream(requests[warm:], schedule, workers, chain, progress)
        started = client.started  # what the events' times count from
        wall_s = now() - started
    # a timed run (--duration) is what it had time to send
    measured = [r for r in requests[warm:] if r.sent_at or (r.error and not options.duration_s)]
    if namespaces is not None and not namespaces.kernel_delay:
        shaping_mode = "netns-tbf"
    # an adaptive run's tiers and links are those of its start plan, measured on its requests; the
    # latency and counts are over every request (per plan and phase: the adaptive section)
    result = {"build": str(build_dir), **report.report(plans[start_plan], network, chain.layouts[start_plan],
                                                       measured, wall_s, rate, shaping_mode, runners,
                                                       [r for r in measured if r.plan == start_plan])}
    if options.adapt or options.plan:
        result.update(report.adaptive(built, plans, measured, started, adapter, injector, wall_s))
    _fail_on_errors(measured, result)
    if options.check:
        for plan_id, each in plans.items():
            report.check(each, model, [r for r in measured if r.plan == plan_id], result)
        if "checked" in result:
            result["checked"]["requests"] = len(measured)
    return RunReport.of(result, f"the run report of {build_dir}")


def _warm_up(client: _Client, workers: TierProcesses, chain: Chain, requests: list[Request], plan_ids: list[str],
             start_plan: str, timeout_s: float) -> None:
    """The warm-up requests, every plan's in turn (each warmed up as a one-plan run is), not measured.
    Requests lost within the time-out are a check not met (exit 1); a tier's failure is not."""
    for k, request in enumerate(requests):
        request.plan = plan_ids[k % len(plan_ids)]
    client.stream(requests, _Schedule(None, timeout_s, start_plan), workers, chain)
    broken = next((r.error for r in requests if r.error), None)
    if broken:
        raise (CheckFailedError if broken.startswith(LOST) else ToolError)(f"warm-up failed: {broken}")


def _fail_on_errors(measured: list[Request], result: dict) -> None:
    """A request that got no result is a check not met (exit 1): the first reason, how many failed
    (their ids) and how many were never sent, the report attached."""
    errors = [r for r in measured if r.error]
    if not errors:
        return
    failed = [r for r in errors if r.sent_at]
    reason = (failed or errors)[0].error
    ids = f" (ids {report.ids_text([r.id for r in failed])})" if failed else ""
    unsent = len(errors) - len(failed)
    raise CheckFailedError(f"{reason}: {len(failed)} of {len(measured) - unsent} sent requests failed{ids}"
                           + (f", {unsent} not sent" if unsent else ""), result)


def _plans(built: manifest.Manifest, options: RunOptions) -> dict[str, manifest.Manifest]:
    """The plans this run may use, by id: the build's one; an adaptive build's every plan (--adapt);
    or the one --plan names."""
    adaptive = built.adaptive
    if (options.adapt or options.plan) and adaptive is None:
        raise BadInputError(f"{built.build_dir}: --{'adapt' if options.adapt else 'plan'} needs an adaptive build "
                            "(plan --sweep LOW..HIGH, then compile that plan)")
    if options.adapt and options.plan:
        raise BadInputError("--adapt and --plan: choose one (--plan runs one plan of the build fixed)")
    if options.plan:
        if options.plan not in adaptive.plans:
            raise BadInputError(f"--plan {options.plan}: not a plan of {built.build_dir} ({', '.join(adaptive.plans)})")
        return {options.plan: adaptive.plans[options.plan]}
    if options.adapt:
        return dict(adaptive.plans)
    return {MAIN: built}

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


def _shaping_mode(requested: str, chain: Chain) -> str:
    if requested not in SHAPING:
        raise BadInputError(f"--links: unknown shaping '{requested}'; choose from {', '.join(SHAPING)}")
    if not chain.links or requested in ("pacing", "ideal"):
        return requested if chain.links else "ideal"
    available = shaping.netns_available()
    if requested == "netns" and not available:
        raise BadInputError("--links netns needs root, iproute2 and tc (use --links pacing)")
    return "netns" if available else "pacing"


def _requests(model: Path, build_dir: Path, options: RunOptions, warm: int) -> list[Request]:
    """Inputs per request: the samples of `options.inputs` in turn; else the calibration sample the
    build holds (int8 ranges fit it; seeded normal inputs may not); else seeded, a seed per request.
    Warm-up requests (`warm` of them) have negative ids; the measured ones count from 0."""
    count = warm + options.requests
    session = sessions.session(model)
    if options.inputs:
        specs = feeds.session_specs(session)
        samples = list(data.load_for(options.inputs, specs, "--inputs", nan_allowed=True).samples())
        return [Request(i - warm, samples[i % len(samples)]) for i in range(count)]
    stored = manifest.sample_inputs_path(build_dir)
    if stored is not None:
        sample = next(data.load_for(str(stored), feeds.session_specs(session), "the build's").samples())
        return [Request(i - warm, sample) for i in range(count)]
    return [Request(i - warm, functools.partial(feeds.for_session, session, options.seed + i)) for i in range(count)]


@dataclass
class _Schedule:
    """How a stream of requests goes: its rate (None: closed loop), when a request is lost, the plan
    (fixed, or the adapter's), the events to inject and when to stop sending."""

    rate: float | None
    timeout_s: float
    plan: str = MAIN
    adapter: Adapter | None = None
    injector: faults.Injector | None = None
    duration_s: float | None = None


class _Client:
    """The device-side driver: sends inputs to the device tier, collects results and failures; with
    an adapter, chooses each request's plan, probes the link, and re-runs on the fallback plan the
    requests a failed link or tier holds (exactly one result per request: a late result of an
    earlier attempt is dropped)."""

    def __init__(self, context: zmq.Context, folder: Path, outputs: list[str]) -> None:
        self.results = context.socket(zmq.PULL)
        self.results.bind(f"ipc://{folder}/results")
        self.control = context.socket(zmq.PULL)
        self.control.bind(f"ipc://{folder}/control")
        self.to_device = context.socket(zmq.PUSH)
        self.to_device.setsockopt(zmq.LINGER, 0)
        self.expected = set(outputs)

    def stream(self, requests: list[Request], schedule: _Schedule, workers: TierProcesses, chain: Chain,
               progress: Callable[[int], None] = lambda n: None) -> None:
        poller = zmq.Poller()
        poller.register(self.results, zmq.POLLIN)
        poller.register(self.control, zmq.POLLIN)
        by_id = {r.id: r for r in requests}
        pending: dict[int, Request] = {}
        start, sent, failures, dead_seen = now(), 0, 0, set()
        self.started = start
        rate, adapter, injector = schedule.rate, schedule.adapter, schedule.injector
        due = [start + k / rate for k in range(len(requests))] if rate else []
        while sent < len(requests) or pending:
            if injector is not None:
                injector.due(now() - start)
            if schedule.duration_s is not None and now() - start >= schedule.duration_s and sent < len(requests):
                del requests[sent:]  # the run's time is up: what was not sent is not part of it
                continue
            if adapter is not None and adapter.probe_due(now()):
                adapter.probe_sent(now())
                probe = Message(PROBE, -1, tensors={"probe": np.zeros(PROBE_BYTES, np.uint8)})
                self.to_device.send_multipart(transport.pack(probe))
            if sent < len(requests) and (not pending if rate is None else now() >= due[sent]):
                request = requests[sent]
                if request.id >= 0:
                    request.plan = adapter.plan(request.id) if adapter else schedule.plan
                    request.estimate_bps = adapter.estimate_bps if adapter else None
                request.make_inputs()
                request.sent_at = now()
                self._send(request)
                pending[request.id] = request
                sent += 1
                continue
            wait = 0.05 if rate is None or sent == len(requests) else min(0.05, max(0.0, due[sent] - now()))
            for socket, _ in poller.poll(int(wait * 1000)):
                if socket is self.results:
                    self._message(transport.unpack(socket.recv_multipart()), by_id, pending, adapter, progress)
                else:
                    event = socket.recv_json()
                    request = pending.get(event.get("request"))
                    if event["kind"] == FAILED and request and event.get("attempt", 0) == request.attempt:
                        pending.pop(request.id).error = f"tier '{event['tier']}': {event['error']}"
                        failures += 1
                        progress(1)
            dead = workers.all_dead()
            if adapter is not None and chain.tiers[0] not in dead:  # the fallback runs on: a tier above died
                for tier in dead - dead_seen:
                    adapter.tier_died(tier)
                dead_seen |= dead
                dead = set()
            for request in list(pending.values()):
                if adapter is not None and self._failed_over(request, adapter):
                    continue
                if dead or now() - request.sent_at > schedule.timeout_s:
                    name = next(iter(sorted(dead)), None)
                    request.error = (f"tier '{name}' stopped (exit code {workers.exit_code(name)})" if name
                                     else f"{LOST} {schedule.timeout_s:g} s (a lost message or a dropped link)")
                    pending.pop(request.id)
                    failures += 1
            if dead or failures >= MAX_FAILURES:  # nothing more would come through: stop sending
                name = next(iter(sorted(dead)), None)
                for request in [*requests[sent:], *pending.values()]:
                    request.error = request.error or (f"tier '{name}' stopped (exit code {workers.exit_code(name)})"
                                                      if name else f"the run stopped after {failures} failures")
                return

    def _send(self, request: Request) -> None:
        self.to_device.send_multipart(transport.pack(Message(UP, request.id, request.plan, request.attempt,
                                                             request.inputs)))

    def _failed_over(self, request: Request, adapter: Adapter) -> bool:
        """Re-run `request` on the fallback plan if its plan passes through a dead tier or it is
        overdue on the link; True if it did."""
        overdue = adapter.overdue_after_s(request.plan)
        through_dead = request.plan != adapter.fallback and adapter.uses_dead_tier(request.plan)
        if not through_dead and (overdue is None or now() - request.sent_at <= overdue):
            return False
        if not through_dead:
            adapter.link_failed()
        request.attempt += 1
        request.plan = adapter.fallback
        request.outputs = request.timings = None
        self._send(request)  # latency still counts from the first send: the wait was the user's
        return True

    def _message(self, message: Message, by_id: dict, pending: dict, adapter: Adapter | None, progress) -> None:
        if message.kind == PROBE_BACK:
            if adapter is not None:
                link = adapter.build.link
                timings = message.timings
                adapter.probe_back(timings.get(f"bytes:{link}:up", 0), timings.get(f"link:{link}:up", 0), now())
            return
        request = by_id.get(message.request)
        if request is None or request.error or message.attempt != request.attempt or request.done_at is not None:
            return  # a late result of an attempt that was re-run, or of a request already answered
        request.outputs = {**(request.outputs or {}), **message.tensors}
        request.timings = {**(request.timings or {}), **message.timings}
        if self.expected <= set(request.outputs):
            request.done_at = now()
            pending.pop(request.id, None)
            progress(1)
            if adapter is not None:
                link = adapter.build.link
                if f"link:{link}:up" in request.timings:
                    adapter.measured(request.timings.get(f"bytes:{link}:up", 0), request.timings[f"link:{link}:up"],
                                     now())

