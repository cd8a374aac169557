"""Messages composed from names read right: the article follows the sound, not the letter."""

from __future__ import annotations

import pytest

from edgepart.errors import BadInputError
from edgepart.hardware import units
from edgepart.wording import with_article


@pytest.mark.parametrize("word, expected", [
    ("aarch64", "an aarch64"), ("x86-64", "an x86-64"), ("armv7", "an armv7"), ("rpi4", "an rpi4"),
    ("AArch64", "an AArch64"), ("ARM", "an ARM"), ("opencl-mali", "an opencl-mali"), ("energy", "an energy"),
    ("h100", "an h100"), ("8-bit", "an 8-bit"),
    ("jetson-orin", "a jetson-orin"), ("cuda-sm90", "a cuda-sm90"), ("metal", "a metal"), ("webgpu", "a webgpu"),
    ("snapdragon", "a snapdragon"), ("unit", "a unit"), ("time", "a time"), ("flash", "a flash"),
])
def test_article_follows_the_sound(word, expected):
    assert with_article(word) == expected


def test_unit_errors_use_the_right_article():
    with pytest.raises(BadInputError, match="expected an energy with a unit"):
        units.parse(5, "energy", "budgets.device_energy")
    with pytest.raises(BadInputError, match="as a time;"):
        units.parse("soon", "time", "link.rtt")
