"""The subscription state machine (pure: values in, values out, typed errors).

```
            ┌── trial ends, paid ──▶ active ◀── renewal paid / retry paid ──┐
 trialing ──┤                          │  ──renewal declined──▶ past_due ────┤
            └── trial ends, declined ─────────────────────────▶ past_due ────┘
 active / trialing ──cancel(at period end)──▶ (same, cancel_at_period_end) ──period end──▶ expired
 any live ──cancel(now) / refund──▶ expired        past_due ──last dunning retry fails──▶ expired
 active ──pause──▶ paused ──resume──▶ active (the paused time is added to the period)
```

A subscription **entitles** its vehicle while ``trialing`` or ``active``; ``past_due`` gives
no new entitlement (the vehicle keeps the last one until its ``exp`` plus the grace period,
then the feature goes off); ``paused`` and ``expired`` revoke it.
"""

from __future__ import annotations

import calendar
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Final, Literal, get_args

from drivetrain.cloud.commerce.catalog import Billing, Offer
from drivetrain.core.errors import StateTransitionError

SubscriptionStatus = Literal["trialing", "active", "past_due", "paused", "expired"]
SUBSCRIPTION_STATUSES: Final[tuple[SubscriptionStatus, ...]] = get_args(SubscriptionStatus)
LIVE: Final = frozenset({"trialing", "active", "past_due", "paused"})
#: Retries of a declined renewal, after the first failure (Smart-retry schedules are longer;
#: three tries over a week is the common default).
DUNNING_RETRIES: Final = (timedelta(days=1), timedelta(days=3), timedelta(days=7))


def add_period(start: datetime, billing: Billing, count: int = 1) -> datetime:
    """``start`` plus ``count`` billing periods: calendar months (the day clamped to the
    month's last, 31 Jan → 28/29 Feb) or years.

    Raises:
        ValueError: a billing without a period (one_off, usage bill monthly in arrears).
    """
    months = {"monthly": 1, "usage": 1, "yearly": 12}.get(billing)
    if months is None:
        raise ValueError(f"billing {billing!r} has no period")
    total = start.month - 1 + months * count
    year, month = start.year + total // 12, total % 12 + 1
    day = min(start.day, calendar.monthrange(year, month)[1])
    return start.replace(year=year, month=month, day=day)


@dataclass(frozen=True, slots=True)
class SubscriptionState:
    """Where a subscription stands. ``period_end`` None: a one-off purchase without a term."""

    status: SubscriptionStatus
    period_start: datetime
    period_end: datetime | None
    trial_end: datetime | None = None
    cancel_at_period_end: bool = False
    dunning_attempts: int = 0
    next_retry_at: datetime | None = None
    paused_at: datetime | None = None
    end_reason: str | None = None

    @property
    def entitled(self) -> bool:
        """Whether the vehicle gets (new) entitlement tokens now."""
        return self.status in ("trialing", "active")


def start(offer: Offer, now: datetime) -> SubscriptionState:
    """A new subscription to ``offer``: trialing when it has a trial, else active (the first
    charge is the caller's, before it stores this)."""
    if offer.trial_days:
        trial_end = now + timedelta(days=offer.trial_days)
        return SubscriptionState("trialing", now, trial_end, trial_end=trial_end)
    if offer.billing == "one_off":
        end = now + timedelta(days=offer.term_days) if offer.term_days else None
        return SubscriptionState("active", now, end)
    return SubscriptionState("active", now, add_period(now, offer.billing))


def renewal_due(state: SubscriptionState, now: datetime) -> bool:
    """True when a period (or trial) ended and the subscription must be charged, retried or
    ended."""
    if state.status == "past_due":
        return state.next_retry_at is not None and state.next_retry_at <= now
    return (state.status in ("trialing", "active") and state.period_end is not None
            and state.period_end <= now)


def _check_live(state: SubscriptionState, subscription_id: str, action: str) -> None:
    if state.status not in LIVE:
        raise StateTransitionError(
            f"subscription {subscription_id} is {state.status}; it cannot be {action}"
        )


def renew(state: SubscriptionState, offer: Offer, paid: bool, now: datetime) -> SubscriptionState:
    """The outcome of a due renewal: ``paid`` says whether the charge went through. A
    subscription cancelled at period end, or a one-off whose term ended, expires instead
    (the caller charges nothing then: see :func:`ends_at_renewal`)."""
    if ends_at_renewal(state, offer):
        reason = "canceled at period end" if state.cancel_at_period_end else "term ended"
        return replace(state, status="expired", end_reason=reason, next_retry_at=None)
    if paid:
        # Retried payments keep the original anchor: the new period starts where the old ended.
        assert state.period_end is not None
        anchor = state.period_end
        return SubscriptionState("active", anchor, add_period(anchor, offer.billing))
    attempts = state.dunning_attempts + 1 if state.status == "past_due" else 1
    if attempts > len(DUNNING_RETRIES):
        return replace(state, status="expired", dunning_attempts=attempts, next_retry_at=None,
                       end_reason="payment failed after every retry")
    return replace(state, status="past_due", dunning_attempts=attempts,
                   next_retry_at=now + DUNNING_RETRIES[attempts - 1])


def ends_at_renewal(state: SubscriptionState, offer: Offer) -> bool:
    """True when the due renewal ends the subscription rather than charging it: cancelled at
    period end, or a one-off purchase whose term is over."""
    return state.status != "past_due" and (state.cancel_at_period_end
                                           or offer.billing == "one_off")


def cancel(state: SubscriptionState, now: datetime, subscription_id: str, *,
           at_period_end: bool) -> SubscriptionState:
    """Cancel: at the end of the paid period (the feature stays until then), or now.

    Raises:
        StateTransitionError: already expired.
    """
    _check_live(state, subscription_id, "canceled")
    if at_period_end and state.status in ("trialing", "active") and state.period_end is not None:
        return replace(state, cancel_at_period_end=True)
    return replace(state, status="expired", end_reason="canceled", next_retry_at=None)


def pause(state: SubscriptionState, now: datetime, subscription_id: str) -> SubscriptionState:
    """Pause an active recurring subscription (the feature goes off, the period stops).

    Raises:
        StateTransitionError: not active, or not recurring.
    """
    if state.status != "active" or state.period_end is None:
        raise StateTransitionError(
            f"subscription {subscription_id} is {state.status}; only an active recurring "
            "subscription can be paused"
        )
    return replace(state, status="paused", paused_at=now)


def resume(state: SubscriptionState, now: datetime, subscription_id: str) -> SubscriptionState:
    """Resume a paused subscription; the period is extended by the time paused.

    Raises:
        StateTransitionError: not paused.
    """
    if state.status != "paused" or state.paused_at is None or state.period_end is None:
        raise StateTransitionError(
            f"subscription {subscription_id} is {state.status}; only a paused one resumes"
        )
    return replace(state, status="active", paused_at=None,
                   period_end=state.period_end + (now - state.paused_at))


def expire(state: SubscriptionState, reason: str, subscription_id: str) -> SubscriptionState:
    """End now for ``reason`` (a refund, a transfer).

    Raises:
        StateTransitionError: already expired.
    """
    _check_live(state, subscription_id, "ended")
    return replace(state, status="expired", end_reason=reason, next_retry_at=None)
