"""Retry policies produce exactly the delays asked for (pure functions, no clock)."""

import random

import pytest

from taskyard import Retry, exponential


def test_seed_policy_2_4_8_seconds_exponential() -> None:
    # "retried up to 3 times after 2 s, 4 s, 8 s": 4 runs in all.
    policy = Retry(attempts=4, backoff=exponential(2))
    assert [policy.delay_after(n) for n in (1, 2, 3, 4)] == [2, 4, 8, None]


def test_seed_policy_1_5_15_minutes_list() -> None:
    policy = Retry(attempts=4, backoff=[60, 300, 900])
    assert [policy.delay_after(n) for n in (1, 2, 3, 4)] == [60, 300, 900, None]


def test_last_backoff_repeats_and_cap() -> None:
    assert [Retry(attempts=6, backoff=[1, 5]).delay_after(n) for n in range(1, 6)] == [1, 5, 5, 5, 5]
    capped = Retry(attempts=10, backoff=exponential(1, factor=3, max=20))
    assert [capped.delay_after(n) for n in range(1, 6)] == [1, 3, 9, 20, 20]


def test_jitter_is_bounded_and_reproducible() -> None:
    policy = Retry(attempts=3, backoff=[10], jitter=2)
    a = policy.delay_after(1, random.Random(7))
    b = policy.delay_after(1, random.Random(7))
    assert a == b and 10 <= a <= 12


def test_non_retryable() -> None:
    policy = Retry(attempts=3, non_retryable=(KeyError,))
    assert not policy.is_retryable(KeyError("x"))
    assert policy.is_retryable(ValueError("x"))


@pytest.mark.parametrize("kwargs", [{"attempts": 0}, {"backoff": []}, {"backoff": [-1]}, {"jitter": -1}])
def test_invalid_policies_are_rejected(kwargs: dict) -> None:
    with pytest.raises(ValueError):
        Retry(**kwargs)
