"""Collection campaigns: what the cloud asks a vehicle to collect, as a checked domain object.

A campaign travels as the JSON body of a ``MessageKind.CAMPAIGN`` envelope (see
docs/edge-agent.md for the format). ``Campaign.from_dict`` checks every field against the VSS
catalog and parses the trigger expressions, so a campaign that cannot work is refused before
it is installed; ``to_dict`` writes it back (unknown top-level fields are kept, so a newer
cloud's additions survive a round trip).

Signal selectors name either one VSS path (``Vehicle.Speed``) or every signal below a branch
(``Vehicle.Powertrain.TractionBattery.*``; ``*`` alone is every signal).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Final, Literal

from drivetrain.core.errors import CampaignFormatError, ExpressionSyntaxError, UnknownSignalError
from drivetrain.core.vss import Catalog
from drivetrain.edge.expressions import Expression, parse_expression
from drivetrain.edge.partitions import UploadPartition, parse_partitions

CAMPAIGN_FORMAT: Final = 1
_ID = re.compile(r"[a-z0-9][a-z0-9_.-]{0,63}")
#: Priorities run from 0 (first to be evicted from a full buffer) to 9 (last).
MIN_PRIORITY: Final = 0
MAX_PRIORITY: Final = 9
#: The default campaign's priority, and that of a campaign that names none.
DEFAULT_PRIORITY: Final = 1
#: Sampling period when a campaign does not name one (``"period_ms": null`` samples nothing).
DEFAULT_PERIOD_MS: Final = 1000
MIN_PERIOD_MS: Final = 10
MAX_PERIOD_MS: Final = 86_400_000
MAX_PRE_S: Final = 600.0
MAX_POST_S: Final = 3600.0
MAX_TRIGGERS: Final = 16
MAX_SELECTORS: Final = 1024
CampaignStatus = Literal["active", "cancelled"]
_KNOWN: Final = frozenset(
    {
        "format",
        "id",
        "version",
        "priority",
        "status",
        "expires_ns",
        "signals",
        "period_ms",
        "signal_period_ms",
        "min_interval_ms",
        "triggers",
    }
)
_TRIGGER_KEYS: Final = frozenset({"name", "expression", "pre_s", "post_s", "signals"})


def selector_matches(selector: str, path: str) -> bool:
    """True when ``selector`` (a path, ``Branch.*`` or ``*``) selects the signal ``path``."""
    if selector == "*":
        return True
    if selector.endswith(".*"):
        return path.startswith(selector[:-1])
    return selector == path


def _best_selector(selectors: Mapping[str, int], path: str) -> int | None:
    """The value of the most specific selector of ``path`` (exact path, then longest branch)."""
    if path in selectors:
        return selectors[path]
    best: tuple[int, int] | None = None
    for selector, value in selectors.items():
        if selector_matches(selector, path) and (best is None or len(selector) > best[0]):
            best = (len(selector), value)
    return None if best is None else best[1]


@dataclass(frozen=True)
class Trigger:
    """Condition-triggered collection.

    When ``expression`` becomes true the vehicle sends the samples of ``signals`` from
    ``pre_s`` seconds before each instant the condition holds to ``post_s`` seconds after it
    (overlapping windows merge; a long true stretch is one window).
    """

    name: str
    expression: Expression
    pre_s: float
    post_s: float
    #: Selectors of the signals to capture; None means the campaign's own ``signals``.
    signals: tuple[str, ...] | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "name": self.name,
            "expression": self.expression.text,
            "pre_s": self.pre_s,
            "post_s": self.post_s,
        }
        if self.signals is not None:
            out["signals"] = list(self.signals)
        return out


@dataclass(frozen=True)
class Campaign:
    """A checked collection campaign (see the module docstring and docs/edge-agent.md).

    Attributes:
        id: campaign id, ``[a-z0-9][a-z0-9_.-]{0,63}``.
        version: increases with every change; an older version never replaces a newer one.
        priority: 0-9; a full buffer evicts lower priorities first.
        signals: selectors of the signals collected by time-based sampling (and, by default,
            captured by triggers).
        period_ms: time-based sampling period; None collects nothing on a timer (a
            trigger-only campaign).
        signal_period_ms: per-selector sampling periods that override ``period_ms``.
        min_interval_ms: per-selector minimum spacing of two collected samples of a signal.
        triggers: condition-triggered collection windows.
        expires_ns: when the campaign stops (Unix ns); None never.
        status: ``cancelled`` (as a newer version) removes the campaign from the vehicle.
        extra: top-level fields this version does not interpret, kept for round trips (and
            the FleetWise-style fields it reads from them: ``upload``,
            ``max_samples_per_signal``, ``dtcs_on_trigger``).
        partitions: the upload conditions per data partition (``upload``, see
            ``edge.partitions``); empty: everything is uploaded at once.
    """

    id: str
    version: int
    signals: tuple[str, ...]
    period_ms: int | None = DEFAULT_PERIOD_MS
    priority: int = DEFAULT_PRIORITY
    signal_period_ms: Mapping[str, int] = field(default_factory=dict)
    min_interval_ms: Mapping[str, int] = field(default_factory=dict)
    triggers: tuple[Trigger, ...] = ()
    expires_ns: int | None = None
    status: CampaignStatus = "active"
    extra: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    partitions: tuple[UploadPartition, ...] = ()

    @property
    def dtcs_on_trigger(self) -> bool:
        """Whether each trigger event carries the vehicle's active DTCs."""
        return self.extra.get("dtcs_on_trigger") is True

    def partition_of(self, path: str) -> UploadPartition | None:
        """The upload partition ``path`` belongs to (the first naming it), or None: at once."""
        for partition in self.partitions:
            if any(selector_matches(s, path) for s in partition.signals):
                return partition
        return None

    def selects(self, path: str) -> bool:
        """True when time-based sampling collects ``path``."""
        return any(selector_matches(s, path) for s in self.signals)

    def period_ns(self, path: str) -> int:
        """The sampling period of ``path`` in ns; 0 when the campaign does not sample it."""
        if not self.selects(path):
            return 0
        period = _best_selector(self.signal_period_ms, path)
        if period is None:
            period = self.period_ms
        return 0 if period is None else period * 1_000_000

    def min_interval_ns(self, path: str) -> int:
        """The least spacing of two collected samples of ``path``, ns (0: none)."""
        value = _best_selector(self.min_interval_ms, path)
        return 0 if value is None else value * 1_000_000

    def sample_cap(self, path: str) -> int | None:
        """The most samples of ``path`` the campaign sends (its ``max_samples_per_signal``: a
        number for every signal, or per selector); None: no cap. A malformed value caps
        nothing (the cloud checks it before sending the campaign)."""
        value = self.extra.get("max_samples_per_signal")
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value
        if isinstance(value, Mapping):
            caps = {k: v for k, v in value.items()
                    if isinstance(k, str) and isinstance(v, int) and not isinstance(v, bool)
                    and v > 0}
            return _best_selector(caps, path)
        return None

    def captures(self, trigger: Trigger, path: str) -> bool:
        """True when ``trigger`` captures ``path`` in its windows."""
        selectors = self.signals if trigger.signals is None else trigger.signals
        return any(selector_matches(s, path) for s in selectors)

    def expired(self, now_ns: int) -> bool:
        return self.expires_ns is not None and now_ns >= self.expires_ns

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = dict(self.extra)
        out.update(
            {
                "format": CAMPAIGN_FORMAT,
                "id": self.id,
                "version": self.version,
                "priority": self.priority,
                "status": self.status,
                "expires_ns": self.expires_ns,
                "signals": list(self.signals),
                "period_ms": self.period_ms,
                "signal_period_ms": dict(self.signal_period_ms),
                "min_interval_ms": dict(self.min_interval_ms),
                "triggers": [t.to_dict() for t in self.triggers],
            }
        )
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], catalog: Catalog) -> Campaign:
        """Parse and check a campaign body.

        Raises:
            CampaignFormatError: a field missing, of the wrong type or out of range; a selector
                that names no signal of the catalog; a trigger expression that does not parse
                or names an unknown signal. The message names the field.
        """
        if not isinstance(data, Mapping):
            raise CampaignFormatError(
                f"campaign: expected a JSON object, got {type(data).__name__}"
            )
        fmt = data.get("format", CAMPAIGN_FORMAT)
        if fmt != CAMPAIGN_FORMAT:
            raise CampaignFormatError(
                f"campaign: field 'format' is {fmt!r}; this vehicle reads {CAMPAIGN_FORMAT}"
            )
        campaign_id = data.get("id", _MISSING)
        if not isinstance(campaign_id, str) or not _ID.fullmatch(campaign_id):
            raise CampaignFormatError(
                f"campaign: field 'id' {_is(campaign_id)}; expected 1-64 characters of a-z, "
                "0-9, '_', '.', '-' starting with a letter or digit"
            )
        where = f"campaign {campaign_id!r}"
        version = _checked_int(data.get("version", _MISSING), f"{where}: field 'version'", 0,
                               None)
        priority = _integer(data, "priority", where, low=MIN_PRIORITY, high=MAX_PRIORITY)
        status = data.get("status", "active")
        if status not in ("active", "cancelled"):
            raise CampaignFormatError(
                f"{where}: field 'status' is {status!r}; expected 'active' or 'cancelled'"
            )
        expires_ns = _integer(data, "expires_ns", where, low=0)
        signals = _selectors(
            data.get("signals", _MISSING), f"{where}: field 'signals'", catalog, required=True
        )
        period_ms = (
            DEFAULT_PERIOD_MS
            if "period_ms" not in data
            else _integer(data, "period_ms", where, low=MIN_PERIOD_MS, high=MAX_PERIOD_MS)
        )
        signal_period = _selector_map(
            data, "signal_period_ms", where, catalog, low=MIN_PERIOD_MS, high=MAX_PERIOD_MS
        )
        for selector in signal_period:
            if not any(_covers(s, selector) for s in signals):
                raise CampaignFormatError(
                    f"{where}: field 'signal_period_ms' names {selector!r}, which 'signals' does "
                    "not collect"
                )
        min_interval = _selector_map(
            data, "min_interval_ms", where, catalog, low=0, high=MAX_PERIOD_MS
        )
        raw_triggers = data.get("triggers", [])
        if not isinstance(raw_triggers, list):
            raise CampaignFormatError(
                f"{where}: field 'triggers' is {raw_triggers!r}; expected a list"
            )
        if len(raw_triggers) > MAX_TRIGGERS:
            raise CampaignFormatError(
                f"{where}: field 'triggers' has {len(raw_triggers)} entries; at most {MAX_TRIGGERS}"
            )
        triggers = tuple(
            _trigger(t, f"{where}: trigger {i + 1}", catalog) for i, t in enumerate(raw_triggers)
        )
        if period_ms is None and not signal_period and not triggers:
            raise CampaignFormatError(
                f"{where} collects nothing: 'period_ms' is null and there are no 'triggers'"
            )
        names = [t.name for t in triggers]
        if len(set(names)) != len(names):
            raise CampaignFormatError(f"{where}: trigger names repeat: {names}")
        extra = {k: v for k, v in data.items() if k not in _KNOWN}
        partitions = parse_partitions(
            extra.get("upload"), where, catalog,
            lambda value, at: _selectors(value, at, catalog, required=True),
        )
        dtcs = extra.get("dtcs_on_trigger", False)
        if not isinstance(dtcs, bool):
            raise CampaignFormatError(
                f"{where}: field 'dtcs_on_trigger' is {dtcs!r}; expected true or false"
            )
        return cls(
            id=campaign_id,
            version=version,
            signals=signals,
            period_ms=period_ms,
            priority=DEFAULT_PRIORITY if priority is None else priority,
            signal_period_ms=MappingProxyType(signal_period),
            min_interval_ms=MappingProxyType(min_interval),
            triggers=triggers,
            expires_ns=expires_ns,
            status=status,
            extra=MappingProxyType(extra),
            partitions=partitions,
        )


