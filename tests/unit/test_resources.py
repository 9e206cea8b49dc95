"""Requests and limits from usage: the rules an operator reads in the recommendation."""

from __future__ import annotations

import pytest
from ansible_collections.watchkeeper.platform.plugins.module_utils import resources as res

MI = 2 ** 20


@pytest.mark.parametrize(("text", "bytes_"), [("512Mi", 512 * MI), ("1Gi", 1024 * MI),
                                              ("1G", 10 ** 9), ("1048576", MI)])
def test_memory_quantities(text: str, bytes_: float) -> None:
    assert res.parse_memory(text) == bytes_


def test_cpu_quantities_round_up_and_have_a_floor() -> None:
    assert res.parse_cpu("250m") == 0.25 and res.parse_cpu("1.5") == 1.5
    assert res.cpu_quantity(0.0001) == "10m"
    assert res.cpu_quantity(0.2501) == "251m"


def test_request_is_p95_with_headroom_and_limit_covers_the_peak() -> None:
    out = res.recommend(memory_p95=100 * MI, memory_peak=180 * MI, cpu_p95=0.05)
    assert out["requests"] == {"cpu": "60m", "memory": "120Mi"}
    assert out["limits"] == {"memory": "270Mi"}  # no CPU limit recommended


def test_limit_never_below_request_and_an_existing_cpu_limit_is_kept() -> None:
    out = res.recommend(100 * MI, 90 * MI, 0.1, headroom=2.0, limit_factor=1.0,
                        current={"limits": {"cpu": "2"}})
    assert res.parse_memory(out["limits"]["memory"]) >= res.parse_memory(
        out["requests"]["memory"])
    assert out["limits"]["cpu"] == "2"
