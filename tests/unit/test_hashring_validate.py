"""The hashring rules that keep a ring change from breaking writes, refused before applying.
(The same rules refuse a ring against the lab's real receivers in tests/lab/test_hashring.py.)"""

from __future__ import annotations

from ansible_collections.watchkeeper.platform.plugins.module_utils import hashring as hr

EP = ["r0:10901", "r1:10901", "r2:10901"]


def ring(endpoints: list[str], tenants: list[str] | None = None, **extra: object) -> dict:
    return {"hashring": "t" if tenants else "default", "tenants": tenants or [],
            "endpoints": endpoints, **extra}


def test_a_valid_ring_has_no_problems() -> None:
    assert hr.validate([ring(EP[:2], ["team-a"]), ring(EP)], 2, 10901) == []


def test_catch_all_first_is_refused_naming_why() -> None:
    problems = hr.validate([ring(EP), ring(EP[:2], ["team-a"])], 2, 10901)
    assert any("catch-all ring must be last" in p for p in problems), problems


def test_fewer_endpoints_than_the_replication_factor_is_refused() -> None:
    problems = hr.validate([ring(EP[:1])], 2, 10901)
    assert any("< replication factor 2" in p for p in problems), problems


def test_wrong_port_duplicates_algorithm_and_empty_are_refused() -> None:
    assert any("gRPC port" in p for p in hr.validate([ring(["r0:19291", "r1:10901"])], 2, 10901))
    assert any("duplicate" in p for p in hr.validate([ring(["r0:10901", "r0:10901",
                                                             "r1:10901"])], 2, 10901))
    assert any("algorithm" in p for p in hr.validate([ring(EP, algorithm="random")], 2))
    assert hr.validate([], 2) and hr.validate({"not": "a list"}, 2)  # type: ignore[arg-type]
    assert any("exactly one catch-all" in p for p in hr.validate(
        [ring(EP), ring(EP)], 2))


def test_endpoint_objects_with_az_are_understood() -> None:
    rings = [ring([{"address": e, "az": "a"} for e in EP])]
    assert hr.validate(rings, 2, 10901) == []


def test_catch_all_endpoints_replaced_and_tenant_rings_kept() -> None:
    before = [ring(EP[:2], ["team-a"]), ring(EP)]
    after = hr.with_catch_all_endpoints(before, EP[:2])
    assert after[0] == before[0] and after[1]["endpoints"] == EP[:2]
    assert before[1]["endpoints"] == EP  # the input is not modified
    assert hr.with_catch_all_endpoints([], EP)[-1]["tenants"] == []
