"""`edgepart run BUILD`: the tiers as processes over shaped links, measured against the plan."""

from __future__ import annotations

from typing import Any

import click

from edgepart import api
from edgepart.cli import text
from edgepart.cli.output import OutputOptions, emit, output_options, progress_bar
from edgepart.errors import CheckFailedError


@click.command("run")
@click.argument("build_dir", type=click.Path(file_okay=False))
@click.option("--links", "links", type=click.Choice(sorted(api.LINK_MODES)), default="shaped", show_default=True,
              help="shaped: network namespaces with tc netem where the host allows (root), else pacing in "
                   "the sender; netns or pacing to insist on one; ideal: no shaping.")
@click.option("--requests", type=int, default=100, show_default=True, help="Requests to stream (after 5 warm-ups).")
@click.option("--rate", help="Open loop: requests per second, or 'max' (what the slowest stage sustains, "
                             "measured while warming up). Default: closed loop, one request at a time.")
@click.option("--timeout", "timeout_s", type=float,
              help="Seconds before a request counts as lost (default: for warm-ups 20x the predicted latency or 30x "
                   "the slowest tier's load time, at least 30; then 20x the predicted latency or 10x the slowest "
                   "warm-up, at least 10).")
@click.option("--no-check", is_flag=True, help="Do not compare each result with onnxruntime.")
@click.option("--model", "model_path", type=click.Path(dir_okay=False),
              help="The original model, if it moved since compile.")
@click.option("--inputs", "inputs_path", type=click.Path(dir_okay=False),
              help="Samples to send in turn (.npz: an array per model input, samples first). Default: the "
                   "build's calibration sample if it has one, else seeded inputs.")
@click.option("--strict", is_flag=True,
              help="Exit 1 when a tier this host can measure (its device is 'local', its artifact runs natively) "
                   "runs over 1.5x the plan's price for it.")
@click.option("--adapt", is_flag=True,
              help="An adaptive build (plan --sweep): measure the swept link from the run's own transfers and "
                   "switch to the plan for its bandwidth at request boundaries; re-run a request on the device-only "
                   "plan when a link or tier fails.")
@click.option("--plan", "plan_id", help="Run one plan of an adaptive build (its id, e.g. p0), fixed.")
@click.option("--device-speed", type=click.Choice(["host", "priced"]), default="host", show_default=True,
              help="priced: a tier whose device is not this host takes the time the plan priced it at (an "
                   "emulated board), as shaped links take their bandwidth's time.")
@click.option("--event", "events", multiple=True, metavar="AT:WHAT",
              help="Inject a change or fault, timed from the first measured request: 10s:wifi=2Mbit/s, "
                   "20s:wifi=down, 23s:wifi=up, 30s:kill=edge. Repeatable.")
@click.option("--duration", "duration_s", type=float,
              help="Seconds to keep sending (closed loop); --requests is then the most.")
@output_options
def run_command(out: OutputOptions, build_dir: str, links: str, requests: int, rate: str | None,
                timeout_s: float | None, no_check: bool, model_path: str | None, inputs_path: str | None,
                strict: bool, adapt: bool, plan_id: str | None, device_speed: str, events: tuple[str, ...],
                duration_s: float | None) -> None:
    """Run BUILD_DIR's tiers as processes over its links; report latency, throughput and the plan's error."""
    try:
        with progress_bar(out, requests, "requests") as update:
            report = api.run(build_dir, requests=requests, links=links, rate=rate, timeout_s=timeout_s,
                             check=not no_check, model=model_path, inputs=inputs_path, adapt=adapt, plan=plan_id,
                             device_speed=device_speed, events=events, duration_s=duration_s, progress=update)
        if strict:
            from edgepart.runtime.price import enforce  # noqa: PLC0415

            enforce(report.tier_times, report.doc)
    except CheckFailedError as exc:
        if out.json and exc.details:
            emit(out, exc.details, render)
        raise
    emit(out, report.doc, render)


def render(report: dict[str, Any]) -> str:
    latency = report["latency_s"]
    lines = [f"{report['completed']} of {report['requests']} requests, {report['mode']}"
             + (f" at {report['rate_per_s']:.1f}/s" if report["rate_per_s"] else "")
             + f"; links: {report['links']} ({report['shaping']})",
             f"latency p50 {_ms(latency['p50'])}, p90 {_ms(latency['p90'])}, p99 {_ms(latency['p99'])}; "
             f"throughput {report['throughput_per_s']:.1f}/s",
             f"predicted latency {_ms(report['predicted']['latency_s'])}: " + _fidelity(report), ""]
    rows = [(name, t["ran_with"] or "-", _ms(t["predicted_s"]), _ms(t["measured_s"]),
             "not measurable here" if t["stand_in"] else _percent(t["error"]),
             "-" if t.get("ratio") is None else f"{t['ratio']:.2f}x" + (" (over)" if t.get("over") else ""))
            for name, t in report["tiers"].items()]
    lines.append(text.table(["tier", "ran with", "priced compute", "measured", "vs plan", "measured/priced"], rows,
                            right=(2, 3, 4, 5)))
    lines += [f"  {name}: stand-in, not measurable here: {t['stand_in']}" for name, t in report["tiers"].items()
              if t["stand_in"]]
    if report["per_link"]:
        rows = [(name, "yes" if link["used"] else "no", _ms(link["predicted_s"]), _ms(link["measured_s"]),
                 text.size(link["bytes_up"]), text.size(link["bytes_down"]))
                for name, link in report["per_link"].items()]
        lines += ["", text.table(["link", "used", "predicted (RTT + transfer)", "measured", "bytes up", "bytes down"],
                                 rows, right=(2, 3, 4, 5))]
    lines += _adaptive_lines(report.get("adaptive"))
    if "checked" in report:
        c = report["checked"]
        lines.append(f"\nevery result matched onnxruntime (worst relative error {c['worst_relative_error']:.2g}, "
                     f"tolerance {c['tolerance']:g}), in order")
    return "\n".join(lines)


def _adaptive_lines(adaptive: dict[str, Any] | None) -> list[str]:
    """Per phase (between injected events): the link, the plans used, measured against predicted."""
    if not adaptive:
        return []
    rows = [(f"{p['from_s']:.1f}-{p['to_s']:.1f} s", "down" if not p["uplink_bps"] else f"{p['uplink_bps'] / 1e6:.4g}",
             p["requests"], ", ".join(f"{plan} {n}" for plan, n in sorted(p["plans"].items())), p["reruns"],
             _ms(p["median_s"]), _ms(p["predicted_s"]), f"{p['best_plan']} {_ms(p['best_predicted_s'])}")
            for p in adaptive["phases"]]
    return ["", f"link {adaptive['link']}: {len(adaptive['switches'])} plan switch(es), {adaptive['reruns']} re-run(s) "
                f"on the fallback ({adaptive['fallback']}), {adaptive['probes']} probe(s)",
            text.table(["phase", "Mbit/s", "requests", "plans used", "re-runs", "measured p50", "predicted",
                        "best plan there"], rows, right=(2, 4, 5, 6))]


def _fidelity(report: dict[str, Any]) -> str:
    if report["stand_in_tiers"]:
        return (f"not compared, tier(s) {', '.join(report['stand_in_tiers'])} ran on a stand-in (what was measured "
                "is not what the plan priced)")
    return f"measured p50 is {_percent(report['error'])} off"


def _percent(error: float | None) -> str:
    return "-" if error is None else f"{error * 100:+.1f}%"


def _ms(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds * 1e3:.3f} ms"
