"""Plans and the per-route decision core: pure, no server, no clock but the one passed in."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from resilient_llm import ConfigurationError
from resilient_llm.testing.chaos import Fault, Plan
from resilient_llm.testing.chaos.state import Route


def test_fault_defaults_and_validation() -> None:
    assert Fault("ok") == Fault("ok", retry_after=None, delay=0.0)
    assert Fault.of("overloaded") == Fault("overloaded")
    assert Fault.of({"kind": "rate_limit", "retry_after": 2}) == Fault("rate_limit", 2)
    Fault("overloaded", retry_after=1)
    Fault("unavailable", retry_after=1)
    with pytest.raises(ConfigurationError, match="kind"):
        Fault("explode")  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="retry_after"):
        Fault("server_error", retry_after=1)
    for bad in (-1.0, math.inf, math.nan):
        with pytest.raises(ConfigurationError):
            Fault("hang", delay=bad)
    with pytest.raises(ConfigurationError):
        Fault.of({"kind": "ok", "colour": "red"})
    with pytest.raises(ConfigurationError):
        Fault.of(3)  # type: ignore[arg-type]


def test_plan_validation() -> None:
    assert Plan(script=["ok", Fault("hang")]).script == [Fault("ok"), Fault("hang")]
    bad_plans = [
        {"error_rate": 1.5},
        {"error_kinds": ()},
        {"error_kinds": ("boom",)},
        {"latency": -1},
        {"rpm": 0},
        {"tpm": 1.5},
        {"outages": [(5, 1)]},
        {"outages": [(1,)]},
        {"seed": "x"},
        {"script": ["nope"]},
        {"quota_window": 0},
        {"quota_window": -1.0},
        {"quota_window": math.inf},
        {"quota_window": True},
        {"quota_window": "60"},
    ]
    for fields in bad_plans:
        with pytest.raises(ConfigurationError):
            Plan(**fields)  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="unknown plan field"):
        Plan.from_dict({"rpn": 3})


def test_plan_load_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="cannot read"):
        Plan.load(tmp_path / "missing.json")
    path = tmp_path / "list.json"
    path.write_text("[1, 2]")
    with pytest.raises(ConfigurationError, match="must map"):
        Plan.load(path)


def test_script_then_ok() -> None:
    route = Route(Plan(script=["overloaded", "reset"]), epoch=0.0)
    assert [route.decide(t, 1).label for t in range(4)] == ["overloaded", "reset", "ok", "ok"]


def test_rpm_sliding_window() -> None:
    route = Route(Plan(rpm=2), epoch=0.0)
    assert route.decide(0.0, 5).label == "ok"
    assert route.decide(30.0, 5).label == "ok"
    refused = route.decide(45.0, 5)
    assert (refused.label, refused.fault.kind, refused.charged) == ("quota", "rate_limit", 0)
    assert refused.fault.retry_after == pytest.approx(15.0)
    assert refused.quota is not None
    assert refused.quota.remaining_requests == 0
    assert refused.quota.reset_requests == pytest.approx(45.0)  # fully free 60 s after t=30
    # At t=60 the first admission has left the window (it covers (now - 60, now]).
    admitted = route.decide(60.0, 5)
    assert admitted.label == "ok"
    assert admitted.quota is not None
    assert admitted.quota.remaining_requests == 0


def test_quota_window_sets_the_span_of_both_quotas() -> None:
    assert Plan().quota_window == 60.0
    assert Plan.from_dict({"quota_window": 2}).quota_window == 2.0
    with pytest.raises(ConfigurationError, match=r"Plan\.quota_window"):
        Plan(quota_window=0)
    route = Route(Plan(rpm=1, tpm=10, quota_window=2.0), epoch=0.0)
    assert route.decide(0.0, 10).label == "ok"
    refused = route.decide(1.5, 1)
    assert refused.label == "quota"
    assert refused.fault.retry_after == pytest.approx(0.5)
    assert refused.quota is not None
    assert refused.quota.reset_requests == pytest.approx(0.5)
    # The admission at 0 counts for (0, 2]: gone at exactly 2.
    assert route.decide(2.0, 10).label == "ok"
    assert route.decide(3.9, 10).label == "quota"
    assert route.decide(4.0, 10).label == "ok"


def test_tpm_waits_for_enough_tokens_to_leave() -> None:
    route = Route(Plan(tpm=100), epoch=0.0)
    assert route.decide(0.0, 40).label == "ok"
    assert route.decide(10.0, 40).label == "ok"
    assert route.decide(20.0, 10).label == "ok"  # 90 used
    refused = route.decide(30.0, 50)
    # 90 + 50 > 100; freeing the t=0 admission (40) leaves 50 + 50 <= 100: wait until t=60.
    assert refused.label == "quota"
    assert refused.fault.retry_after == pytest.approx(30.0)
    assert "tokens per min" in refused.message
    too_big = route.decide(30.0, 101)
    assert (too_big.label, too_big.fault.retry_after) == ("quota", 60.0)
    assert "too large" in too_big.message


def test_outage_answers_overloaded_without_using_the_script_or_quota() -> None:
    route = Route(Plan(outages=[(10.0, 20.0)], script=["auth"], rpm=1), epoch=100.0)
    during = route.decide(115.0, 1)
    assert (during.label, during.fault.kind, during.charged) == ("outage", "overloaded", 0)
    after = route.decide(120.0, 1)
    assert (after.label, after.charged) == ("auth", 1)


def test_error_rate_is_seeded() -> None:
    plan = Plan(error_rate=0.3, error_kinds=("server_error", "reset"), seed=42)
    first = [Route(plan, 0.0).decide(0.0, 1).label for _ in range(1)]
    route_a, route_b = Route(plan, 0.0), Route(plan, 0.0)
    labels_a = [route_a.decide(float(t), 1).label for t in range(50)]
    labels_b = [route_b.decide(float(t), 1).label for t in range(50)]
    assert labels_a == labels_b
    assert first == labels_a[:1]
    assert {"ok", "server_error", "reset"} == set(labels_a)
    assert Route(Plan(error_rate=0.0), 0.0).decide(0.0, 1).label == "ok"
    always = Route(Plan(error_rate=1.0, error_kinds=("unavailable",)), 0.0)
    assert always.decide(0.0, 1).label == "unavailable"