class _Missing:
    """A field the campaign does not have (told apart from an explicit null)."""


_MISSING: Final = _Missing()


def _is(value: Any) -> str:
    """How an error message shows a field's value: missing, null, or the value itself."""
    if isinstance(value, _Missing):
        return "is missing"
    if value is None:
        return "is null"
    return f"is {value!r}"


def default_campaign() -> Campaign:
    """The campaign in force while none is installed: every mapped signal at 1 Hz."""
    return Campaign(
        id="default",
        version=0,
        signals=("*",),
        period_ms=DEFAULT_PERIOD_MS,
        priority=DEFAULT_PRIORITY,
    )


def _covers(outer: str, inner: str) -> bool:
    if outer == "*":
        return True
    if outer.endswith(".*"):
        return inner.startswith(outer[:-1])
    return outer == inner


def _integer(
    data: Mapping[str, Any], name: str, where: str, *, low: int, high: int | None = None
) -> int | None:
    value = data.get(name)
    return None if value is None else _checked_int(value, f"{where}: field {name!r}", low, high)


def _checked_int(value: Any, label: str, low: int, high: int | None) -> int:
    if (
        isinstance(value, bool)
        or not isinstance(value, int)
        or value < low
        or (high is not None and value > high)
    ):
        bound = f">= {low}" if high is None else f"from {low} to {high}"
        raise CampaignFormatError(f"{label} {_is(value)}; expected an integer {bound}")
    return value


