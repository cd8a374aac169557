import pytest

from edgepart.errors import BadInputError
from edgepart.hardware import deploy, units
from edgepart.hardware.devices import load_device, shipped_devices

TWO_TIERS = """
[[tier]]
name = "device"
device = "rpi4"
target = "rpi4"
memory = "512 MiB"

[[tier]]
name = "edge"
device = "xeon-edge-server"
target = "x86-64"
precisions = ["fp32", "int8"]

[[link]]
from = "device"
to = "edge"
bandwidth = "20 Mbit/s"
rtt = "10 ms"
radio = "wifi"

[budgets]
latency = "50 ms"
accuracy_drop = "1%"

[pins]
input_stays_on_device = true
nodes = { conv1 = "device" }
"""


def write(tmp_path, text):
    path = tmp_path / "deploy.toml"
    path.write_text(text)
    return path


def test_parses_tiers_links_budgets_and_pins(tmp_path):
    d = deploy.load(write(tmp_path, TWO_TIERS))
    assert [t.name for t in d.tiers] == ["device", "edge"]
    assert d.tiers[0].memory_budget == 512 * 2**20 and d.tiers[1].precisions == ("fp32", "int8")
    link = d.links[0]
    assert link.uplink_bps == 20e6 and link.downlink_bps == 20e6 and link.rtt_s == 0.01 and link.radio
    assert d.budgets.latency_s == 0.05 and d.budgets.accuracy_drop == pytest.approx(0.01)
    assert d.pins.input_stays_on_device and d.pins.nodes == {"conv1": "device"}
    assert len(d.sha256) == 64


@pytest.mark.parametrize("change, message", [
    (('bandwidth = "20 Mbit/s"', 'bandwith = "20 Mbit/s"'), "link[0]: unknown key 'bandwith'"),
    (('bandwidth = "20 Mbit/s"', 'bandwidth = "20 furlongs"'), "link[0].bandwidth: unknown bandwidth unit 'furlongs'"),
    (('bandwidth = "20 Mbit/s"', "bandwidth = 20"), "link[0].bandwidth: expected a bandwidth with a unit"),
    (('latency = "50 ms"', 'latency = "50 Mbit/s"'), "budgets].latency: unknown time unit"),
    (('device = "rpi4"', 'device = "rpi5"'), "unknown device 'rpi5'; known: h100, h200, jetson-nano"),
    (('to = "edge"', 'to = "cloud"'), "link[0].to: unknown tier 'cloud'"),
    (('precisions = ["fp32", "int8"]', 'precisions = ["fp64"]'), "unknown precision 'fp64'"),
    (('target = "rpi4"\nmemory', 'target = "rpi4"\nprecisions = ["fp16"]\nmemory'), "'rpi4' has no fp16 support"),
    (('accuracy_drop = "1%"', "accuracy_drop = 5"), "expected a percentage"),
    (('conv1 = "device"', 'conv1 = "moon"'), "unknown tier 'moon'"),
])
def test_errors_name_the_key(tmp_path, change, message):
    with pytest.raises(BadInputError, match=message.replace("[", r"\[").replace("]", r"\]")):
        deploy.load(write(tmp_path, TWO_TIERS.replace(*change)))


def test_missing_link_and_bad_toml(tmp_path):
    text = TWO_TIERS.split("[[link]]")[0]
    with pytest.raises(BadInputError, match="no \\[\\[link\\]\\] between tiers 'device' and 'edge'"):
        deploy.load(write(tmp_path, text))
    with pytest.raises(BadInputError, match="not valid TOML"):
        deploy.load(write(tmp_path, "[[tier]\n"))


def test_link_preset_and_units():
    d = deploy.parse({"tier": [{"name": "a", "device": "rpi4", "target": "rpi4"},
                               {"name": "b", "device": "h100", "target": "cuda-sm90"}],
                      "link": [{"from": "a", "to": "b", "preset": "lte", "rtt": "50 ms"}]})
    assert d.links[0].uplink_bps == 5.85e6 and d.links[0].rtt_s == 0.05 and d.links[0].radio.tail_j > 1
    assert units.parse("1.5 Gbit/s", "bandwidth", "x") == 1.5e9
    assert units.parse("2 MB/s", "bandwidth", "x") == 16e6
    assert units.parse("250 us", "time", "x") == 250e-6


def test_shipped_device_profiles_load():
    names = shipped_devices()
    assert {"rpi4", "jetson-nano", "jetson-orin-nano", "snapdragon-8-gen2", "xeon-edge-server", "h100"} <= set(names)
    for name in names:
        device = load_device(name)
        assert device.peak_ops["fp32"] > 0 and device.sources
