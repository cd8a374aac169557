"""Network links between adjacent tiers: bandwidth each way, round-trip time, and a radio power model."""

from __future__ import annotations

import json
from dataclasses import dataclass

from edgepart.hardware import units
from edgepart.hardware.devices import profiles_dir


@dataclass(frozen=True)
class RadioModel:
    """Linear radio power model P = a_u * uplink + a_d * downlink + b (Huang et al., MobiSys 2012).

    Stored in SI: watts per bit/s and watts; `tail_j` is the energy of the high-power tail the
    radio stays in after a transfer (paid once per inference that uses the link).
    """

    uplink_w_per_bps: float
    downlink_w_per_bps: float
    base_w: float
    tail_j: float

    def send_energy(self, nbytes: float, uplink_bps: float) -> float:
        """Joules to transmit `nbytes` at `uplink_bps`."""
        power = self.uplink_w_per_bps * uplink_bps + self.base_w
        return power * 8 * nbytes / uplink_bps

    def receive_energy(self, nbytes: float, downlink_bps: float) -> float:
        power = self.downlink_w_per_bps * downlink_bps + self.base_w
        return power * 8 * nbytes / downlink_bps


@dataclass(frozen=True)
class Link:
    """The link between tier i-1 (below) and tier i (above). Units: bit/s, seconds."""

    name: str
    uplink_bps: float
    downlink_bps: float
    rtt_s: float
    radio: RadioModel | None = None

    def up_seconds(self, nbytes: float) -> float:
        return 8 * nbytes / self.uplink_bps

    def down_seconds(self, nbytes: float) -> float:
        return 8 * nbytes / self.downlink_bps

    def with_uplink(self, uplink_bps: float) -> Link:
        """The same link at another uplink bandwidth (for sweeps)."""
        return Link(self.name, uplink_bps, self.downlink_bps, self.rtt_s, self.radio)


def link_presets() -> dict[str, dict]:
    return json.loads((profiles_dir() / "links.json").read_text())["links"]


def radio_from_preset(radio: dict | None) -> RadioModel | None:
    if radio is None:
        return None
    return RadioModel(
        uplink_w_per_bps=radio["uplink_mw_per_mbps"] * 1e-3 / 1e6,
        downlink_w_per_bps=radio["downlink_mw_per_mbps"] * 1e-3 / 1e6,
        base_w=radio["base_mw"] * 1e-3,
        tail_j=radio["tail_j"],
    )


def preset_link(name: str, preset: str) -> Link:
    spec = link_presets()[preset]
    return Link(
        name=name,
        uplink_bps=units.parse(spec["uplink"], "bandwidth", f"links preset {preset}"),
        downlink_bps=units.parse(spec["downlink"], "bandwidth", f"links preset {preset}"),
        rtt_s=units.parse(spec["rtt"], "time", f"links preset {preset}"),
        radio=radio_from_preset(spec.get("radio")),
    )
