"""Adaptive builds, the parts without processes: the breakpoint table, the hysteresis rule, the
client's estimate and failover state, and --event parsing."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from edgepart.errors import BadInputError
from edgepart.plan.adaptive import Line, breakpoints
from edgepart.runtime.run import faults
from edgepart.runtime.run.adapt import PROBE_EVERY_S, Adapter, choose

# everything on the device: 30 ms whatever the link; a split sending 72 KiB: 6 ms + the transfer
LINES = {"device": Line(0.030, 0.0), "split": Line(0.006, 589_824.0)}
CROSSING_BPS = 589_824.0 / 0.024  # where the two cost the same: 24.6 Mbit/s


def test_breakpoints_are_the_lower_envelope_of_the_plans_lines():
    table = breakpoints(LINES, 1e6, 100e6)
    assert [row["plan"] for row in table] == ["device", "split"]
    assert table[0]["from_bps"] == 1e6 and table[-1]["to_bps"] == 100e6
    assert table[0]["to_bps"] == pytest.approx(CROSSING_BPS) == table[1]["from_bps"]


def test_a_plan_never_cheapest_in_the_range_has_no_row():
    lines = {**LINES, "worse": Line(0.040, 589_824.0)}
    assert [row["plan"] for row in breakpoints(lines, 1e6, 100e6)] == ["device", "split"]
    assert [row["plan"] for row in breakpoints(LINES, 30e6, 100e6)] == ["split"]


def test_hysteresis_keeps_the_current_plan_around_a_breakpoint():
    usable = list(LINES)
    for bps in (CROSSING_BPS * 0.95, CROSSING_BPS, CROSSING_BPS * 1.05):  # within 10% of each other here
        assert choose(LINES, "device", bps, usable) == "device"
        assert choose(LINES, "split", bps, usable) == "split"
    assert choose(LINES, "device", CROSSING_BPS * 2, usable) == "split"  # split predicted 30% faster
    assert choose(LINES, "split", CROSSING_BPS / 2, usable) == "device"
    assert choose(LINES, "split", CROSSING_BPS * 0.95, usable, hysteresis=0.0) == "device"


def test_an_unusable_current_plan_is_left_whatever_the_hysteresis():
    assert choose(LINES, "split", CROSSING_BPS * 2, ["device"]) == "device"


def adapter(**kwargs) -> Adapter:
    build = SimpleNamespace(lines={"p0": (0.030, 0.0), "p1": (0.006, 589_824.0)}, start="p1", fallback="p0",
                            link="wifi", range_bps=(1e6, 100e6))
    return Adapter(build, {"p0": ("device",), "p1": ("device", "edge")}, one_way_s=0.001, estimate_bps=50e6,
                   **kwargs)


def test_the_estimate_is_the_median_of_recent_transfers_and_drives_the_plan():
    chooser = adapter()
    assert chooser.plan(0) == "p1"
    for at, seconds in enumerate((0.013, 0.300, 0.300)):  # 72 KiB at 50 Mbit/s, then at about 2 Mbit/s
        chooser.measured(73_728, seconds + 0.001, float(at))
    assert chooser.estimate_bps == pytest.approx(8 * 73_728 / 0.300)
    assert chooser.plan(1) == "p0"
    assert chooser.switches == [{"request": 1, "from": "p1", "to": "p0", "estimate_bps": chooser.estimate_bps,
                                 "link_up": True}]
    chooser.measured(100, 0.5, 4.0)  # a few bytes measure the delay, not the bandwidth: ignored
    assert chooser.estimate_bps == pytest.approx(8 * 73_728 / 0.300)


def test_a_failed_link_means_the_fallback_until_a_probe_comes_back():
    chooser = adapter()
    assert chooser.overdue_after_s("p0") is None  # the fallback crosses no link
    assert chooser.overdue_after_s("p1") == pytest.approx(max(0.2, 4 * LINES["split"].at(50e6)))
    chooser.link_failed()
    assert chooser.plan(0) == "p0" and chooser.probe_due(10.0)
    chooser.probe_sent(10.0)
    assert not chooser.probe_due(10.1)  # one probe in flight at a time ...
    assert chooser.probe_due(11.0)  # ... until it counts as lost
    chooser.probe_back(16_384, 0.003, 11.0)
    assert chooser.link_up and chooser.plan(1) == "p1"
    assert not chooser.probe_due(11.0 + PROBE_EVERY_S / 2) and chooser.probe_due(11.0 + 2 * PROBE_EVERY_S)


def test_plans_through_a_dead_tier_are_not_used_again():
    chooser = adapter()
    chooser.tier_died("edge")
    assert chooser.uses_dead_tier("p1") and not chooser.uses_dead_tier("p0")
    chooser.measured(73_728, 0.005, 1.0)  # however fast the link
    assert chooser.plan(0) == "p0"


@pytest.mark.parametrize(("spec", "event"), [
    ("10s:wifi=2Mbit/s", faults.Event(10.0, "rate", "wifi", 2e6)),
    ("2.5:wifi=down", faults.Event(2.5, "down", "wifi")),
    ("3s:wifi=up", faults.Event(3.0, "up", "wifi")),
    ("30s:kill=edge", faults.Event(30.0, "kill", "edge")),
])
def test_events_parse(spec, event):
    assert faults.parse(spec) == event


@pytest.mark.parametrize(("spec", "named"), [
    ("wifi=2Mbit/s", "expected AT:LINK=RATE"), ("soon:wifi=down", "not a time"), ("-1s:wifi=down", "0 or later"),
    ("1s:wifi=fast", "--event '1s:wifi=fast'"), ("1s:wifi", "expected AT:LINK=RATE"),
])
def test_bad_events_name_the_option(spec, named):
    with pytest.raises(BadInputError, match=named):
        faults.parse(spec)
