"""The vehicle's answer to an ``ota.update`` notice, carried in the signed acknowledgement's
``detail`` on the uplink: what the update cycle did, in a form both sides read.

The detail is a JSON object ``{"ota": 1, "state": ..., "before": ..., "after": ...,
"preconditions": ..., "detail": ..., "at_ns": ...}`` (``at_ns``: when the cycle ended on the
vehicle's clock, the clock its telemetry is stamped with; absent or 0 when unknown). ``state`` is ``installed`` (the ordered image runs,
or already ran), ``rolled_back`` (it failed its health check and the ECU went back to its other
slot), ``failed`` (refused by verification, or a download error) or ``deferred`` (a
precondition is not met, or an optional update awaits the driver's consent; the notice is sent
again later). Parsing untrusted text never raises anything but :class:`OtaReportError`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Final, Literal, cast

from drivetrain.core.errors import BadInputError

OtaReportState = Literal["installed", "rolled_back", "failed", "deferred"]
STATES: Final = ("installed", "rolled_back", "failed", "deferred")
#: The command name of the notice that tells a vehicle to run its update cycle.
OTA_NOTICE: Final = "ota.update"
#: The vehicle event carrying a signed vehicle version manifest (Uptane §5.4.2) on the uplink:
#: ``{"manifest": <the manifest document>}``.
MANIFEST_EVENT: Final = "ota.manifest"
_LIMITS: Final = {"before": 64, "after": 64, "preconditions": 400, "detail": 1000}


class OtaReportError(BadInputError):
    """An acknowledgement detail that is not an OTA report; names what is wrong."""


@dataclass(frozen=True, slots=True)
class OtaReport:
    """One update cycle's outcome as the vehicle reports it."""

    state: OtaReportState
    before: str = ""
    after: str = ""
    preconditions: str = ""
    detail: str = ""
    at_ns: int = 0

    def to_detail(self) -> str:
        """The acknowledgement detail (fields cut to their limits: at most ~1.7 KB)."""
        fields: dict[str, object] = {name: getattr(self, name)[:limit]
                                     for name, limit in _LIMITS.items()}
        if self.at_ns:
            fields["at_ns"] = self.at_ns
        return json.dumps({"ota": 1, "state": self.state, **fields}, sort_keys=True)

    @classmethod
    def from_detail(cls, text: str) -> OtaReport:
        """Parse an acknowledgement detail.

        Raises:
            OtaReportError: not JSON, not an object of version 1, an unknown state, or a
                field that is not a string or is too long.
        """
        try:
            data = json.loads(text)
        except (ValueError, RecursionError) as e:
            raise OtaReportError(f"OTA report: not JSON ({e})") from e
        if not isinstance(data, dict) or data.get("ota") != 1:
            raise OtaReportError("OTA report: expected a JSON object with \"ota\": 1")
        state = data.get("state")
        if state not in STATES:
            raise OtaReportError(f"OTA report: state {state!r}; expected one of {STATES}")
        values: dict[str, str] = {}
        for name, limit in _LIMITS.items():
            value = data.get(name, "")
            if not isinstance(value, str) or len(value) > limit:
                raise OtaReportError(f"OTA report: field {name!r} must be a string of at most "
                                     f"{limit} characters")
            values[name] = value
        at_ns = data.get("at_ns", 0)
        if isinstance(at_ns, bool) or not isinstance(at_ns, int) or not 0 <= at_ns < 2**63:
            raise OtaReportError(f"OTA report: at_ns {at_ns!r}; expected Unix nanoseconds >= 0")
        return cls(cast(OtaReportState, state), **values, at_ns=at_ns)
