"""Entitlements in the vehicle's twin: the paths, and the vehicle's report of its features.

The cloud's granted (and revoked) set is part of the twin's **desired** state, one item per
feature, and the vehicle's enabled features part of its **reported** state:

| path | side | value |
|---|---|---|
| ``Entitlement.<feature>.Token`` | desired | the newest signed token (grant or revocation) |
| ``Entitlement.<feature>.Token`` | reported | the token the vehicle holds in force |
| ``Entitlement.<feature>.State`` | reported | ``enabled``, ``grace`` or ``disabled`` |
| ``Entitlement.<feature>.Seq`` | reported | that token's ``seq`` |
| ``Entitlement.<feature>.Expires`` | reported | its ``exp`` (Unix seconds) |

A desired token is **confirmed** once the vehicle reports holding that very token (the twin's
ordinary convergence: equal values), so the twin's delta is exactly the grants the car has not
confirmed and the revocations it has not applied. A desired-state value under
``Entitlement.`` is honoured only as a token the vehicle verifies itself (signature, VIN,
feature, seq): the twin carries tokens, it never vouches for them.

The vehicle reports through the ``entitlements.changed`` event (:data:`CHANGED_EVENT`), whose
``features`` list :func:`reports_from_event` reads (untrusted input: every field checked).
Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final, Literal

from drivetrain.core.entitlement import FEATURE_CODE, MAX_TOKEN_BYTES
from drivetrain.core.errors import WireFormatError

#: First segment of every entitlement path of a twin.
PREFIX: Final = "Entitlement"
#: The event a vehicle sends when its features change; its data feeds the twin.
CHANGED_EVENT: Final = "entitlements.changed"
#: Most features one report may carry.
MAX_FEATURES: Final = 64
TwinFeatureState = Literal["enabled", "grace", "disabled"]
TWIN_FEATURE_STATES: Final = ("enabled", "grace", "disabled")
_MAX_INT: Final = 2**53


def token_path(feature: str) -> str:
    """``Entitlement.<feature>.Token``: where the feature's token lives in a twin."""
    return f"{PREFIX}.{feature}.Token"


def is_entitlement_path(path: str) -> bool:
    """True for any path under ``Entitlement.``."""
    return path.startswith(PREFIX + ".")


def feature_of_token_path(path: str) -> str | None:
    """The feature a ``Entitlement.<feature>.Token`` path names, or None for any other path
    (another field, a malformed feature code)."""
    parts = path.split(".")
    if len(parts) != 3 or parts[0] != PREFIX or parts[2] != "Token":
        return None
    return parts[1] if FEATURE_CODE.fullmatch(parts[1]) else None


@dataclass(frozen=True, slots=True)
class FeatureReport:
    """One feature as the vehicle reports it: the token in force and what it makes of it."""

    feature: str
    token: str
    seq: int
    expires_s: int
    state: TwinFeatureState

    def to_dict(self) -> dict[str, Any]:
        return {"feature": self.feature, "token": self.token, "seq": self.seq,
                "expires_s": self.expires_s, "state": self.state}

    @classmethod
    def from_dict(cls, data: object, where: str = "feature report") -> FeatureReport:
        """Read one report.

        Raises:
            WireFormatError: not a mapping, a missing field, or one of the wrong type or range.
        """
        if not isinstance(data, Mapping):
            raise WireFormatError(f"{where}: expected an object, got {type(data).__name__}")
        feature = data.get("feature")
        if not isinstance(feature, str) or not FEATURE_CODE.fullmatch(feature):
            raise WireFormatError(f"{where}: field 'feature' is {_short(feature)}; expected a "
                                  "feature code")
        token = data.get("token")
        if not isinstance(token, str) or not 0 < len(token) <= MAX_TOKEN_BYTES:
            raise WireFormatError(f"{where}: field 'token' of {feature} must be a string of 1 "
                                  f"to {MAX_TOKEN_BYTES} characters")
        numbers = {}
        for name in ("seq", "expires_s"):
            value = data.get(name)
            if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < _MAX_INT:
                raise WireFormatError(f"{where}: field {name!r} of {feature} is "
                                      f"{_short(value)}; expected an integer in [0, 2**53)")
            numbers[name] = value
        state = data.get("state")
        if state not in TWIN_FEATURE_STATES:
            raise WireFormatError(f"{where}: field 'state' of {feature} is {_short(state)}; "
                                  f"expected one of {TWIN_FEATURE_STATES}")
        return cls(feature, token, numbers["seq"], numbers["expires_s"], state)

    def twin_values(self) -> dict[str, str | int]:
        """The reported twin values of this feature, by path."""
        base = f"{PREFIX}.{self.feature}"
        return {f"{base}.Token": self.token, f"{base}.State": self.state,
                f"{base}.Seq": self.seq, f"{base}.Expires": self.expires_s}


def reports_from_event(data: Mapping[str, Any]) -> list[FeatureReport]:
    """The feature reports an ``entitlements.changed`` event carries (its ``features``).

    Raises:
        WireFormatError: no ``features`` list, too many, a malformed one, or a feature twice.
    """
    features = data.get("features") if isinstance(data, Mapping) else None
    if not isinstance(features, list):
        raise WireFormatError(f"{CHANGED_EVENT} event: field 'features' is "
                              f"{_short(features)}; expected a list")
    if len(features) > MAX_FEATURES:
        raise WireFormatError(f"{CHANGED_EVENT} event: {len(features)} features; at most "
                              f"{MAX_FEATURES}")
    reports = [FeatureReport.from_dict(f, f"{CHANGED_EVENT} event: features[{i}]")
               for i, f in enumerate(features)]
    seen: set[str] = set()
    for report in reports:
        if report.feature in seen:
            raise WireFormatError(f"{CHANGED_EVENT} event: feature {report.feature} twice")
        seen.add(report.feature)
    return reports


def twin_values(reports: Iterable[FeatureReport]) -> dict[str, str | int]:
    """The reported twin values of every feature in ``reports``, by path."""
    out: dict[str, str | int] = {}
    for report in reports:
        out.update(report.twin_values())
    return out


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
