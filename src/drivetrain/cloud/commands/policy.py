"""How a job rolls out: rate, growth, maintenance windows, retries, abort threshold, timeouts.

Pure values with symmetric ``from_dict``/``to_dict`` (the API's JSON and the stored document
are the same shape). Every field has a default that suits a one-off command: no rate limit,
no windows, no retries, no abort rule, the vehicle's freshness window for commands (300 s)
and a timeout a little longer than it.

Rate: ``rate_per_min`` vehicles are handed to the vehicle link per minute (None: as fast as
the dispatcher goes). With ``growth_factor`` > 1 the rate is multiplied by that factor for every
``grow_every_successes`` vehicles that succeeded (like AWS IoT's exponential rollout), up to
``max_rate_per_min``.

Maintenance windows are UTC weekly windows (``{"days": ["sat", "sun"], "start": "01:00",
"end": "05:00"}``); with windows, vehicles are only handed out while one is open. A window whose
end is before its start runs past midnight.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta
from typing import Any, Final

from drivetrain.core.errors import BadInputError

DAYS: Final = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_CLOCK = re.compile(r"([01]\d|2[0-3]):([0-5]\d)")
#: The edge agent's freshness window for commands (``edge.downlink.DEFAULT_FRESHNESS_S``).
DEFAULT_FRESHNESS_S: Final = 300.0
#: How long after the freshness window an acknowledgement is still awaited, seconds.
ACK_GRACE_S: Final = 30.0
MAX_FRESHNESS_S: Final = 30 * 86_400.0
MAX_RETRIES: Final = 10
MAX_RATE_PER_MIN: Final = 1_000_000.0
MAX_WINDOWS: Final = 28
_KNOWN: Final = frozenset({
    "rate_per_min", "growth_factor", "grow_every_successes", "max_rate_per_min",
    "maintenance_windows", "max_retries", "retry_delay_s", "abort_failure_rate",
    "abort_min_outcomes", "timeout_s", "freshness_s",
})


def _number(
    data: Mapping[str, Any], name: str, *, low: float, high: float, default: float | None,
    integer: bool = False, exclusive_low: bool = False,
) -> Any:
    value = data.get(name)
    if value is None:  # absent or null: the default
        return default
    kind = "an integer" if integer else "a number"
    if (
        isinstance(value, bool)
        or not isinstance(value, int if integer else (int, float))
        or not math.isfinite(value)
        or value < low
        or (exclusive_low and value == low)
        or value > high
    ):
        bound = f"> {low:g}" if exclusive_low else f">= {low:g}"
        raise BadInputError(f"policy: field {name!r} is {value!r}; expected {kind} {bound} "
                            f"and <= {high:g}")
    return int(value) if integer else float(value)


@dataclass(frozen=True, slots=True)
class MaintenanceWindow:
    """A weekly UTC window: ``days`` (mon..sun) from ``start`` to ``end`` (end < start: the
    window runs past midnight into the next day)."""

    days: tuple[str, ...]
    start: time
    end: time

    def contains(self, moment: datetime) -> bool:
        """True when ``moment`` (aware) falls in the window."""
        utc = moment.astimezone(UTC)
        clock = utc.time().replace(tzinfo=None)
        today = DAYS[utc.weekday()]
        yesterday = DAYS[(utc.weekday() - 1) % 7]
        if self.start <= self.end:
            return today in self.days and self.start <= clock < self.end
        return (today in self.days and clock >= self.start) or (
            yesterday in self.days and clock < self.end
        )

    def to_dict(self) -> dict[str, Any]:
        return {"days": list(self.days), "start": self.start.strftime("%H:%M"),
                "end": self.end.strftime("%H:%M")}

    @classmethod
    def from_dict(cls, data: Any, where: str = "policy: maintenance window") -> MaintenanceWindow:
        """Raises BadInputError naming the field."""
        if not isinstance(data, Mapping):
            raise BadInputError(f"{where}: expected an object with days, start, end; got {data!r}")
        unknown = sorted(set(data) - {"days", "start", "end"})
        if unknown:
            raise BadInputError(f"{where}: unknown fields {unknown}; expected days, start, end")
        days = data.get("days", list(DAYS))
        if (
            not isinstance(days, list) or not days
            or any(not isinstance(d, str) or d.lower() not in DAYS for d in days)
        ):
            raise BadInputError(f"{where}: field 'days' is {days!r}; expected a non-empty list "
                                f"of {', '.join(DAYS)}")
        clocks = []
        for name in ("start", "end"):
            text = data.get(name)
            match = _CLOCK.fullmatch(text) if isinstance(text, str) else None
            if match is None:
                raise BadInputError(f"{where}: field {name!r} is {text!r}; expected HH:MM (UTC)")
            clocks.append(time(int(match.group(1)), int(match.group(2))))
        if clocks[0] == clocks[1]:
            raise BadInputError(f"{where}: start and end are both {data['start']}; a window "
                                "needs a length")
        return cls(tuple(dict.fromkeys(d.lower() for d in days)), clocks[0], clocks[1])


@dataclass(frozen=True, slots=True)
class RolloutPolicy:
    """How a job hands its vehicles to the vehicle link (see the module docstring).

    Attributes:
        rate_per_min: vehicles per minute; None: no limit.
        growth_factor: rate multiplier per ``grow_every_successes`` successes (1: constant).
        grow_every_successes: successes per growth step (needed when growth_factor > 1).
        max_rate_per_min: ceiling of the growing rate (None: ``MAX_RATE_PER_MIN``).
        maintenance_windows: vehicles are handed out only while one is open (none: always).
        max_retries: how many times a failed or timed-out execution is sent again.
        retry_delay_s: wait before a retry, seconds.
        abort_failure_rate: abort the job when failed / finished executions reaches this
            share (0 < x <= 1), once ``abort_min_outcomes`` vehicles have an outcome.
        abort_min_outcomes: outcomes needed before the abort rule applies.
        timeout_s: how long after delivery a vehicle's acknowledgement is awaited (None: for
            ever, e.g. collection campaigns); for commands at least ``freshness_s``.
        freshness_s: how long a command stays valid on its way to the vehicle (its
            ``expires_ns``): an offline vehicle that reconnects later refuses it.
    """

    rate_per_min: float | None = None
    growth_factor: float = 1.0
    grow_every_successes: int | None = None
    max_rate_per_min: float | None = None
    maintenance_windows: tuple[MaintenanceWindow, ...] = ()
    max_retries: int = 0
    retry_delay_s: float = 10.0
    abort_failure_rate: float | None = None
    abort_min_outcomes: int = 10
    timeout_s: float | None = DEFAULT_FRESHNESS_S + ACK_GRACE_S
    freshness_s: float = DEFAULT_FRESHNESS_S
    extra: Mapping[str, Any] = field(default_factory=dict)

    def rate_at(self, succeeded: int) -> float | None:
        """The rate in force, vehicles per minute, after ``succeeded`` successes."""
        if self.rate_per_min is None:
            return None
        rate = self.rate_per_min
        if self.growth_factor > 1.0 and self.grow_every_successes:
            steps = succeeded // self.grow_every_successes
            ceiling = self.max_rate_per_min or MAX_RATE_PER_MIN
            # min() before the power would overflow for a long, successful rollout
            rate = min(ceiling, rate * self.growth_factor ** min(steps, 1000))
        return rate

    def window_open(self, moment: datetime) -> bool:
        """True when vehicles may be handed out at ``moment``."""
        return not self.maintenance_windows or any(
            w.contains(moment) for w in self.maintenance_windows
        )

    def next_window_open(self, moment: datetime) -> datetime | None:
        """The first minute at or after ``moment`` at which a window is open (None: none
        within a week, which cannot happen for a valid window)."""
        if self.window_open(moment):
            return moment
        probe = moment.replace(second=0, microsecond=0) + timedelta(minutes=1)
        for _ in range(7 * 24 * 60):
            if self.window_open(probe):
                return probe
            probe += timedelta(minutes=1)
        return None

    def to_dict(self) -> dict[str, Any]:
        out = dict(self.extra)
        out.update({
            "rate_per_min": self.rate_per_min,
            "growth_factor": self.growth_factor,
            "grow_every_successes": self.grow_every_successes,
            "max_rate_per_min": self.max_rate_per_min,
            "maintenance_windows": [w.to_dict() for w in self.maintenance_windows],
            "max_retries": self.max_retries,
            "retry_delay_s": self.retry_delay_s,
            "abort_failure_rate": self.abort_failure_rate,
            "abort_min_outcomes": self.abort_min_outcomes,
            "timeout_s": self.timeout_s,
            "freshness_s": self.freshness_s,
        })
        return out

    @classmethod
    def from_dict(
        cls, data: Mapping[str, Any] | None, *, require_timeout_cover: bool = True
    ) -> RolloutPolicy:
        """Parse and check a policy; absent fields take their defaults.

        ``require_timeout_cover``: a timeout shorter than the freshness window is refused (a
        vehicle could still act on the command after it was reported timed out).

        Raises:
            BadInputError: a field of the wrong type or out of range; the message names it.
        """
        data = data or {}
        if not isinstance(data, Mapping):
            raise BadInputError(f"policy: expected an object, got {data!r}")
        freshness = _number(data, "freshness_s", low=1, high=MAX_FRESHNESS_S,
                            default=DEFAULT_FRESHNESS_S)
        default_timeout = freshness + ACK_GRACE_S
        # An explicit null timeout waits for ever; an absent one covers the freshness window.
        timeout = (
            None if "timeout_s" in data and data["timeout_s"] is None
            else _number(data, "timeout_s", low=1, high=MAX_FRESHNESS_S + 86_400,
                         default=default_timeout)
        )
        if timeout is not None and require_timeout_cover and timeout < freshness:
            raise BadInputError(
                f"policy: field 'timeout_s' is {timeout:g}; it must be at least freshness_s "
                f"({freshness:g}), or a vehicle could act after being reported timed out"
            )
        growth = _number(data, "growth_factor", low=1, high=100, default=1.0)
        every = _number(data, "grow_every_successes", low=1, high=10_000_000, default=None,
                        integer=True)
        if growth > 1.0 and every is None:
            raise BadInputError("policy: 'growth_factor' > 1 needs 'grow_every_successes' "
                                "(successes per growth step)")
        rate = _number(data, "rate_per_min", low=0, high=MAX_RATE_PER_MIN, default=None,
                       exclusive_low=True)
        ceiling = _number(data, "max_rate_per_min", low=0, high=MAX_RATE_PER_MIN, default=None,
                          exclusive_low=True)
        if ceiling is not None and rate is not None and ceiling < rate:
            raise BadInputError(f"policy: 'max_rate_per_min' {ceiling:g} is below "
                                f"'rate_per_min' {rate:g}")
        raw_windows = data.get("maintenance_windows") or []
        if not isinstance(raw_windows, Sequence) or isinstance(raw_windows, str):
            raise BadInputError(f"policy: field 'maintenance_windows' is {raw_windows!r}; "
                                "expected a list")
        if len(raw_windows) > MAX_WINDOWS:
            raise BadInputError(f"policy: {len(raw_windows)} maintenance windows; at most "
                                f"{MAX_WINDOWS}")
        windows = tuple(
            MaintenanceWindow.from_dict(w, f"policy: maintenance window {i + 1}")
            for i, w in enumerate(raw_windows)
        )
        return cls(
            rate_per_min=rate,
            growth_factor=growth,
            grow_every_successes=every,
            max_rate_per_min=ceiling,
            maintenance_windows=windows,
            max_retries=_number(data, "max_retries", low=0, high=MAX_RETRIES, default=0,
                                integer=True),
            retry_delay_s=_number(data, "retry_delay_s", low=0, high=86_400, default=10.0),
            abort_failure_rate=_number(data, "abort_failure_rate", low=0, high=1, default=None,
                                       exclusive_low=True),
            abort_min_outcomes=_number(data, "abort_min_outcomes", low=1, high=10_000_000,
                                       default=10, integer=True),
            timeout_s=timeout,
            freshness_s=freshness,
            extra={k: v for k, v in data.items() if k not in _KNOWN},
        )
