"""Acting on the ``ota.update`` notice: the agent runs the primary's update cycle by itself
and answers with an :class:`~drivetrain.core.ota_report.OtaReport`.

The notice only says "run your update cycle" (with the rollout's id and whether the update is
optional); what is installed is decided by the signed Director and Image metadata the primary
fetches over HTTP and verifies in full. Before anything is fetched the vehicle must be parked
with enough charge, and an optional update needs the driver's consent; otherwise the answer is
``deferred`` and the platform sends the notice again later.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from securesystemslib.signer import Signer

from drivetrain.core.errors import StateTransitionError, TransportError, VerificationError
from drivetrain.core.ota_report import OtaReport
from drivetrain.edge.ota.primary import MIN_SOC_PCT, UptanePrimary, VehicleConditions


@dataclass(frozen=True)
class ManifestSigning:
    """The keys that sign version reports: the primary's and each ECU's (factory-provisioned,
    their public halves registered with the platform)."""

    primary_serial: str
    primary: Signer
    ecus: Mapping[str, Signer]


class OtaUpdater:
    """Runs the update cycle a notice asks for.

    Args:
        primary: the vehicle's Uptane primary (its trusted roots provisioned).
        conditions: reads the vehicle's state now (parked, state of charge).
        driver_consents: asked before an optional update (None: optional updates wait).
        min_soc_pct: least charge an install starts with.
        signing: signs the vehicle version manifest sent after each update cycle (None:
            none is sent).
    """

    def __init__(self, primary: UptanePrimary, conditions: Callable[[], VehicleConditions], *,
                 driver_consents: Callable[[Mapping[str, Any]], bool] | None = None,
                 min_soc_pct: float = MIN_SOC_PCT,
                 signing: ManifestSigning | None = None) -> None:
        self.primary = primary
        self.signing = signing
        self.conditions = conditions
        self.driver_consents = driver_consents
        self.min_soc_pct = min_soc_pct

    def run(self, notice: Mapping[str, Any]) -> OtaReport:
        """One update cycle for ``notice`` (the command's args); never raises for what the
        repositories or the vehicle do: every outcome is a report."""
        now = self.conditions()
        checked = f"parked {'yes' if now.parked else 'no'}, charge {now.soc_pct:.0f} % " \
                  f"(>= {self.min_soc_pct:.0f} % needed)"
        before = self._running()
        try:
            now.check(self.min_soc_pct)
        except StateTransitionError as e:
            return OtaReport("deferred", before, before, checked, str(e))
        if notice.get("optional") is True and not (
                self.driver_consents is not None and self.driver_consents(notice)):
            return OtaReport("deferred", before, before, checked + ", optional update",
                             "update deferred: awaiting the driver's consent")
        try:
            outcomes = self.primary.update(now)
        except StateTransitionError as e:
            return OtaReport("deferred", before, before, checked, str(e))
        except (VerificationError, TransportError) as e:
            return OtaReport("failed", before, before, checked, str(e))
        after = self._running()
        detail = "; ".join(f"{o.ecu_serial}: {o.result} ({o.detail})"
                           + (f", {o.downloaded_bytes} bytes via delta" if o.via_delta else "")
                           for o in outcomes) or "nothing to install"
        rolled_back = any(o.result == "rolled_back" for o in outcomes)
        return OtaReport("rolled_back" if rolled_back else "installed", before, after, checked,
                         detail)

    def manifest(self, counter: int) -> dict[str, Any] | None:
        """The signed vehicle version manifest of what each ECU runs now (None without
        signing keys); ``counter`` must grow with every manifest (the platform refuses a
        replayed one)."""
        if self.signing is None:
            return None
        raw = self.primary.version_manifest(self.signing.primary_serial, self.signing.primary,
                                            self.signing.ecus, counter)
        document: dict[str, Any] = json.loads(raw)
        return document

    def _running(self) -> str:
        versions = [f"{serial} {image.version}" for serial, ecu in sorted(self.primary.ecus.items())
                    if (image := ecu.running()) is not None]
        return ", ".join(versions)[:64]
