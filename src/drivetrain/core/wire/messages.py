"""JSON bodies of the non-telemetry messages (wire format v1).

Each type has a symmetric ``to_dict``/``from_dict``; ``from_dict`` names the bad field and
ignores fields it does not know (a newer sender may add some). Collection campaigns are defined
by the edge agent's campaign model and travel as ``MessageKind.CAMPAIGN`` JSON bodies.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Literal, get_args

from drivetrain.core.errors import WireFormatError

JsonScalar = bool | int | float | str | None
AckStatus = Literal["applied", "rejected"]
ACK_STATUSES: Final[tuple[AckStatus, ...]] = get_args(AckStatus)
#: Integers travel into 64-bit columns: anything outside int64 is a format error.
INT64_MIN: Final = -(2**63)
INT64_MAX: Final = 2**63 - 1
#: Longest free-text ``detail`` of an ack.
MAX_ACK_DETAIL: Final = 2000


def _check_int64(value: int, name: str, where: str) -> int:
    if not INT64_MIN <= value <= INT64_MAX:
        raise WireFormatError(
            f"{where}: field {name!r} is {value}; expected a 64-bit integer"
        )
    return value


def _require(data: Mapping[str, Any], name: str, kind: type | tuple[type, ...], where: str) -> Any:
    if name not in data:
        raise WireFormatError(f"{where}: field {name!r} is missing")
    value = data[name]
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is int):
        raise WireFormatError(f"{where}: field {name!r} is {_short(value)} of the wrong type")
    if kind is int and isinstance(value, int):
        _check_int64(value, name, where)
    return value


def _short(value: Any) -> str:
    """``repr(value)``, cut to a readable length (it may be a hostile sender's megabyte)."""
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _optional_int(data: Mapping[str, Any], name: str, where: str) -> int | None:
    value = data.get(name)
    if value is not None and (not isinstance(value, int) or isinstance(value, bool)):
        raise WireFormatError(
            f"{where}: field {name!r} is {_short(value)}; expected an integer or null"
        )
    return None if value is None else _check_int64(value, name, where)


@dataclass(frozen=True)
class DesiredStateDelta:
    """Cloud → vehicle: the desired values that differ from what the vehicle reported.

    ``version`` is the twin's desired-state version; a vehicle applies a delta only if its
    version is newer than the last one it applied. ``expires_ns`` (optional) is when the
    cloud stops wanting the change.
    """

    version: int
    values: Mapping[str, JsonScalar]
    expires_ns: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"version": self.version, "values": dict(self.values), "expires_ns": self.expires_ns}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DesiredStateDelta:
        where = "desired-state body"
        values = _require(data, "values", dict, where)
        for path, value in values.items():
            if not isinstance(value, (bool, int, float, str)) and value is not None:
                raise WireFormatError(f"{where}: value of {path!r} is {value!r}; expected a scalar")
        return cls(
            version=_require(data, "version", int, where),
            values=values,
            expires_ns=_optional_int(data, "expires_ns", where),
        )


@dataclass(frozen=True)
class Ack:
    """Vehicle → cloud: what became of a downlink message (``ref`` is its message id)."""

    ref: str
    ref_kind: Literal["desired_state", "campaign", "command", "decoder_manifest", "entitlements"]
    status: AckStatus
    detail: str = ""
    #: For desired state: the version applied or rejected.
    version: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "ref": self.ref, "ref_kind": self.ref_kind, "status": self.status,
            "detail": self.detail, "version": self.version,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Ack:
        where = "ack body"
        status = _require(data, "status", str, where)
        if status not in ACK_STATUSES:
            raise WireFormatError(
                f"{where}: field 'status' is {_short(status)}; expected {ACK_STATUSES}"
            )
        ref_kind = _require(data, "ref_kind", str, where)
        if ref_kind not in ("desired_state", "campaign", "command", "decoder_manifest",
                            "entitlements"):
            raise WireFormatError(f"{where}: field 'ref_kind' is {_short(ref_kind)}")
        detail = data.get("detail", "")
        if not isinstance(detail, str) or len(detail) > MAX_ACK_DETAIL:
            raise WireFormatError(
                f"{where}: field 'detail' is {_short(detail)}; expected a string of at most "
                f"{MAX_ACK_DETAIL} characters"
            )
        return cls(
            ref=_require(data, "ref", str, where),
            ref_kind=ref_kind,
            status=status,
            detail=detail,
            version=_optional_int(data, "version", where),
        )


@dataclass(frozen=True)
class VehicleEvent:
    """One event a vehicle reports (an IDS alert, a DTC, a campaign trigger...)."""

    type: str
    ts_ns: int
    severity: Literal["info", "low", "medium", "high", "critical"] = "info"
    data: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"type": self.type, "ts_ns": self.ts_ns, "severity": self.severity, "data": dict(self.data)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> VehicleEvent:
        where = "event"
        severity = data.get("severity", "info")
        if severity not in ("info", "low", "medium", "high", "critical"):
            raise WireFormatError(f"{where}: field 'severity' is {_short(severity)}")
        return cls(
            type=_require(data, "type", str, where),
            ts_ns=_require(data, "ts_ns", int, where),
            severity=severity,
            data=_require(data, "data", dict, where) if "data" in data else {},
        )


def events_to_dict(events: list[VehicleEvent]) -> dict[str, Any]:
    """The EVENTS body: ``{"events": [...]}``."""
    return {"events": [e.to_dict() for e in events]}


def events_from_dict(data: Mapping[str, Any]) -> list[VehicleEvent]:
    """Parse an EVENTS body.

    Raises:
        WireFormatError: 'events' missing, not a list, or an event malformed.
    """
    items = _require(data, "events", list, "events body")
    return [VehicleEvent.from_dict(_require({"event": e}, "event", dict, "events body")) for e in items]


@dataclass(frozen=True)
class Command:
    """Cloud → vehicle: a one-off instruction (e.g. ``flash_lights``, ``disable_function``)."""

    name: str
    args: Mapping[str, Any] = field(default_factory=dict)
    expires_ns: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "args": dict(self.args), "expires_ns": self.expires_ns}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Command:
        where = "command body"
        return cls(
            name=_require(data, "name", str, where),
            args=_require(data, "args", dict, where) if "args" in data else {},
            expires_ns=_optional_int(data, "expires_ns", where),
        )
