"""The dead-letter rate limit: a bucket per sender, and reasons with an allowance of their own."""

from __future__ import annotations

import pytest

from drivetrain.cloud.ingest.dead_letter_gate import DeadLetterGate


class _Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_a_sender_gets_its_allowance_per_minute_refilled_continuously() -> None:
    clock = _Clock()
    gate = DeadLetterGate(3, clock=clock)
    assert [gate.admit("VIN1") for _ in range(4)] == [True, True, True, False]
    assert gate.admit("VIN2")  # another sender has a bucket of its own
    clock.now = 20.0  # a third of a minute: one dead letter's worth
    assert [gate.admit("VIN1") for _ in range(2)] == [True, False]


def test_a_reason_with_its_own_allowance_neither_uses_nor_is_stopped_by_the_ordinary_one() -> None:
    gate = DeadLetterGate(2, per_minute_by_reason={"unknown_session": 5}, clock=_Clock())
    assert [gate.admit("VIN1", "malformed") for _ in range(3)] == [True, True, False]
    # the sender's ordinary bucket is empty; envelopes waiting for their session still count
    # against their own, larger one
    kept = [gate.admit("VIN1", "unknown_session") for _ in range(6)]
    assert kept == [True] * 5 + [False]
    assert not gate.admit("VIN1", "bad_signature")


@pytest.mark.parametrize("by_reason", [{"unknown_session": 0}, {"unknown_session": -1}])
def test_an_allowance_below_one_is_refused_naming_it(by_reason: dict[str, int]) -> None:
    with pytest.raises(ValueError, match="unknown_session must be >= 1"):
        DeadLetterGate(60, per_minute_by_reason=by_reason)
