"""When a quiet attempt gets the next route beside it: the pure policy, and the flow that
puts its answer on each attempt (``Call.hedge_after``), stepped by hand."""

from __future__ import annotations

import random
from datetime import timedelta

import pytest

from resilient_llm import ConfigurationError
from resilient_llm.errors import ProviderUnavailable
from resilient_llm.flow.call import Flow, call_flow
from resilient_llm.flow.effects import Failed, FlowPolicy, Wait
from resilient_llm.flow.ops import Done, Finish
from resilient_llm.policies.backoff import RetryPolicy
from resilient_llm.policies.hedging import DEFAULT_HEDGE, Hedge

from .test_flow_steps import OPEN_ROAD, Bare, admitted


def test_by_default_an_attempt_may_be_quiet_for_half_the_time_left() -> None:
    assert Hedge() == DEFAULT_HEDGE
    assert Hedge().patience(10.0) == 5.0
    assert Hedge(share=0.25).patience(8.0) == 2.0


def test_a_model_that_thinks_first_is_given_longer() -> None:
    assert Hedge().patience(10.0, reasoning=True) == 8.0
    assert Hedge(reasoning_share=0.9).patience(10.0, reasoning=True) == 9.0


def test_a_fixed_delay_wins_but_never_past_the_time_left() -> None:
    assert Hedge(2.0).patience(10.0) == 2.0
    assert Hedge(timedelta(seconds=2)).patience(10.0, reasoning=True) == 2.0
    assert Hedge(20.0).patience(10.0) == 10.0


def test_the_reason_names_the_missing_sign_and_the_limit() -> None:
    assert Hedge().why("a", 5.0, 10.0, stream=True) == (
        "no first chunk from 'a' within 5s, 50% of the 10s left"
    )
    assert (
        Hedge(2.0).why("a", 2.0, 10.0, stream=False)
        == "no first chunk of the reply from 'a' within 2s"
    )


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"delay": 0}, "Hedge.delay"),
        ({"share": 1.0}, "Hedge.share"),
        ({"share": 0}, "Hedge.share"),
        ({"reasoning_share": "half"}, "Hedge.reasoning_share"),
    ],
)
def test_bad_settings_name_the_field(kwargs: dict[str, object], field: str) -> None:
    with pytest.raises(ConfigurationError, match=field):
        Hedge(**kwargs)  # type: ignore[arg-type]


def _flow(*routes: Bare, hedge: Hedge | None, reasoning: tuple[bool, ...] = ()) -> Flow:
    return call_flow(
        list(routes),
        [10] * len(routes),
        FlowPolicy(retry=RetryPolicy(max_retries=1, base=1.0, jitter="none"), hedge=hedge),
        now=0.0,
        deadline=10.0,
        rng=random.Random(0),
        emit=lambda event: None,
        reasoning=reasoning,
    )


def test_the_flow_asks_for_a_hedge_while_another_route_could_answer() -> None:
    a, b = Bare("a"), Bare("b")
    call = admitted(_flow(a, b, hedge=Hedge()), a)
    assert call.hedge_after == 5.0
    assert "no first chunk of the reply from 'a'" in call.why


def test_a_reasoning_route_is_raced_later() -> None:
    a, b = Bare("a"), Bare("b")
    call = admitted(_flow(a, b, hedge=Hedge(), reasoning=(True, False)), a)
    assert call.hedge_after == 8.0


def test_no_hedge_without_a_policy_or_another_route() -> None:
    a, b = Bare("a"), Bare("b")
    assert admitted(_flow(a, b, hedge=None), a).hedge_after is None
    assert admitted(_flow(a, hedge=Hedge()), a).hedge_after is None
    b.disabled = "bad key"
    assert admitted(_flow(a, b, hedge=Hedge()), a).hedge_after is None


def test_a_retry_is_raced_on_the_time_then_left() -> None:
    a, b = Bare("a"), Bare("b")
    steps = _flow(a, b, hedge=Hedge())
    admitted(steps, a)
    # The first attempt failed at 2 s; its retry, after 1 s of backoff, has 7 s left.
    failed = steps.send(Failed(2.0, ProviderUnavailable("down", status_code=503)))
    assert isinstance(failed, Finish)
    steps.send(Done(None, 2.0))  # ready_at
    steps.send(Done(2.0, 2.0))  # the breaker is ready: look again
    wait = steps.send(Done(OPEN_ROAD, 2.0))
    assert isinstance(wait, Wait)
    assert wait.seconds == 1.0
    call = admitted(steps, a, now=3.0)
    assert call.hedge_after == pytest.approx(3.5)