def _selectors(value: Any, where: str, catalog: Catalog, *, required: bool) -> tuple[str, ...]:
    if not isinstance(value, list) or (required and not value):
        raise CampaignFormatError(
            f"{where} {_is(value)}; expected a non-empty list of VSS paths or 'Branch.*' "
            "selectors"
        )
    if len(value) > MAX_SELECTORS:
        raise CampaignFormatError(f"{where} has {len(value)} entries; at most {MAX_SELECTORS}")
    for selector in value:
        _check_selector(selector, where, catalog)
    return tuple(dict.fromkeys(value))


def _check_selector(selector: Any, where: str, catalog: Catalog) -> None:
    if not isinstance(selector, str) or not selector:
        raise CampaignFormatError(f"{where}: entry {selector!r} is not a VSS path or selector")
    if selector == "*":
        return
    if selector.endswith(".*"):
        prefix = selector[:-1]
        if not any(p.startswith(prefix) for p in catalog.paths):
            raise CampaignFormatError(f"{where}: {selector!r} selects no signal of the catalog")
        return
    try:
        catalog.get(selector)
    except UnknownSignalError as e:
        raise CampaignFormatError(f"{where}: {e}") from None


def _selector_map(
    data: Mapping[str, Any], name: str, where: str, catalog: Catalog, *, low: int, high: int
) -> dict[str, int]:
    value = data.get(name, {})
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise CampaignFormatError(f"{where}: field {name!r} is {value!r}; expected an object")
    out: dict[str, int] = {}
    for selector, number in value.items():
        _check_selector(selector, f"{where}: field {name!r}", catalog)
        out[selector] = _checked_int(number, f"{where}: field {name!r}: {selector!r}", low, high)
    return out


def _trigger(data: Any, where: str, catalog: Catalog) -> Trigger:
    if not isinstance(data, dict):
        raise CampaignFormatError(f"{where}: expected an object, got {data!r}")
    unknown = sorted(set(data) - _TRIGGER_KEYS)
    if unknown:
        raise CampaignFormatError(
            f"{where}: unknown fields {unknown}; expected {sorted(_TRIGGER_KEYS)}"
        )
    name = data.get("name")
    if not isinstance(name, str) or not _ID.fullmatch(name):
        raise CampaignFormatError(
            f"{where}: field 'name' is {name!r}; expected an id like 'hot-battery'"
        )
    text = data.get("expression")
    if not isinstance(text, str):
        raise CampaignFormatError(
            f"{where} ({name}): field 'expression' is {text!r}; expected a string"
        )
    try:
        expression = parse_expression(text, catalog)
    except (ExpressionSyntaxError, UnknownSignalError) as e:
        raise CampaignFormatError(f"{where} ({name}): expression {text!r}: {e}") from e
    windows = []
    for key, limit in (("pre_s", MAX_PRE_S), ("post_s", MAX_POST_S)):
        seconds = data.get(key, 0)
        if (
            isinstance(seconds, bool)
            or not isinstance(seconds, int | float)
            or not (math.isfinite(seconds) and 0 <= seconds <= limit)
        ):
            raise CampaignFormatError(
                f"{where} ({name}): field {key!r} is {seconds!r}; "
                f"expected seconds from 0 to {limit:g}"
            )
        windows.append(float(seconds))
    signals = None
    if "signals" in data and data["signals"] is not None:
        signals = _selectors(
            data["signals"], f"{where} ({name}): field 'signals'", catalog, required=True
        )
    return Trigger(name, expression, windows[0], windows[1], signals)
