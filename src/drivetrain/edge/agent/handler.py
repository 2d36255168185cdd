"""``DownlinkHandler``: what the agent does with the downlink messages the guard lets through.

Accepted desired-state deltas go to the ``VehicleActuator`` (their ``Entitlement.`` tokens to
the ``EntitlementGate``), campaigns to the collection
engine, commands to the actuator (except the collection-consent command, which the agent
applies itself: ``drivetrain.edge.consent``), entitlement tokens to the ``EntitlementGate``
(each token checked on its own: signature, VIN, seq, expiry), decoder manifests to the agent's CAN decoding (switched
at once, without a restart, through ``on_manifest``), ``ota.update`` notices to the
``OtaUpdater`` (the primary's update cycle, answered with an ``OtaReport``). Each outcome is acknowledged with a signed ``Ack`` on
``dt/v1/{vin}/ack``, and the acknowledgement is committed in one transaction with the state
records it changes: always the guard's ``DownlinkMemory`` (so the message is never acted on
twice), and the ``DesiredStateVersion``, ``InstalledCampaigns`` or ``ManifestInForce`` it
updated. Refused messages
change nothing; attacks among them are counted and reported as one ``edge.downlink.refused``
event per interval.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import Any, Final

import numpy as np

from drivetrain.core.can import DecoderManifest
from drivetrain.core.entitlement_twin import feature_of_token_path, is_entitlement_path
from drivetrain.core.errors import (
    BadInputError,
    CampaignFormatError,
    ConflictError,
    WireFormatError,
)
from drivetrain.core.ota_report import MANIFEST_EVENT, OTA_NOTICE
from drivetrain.core.privacy_policy import RegionPolicy
from drivetrain.core.transport import ACK, EVENTS
from drivetrain.core.vss import Catalog
from drivetrain.core.wire import (
    Ack,
    Command,
    DesiredStateDelta,
    MessageKind,
    VehicleEvent,
    events_to_dict,
)
from drivetrain.edge.actuator import VehicleActuator
from drivetrain.edge.agent.config import ACK_PRIORITY, EVENT_PRIORITY, REPORT_PRIORITY
from drivetrain.edge.agent.outbox import Outbox
from drivetrain.edge.campaigns import Campaign
from drivetrain.edge.can_input import CanDecoding
from drivetrain.edge.collection import CollectionEngine
from drivetrain.edge.consent import (
    CONSENT_COMMAND,
    WITHDRAWN_EVENT,
    CollectionConsent,
    region_default,
)
from drivetrain.edge.consent import describe as describe_consent
from drivetrain.edge.downlink import BENIGN_REASONS, Accepted, DownlinkGuard, Refused
from drivetrain.edge.entitlements import (
    BENIGN_REFUSALS,
    EntitlementGate,
    TokenRefused,
    describe,
)
from drivetrain.edge.ota.notice import OtaUpdater
from drivetrain.edge.policy import POLICY_COMMAND, PolicyInForce
from drivetrain.edge.policy import describe as describe_policy
from drivetrain.edge.samples import Samples
from drivetrain.edge.state import (
    DesiredStateVersion,
    InstalledCampaigns,
    ManifestInForce,
    StateRecord,
)

log = logging.getLogger("drivetrain.edge")

_NS: Final = 1_000_000_000


def restore_campaigns(
    engine: CollectionEngine, record: InstalledCampaigns, catalog: Catalog, vin: str
) -> None:
    """Reinstall the stored campaigns into ``engine`` and remember the versions seen; a
    campaign the catalog no longer accepts is logged and left out."""
    for document in record.campaigns:
        try:
            engine.install(Campaign.from_dict(document, catalog))
        except (CampaignFormatError, ConflictError) as e:  # a catalog change can do this
            log.warning("%s: stored campaign not reinstalled: %s", vin, e)
    for campaign_id, version in record.versions.items():
        engine.remember_version(campaign_id, version)


def restore_manifest(
    record: ManifestInForce, catalog: Catalog, vin: str
) -> tuple[DecoderManifest, CanDecoding, Catalog] | None:
    """The stored decoder manifest in force, its decoding and ``catalog`` with its entries,
    or None when none is stored or it no longer loads (logged: the agent then decodes with
    what it was started with, and the cloud's next manifest replaces it)."""
    if record.manifest is None:
        return None
    try:
        manifest = DecoderManifest.from_dict(record.manifest)
        overlaid = manifest.catalog_over(catalog)
        return manifest, CanDecoding.from_manifest(manifest, overlaid), overlaid
    except BadInputError as e:  # format, DBC and map errors
        log.warning("%s: stored decoder manifest not restored: %s", vin, e)
        return None


def restore_policy(record: PolicyInForce, region: str, vin: str) -> RegionPolicy | None:
    """The region's rules the cloud last sent, or None when none are stored (or for another
    region: the vehicle was re-provisioned) or they no longer load (logged)."""
    if record.rules is None or record.region != region:
        return None
    try:
        return record.policy()
    except BadInputError as e:
        log.warning("%s: stored privacy policy not restored: %s", vin, e)
        return None


def campaigns_record(engine: CollectionEngine) -> InstalledCampaigns:
    """The ``InstalledCampaigns`` record of what ``engine`` runs now."""
    return InstalledCampaigns(tuple(c.to_dict() for c in engine.campaigns), engine.versions)


class DownlinkHandler:
    """Checks, applies and acknowledges one vehicle's downlink messages (see the module
    docstring).

    Args:
        guard: the downlink guard (its memory is persisted with every acknowledgement).
        engine: the collection engine campaigns are installed into.
        catalog: the VSS catalog campaigns are checked against (the base one with the
            entries of the decoder manifest in force; a new manifest replaces it).
        base_catalog: what each manifest's entries are laid over (default: ``catalog``).
        actuator: applies desired state and commands; None rejects them.
        outbox: where acknowledgements and reports are sealed.
        desired_version: the newest desired-state version applied before (-1: none).
        refusal_report_interval_s: at most one refusal report per this many seconds.
    """

    def __init__(
        self,
        guard: DownlinkGuard,
        engine: CollectionEngine,
        catalog: Catalog,
        actuator: VehicleActuator | None,
        outbox: Outbox,
        *,
        desired_version: int,
        refusal_report_interval_s: float,
        on_manifest: Callable[[DecoderManifest, CanDecoding, int], None] | None = None,
        consent: CollectionConsent | None = None,
        entitlements: EntitlementGate | None = None,
        manifest_version: int = 0,
        base_catalog: Catalog | None = None,
        ota: OtaUpdater | None = None,
        region: str = "",
        region_policy: RegionPolicy | None = None,
        policy_record: PolicyInForce | None = None,
    ) -> None:
        self.vin = guard.vin
        self.guard = guard
        self.engine = engine
        self.catalog = catalog
        self.base_catalog = base_catalog or catalog
        self.actuator = actuator
        self.outbox = outbox
        self.desired_version = desired_version
        #: Deltas not newer than the version in force (re-deliveries, reordering).
        self.stale_desired = 0
        #: Acknowledgements sealed, by ``{kind}.{status}``.
        self.acks: Counter[str] = Counter()
        self._refusal_interval_ns = refusal_report_interval_s * _NS
        self._refusals_unreported: Counter[str] = Counter()
        self._last_refusal_report_ns = 0
        self._on_manifest = on_manifest
        #: The paid features this vehicle may use (None: it takes no entitlements).
        self.entitlements = entitlements
        #: The privacy categories the vehicle may collect (set by the cloud's consent command).
        self.consent = consent or CollectionConsent()
        #: The version of the decoder manifest in force (0: the one the agent started with).
        self.manifest_version = manifest_version
        #: Runs the update cycle an ``ota.update`` notice asks for (None: no OTA updates).
        self.ota = ota
        #: The vehicle's region, and the minimisation rules applied in it now.
        self.region = region
        self.region_policy = region_policy or RegionPolicy(region)
        #: The rules the cloud last sent (version -1: those of the file the agent started with).
        self.policy_record = policy_record or PolicyInForce(region)

    def handle(self, topic: str, payload: bytes, now_ns: int) -> None:
        """Check one downlink message and act on it if the guard accepts it.

        Raises:
            StorageError: the buffer failed; the message was not acknowledged and may be
                handled again (the guard's memory on disk does not hold it yet).
        """
        outcome = self.guard.check(topic, payload, now_ns)
        if isinstance(outcome, Refused):
            log.info("%s: downlink refused (%s): %s", self.vin, outcome.reason, outcome.detail)
            if outcome.reason not in BENIGN_REASONS:
                self._refusals_unreported[outcome.reason] += 1
            return
        handler = {
            MessageKind.DESIRED_STATE: self._apply_desired,
            MessageKind.CAMPAIGN: self._install_campaign,
            MessageKind.COMMAND: self._run_command,
            MessageKind.DECODER_MANIFEST: self._install_manifest,
            MessageKind.ENTITLEMENTS: self._take_entitlements,
        }[outcome.kind]
        handler(outcome, now_ns)

    def report_refusals(self, now_ns: int) -> None:
        """Queue one ``edge.downlink.refused`` event with the counts since the last one, at
        most once per interval."""
        if not self._refusals_unreported:
            return
        if now_ns - self._last_refusal_report_ns < self._refusal_interval_ns:
            return
        counts, self._refusals_unreported = dict(self._refusals_unreported), Counter()
        self._last_refusal_report_ns = now_ns
        self.outbox.events.append(
            VehicleEvent("edge.downlink.refused", now_ns, "high", {"counts": counts})
        )

    def save_campaigns(self) -> None:
        """Persist the installed campaigns now (after a local install or an expiry).

        Raises:
            StorageError: the buffer failed.
        """
        self.outbox.buffer.save_state([campaigns_record(self.engine)])

    def _acknowledge(self, ack: Ack, now_ns: int, state: Sequence[StateRecord] = ()) -> None:
        records = [self.guard.state.to_record(), *state]
        self.outbox.seal_json(MessageKind.ACK, ACK, ack.to_dict(), ACK_PRIORITY, now_ns, records)
        self.acks[f"{ack.ref_kind}.{ack.status}"] += 1

    def _apply_desired(self, accepted: Accepted, now_ns: int) -> None:
        """Apply a newer desired-state delta as a whole: its VSS values through the
        actuator, its ``Entitlement.<feature>.Token`` values through the entitlement gate
        (each token verified as if it came in an entitlements message). Any value refused —
        a forged or misplaced token included — rejects the delta and changes nothing."""
        ref = accepted.envelope.message_id
        try:
            delta = DesiredStateDelta.from_dict(accepted.body)
        except WireFormatError as e:
            self._acknowledge(Ack(ref, "desired_state", "rejected", str(e)), now_ns)
            return
        if delta.version <= self.desired_version:
            # A re-delivery or a reordered older delta: the newer one is in force already.
            self.stale_desired += 1
            self.outbox.buffer.save_state([self.guard.state.to_record()])
            return
        values = {p: v for p, v in delta.values.items() if not is_entitlement_path(p)}
        tokens, refused, notes = self._desired_tokens(delta.values, now_ns)
        if refused:
            for o in refused:
                self._refusals_unreported[f"entitlement.{o.reason}"] += 1
            self._reject_desired(ref, describe(refused), delta.version, now_ns)
            return
        applied: Mapping[str, Any] = {}
        if values:
            if self.actuator is None:
                self._reject_desired(ref, "this vehicle has no actuators", delta.version, now_ns)
                return
            try:
                applied = self.actuator.apply_desired(values)
            except BadInputError as e:
                self._reject_desired(ref, str(e), delta.version, now_ns)
                return
        records: list[StateRecord] = [DesiredStateVersion(delta.version)]
        if tokens and self.entitlements is not None:
            notes += describe(self.entitlements.offer_all(tokens, now_ns)).split("; ")
            records.append(self.entitlements.to_record())
        self.desired_version = delta.version
        numeric = {
            p: v
            for p, v in applied.items()
            if isinstance(v, bool | int | float) and np.isfinite(float(v))
        }
        if numeric:  # report the new values now, not at the next sampling period
            self.outbox.seal_telemetry(
                Samples.from_values(numeric, now_ns), REPORT_PRIORITY, now_ns
            )
        self._acknowledge(
            Ack(ref, "desired_state", "applied", "; ".join(notes)[:1000], delta.version),
            now_ns, records,
        )

    def _reject_desired(self, ref: str, detail: str, version: int, now_ns: int) -> None:
        self._acknowledge(Ack(ref, "desired_state", "rejected", detail[:1000], version), now_ns)

    def _desired_tokens(
        self, values: Mapping[str, Any], now_ns: int
    ) -> tuple[list[str], list[TokenRefused], list[str]]:
        """The entitlement tokens a delta carries that the gate would take; the refused ones
        (forged, for another car or feature, expired, not a token at all); and notes on the
        ones left alone (already in force, or older than the one in force)."""
        tokens: list[str] = []
        refused: list[TokenRefused] = []
        notes: list[str] = []
        for path, value in sorted(values.items()):
            if not is_entitlement_path(path):
                continue
            feature = feature_of_token_path(path)
            if feature is None or self.entitlements is None or not isinstance(value, str):
                why = ("this vehicle takes no entitlements" if self.entitlements is None
                       else f"{path}: the twin carries entitlements only as signed tokens "
                       "under Entitlement.<feature>.Token")
                refused.append(TokenRefused("malformed", why, feature))
                continue
            outcome = self.entitlements.check(value, now_ns)
            if isinstance(outcome, TokenRefused):
                if outcome.reason in BENIGN_REFUSALS or outcome.reason == "rolled_back":
                    # A newer token reached the car first (its entitlements message): the
                    # twin's older copy takes nothing away and brings nothing back.
                    notes.append(f"{feature}: {outcome.reason} ({outcome.detail})")
                else:
                    refused.append(outcome)
            elif outcome.feature != feature:
                refused.append(TokenRefused(
                    "misplaced", f"{path} carries a token for {outcome.feature}", feature))
            else:
                tokens.append(value)
        return tokens, refused, notes

    def _install_campaign(self, accepted: Accepted, now_ns: int) -> None:
        ref = accepted.envelope.message_id
        version = accepted.body.get("version")
        version = version if isinstance(version, int) and not isinstance(version, bool) else None
        try:
            campaign = Campaign.from_dict(accepted.body, self.catalog)
            outcome = self.engine.install(campaign)
        except (CampaignFormatError, ConflictError) as e:
            self._acknowledge(Ack(ref, "campaign", "rejected", str(e), version), now_ns)
            return
        self._acknowledge(
            Ack(ref, "campaign", "applied", f"{campaign.id}: {outcome}", campaign.version),
            now_ns,
            [campaigns_record(self.engine)],
        )

    def _run_command(self, accepted: Accepted, now_ns: int) -> None:
        ref = accepted.envelope.message_id
        try:
            command = Command.from_dict(accepted.body)
            if command.name == CONSENT_COMMAND:
                self._set_consent(ref, command.args, now_ns)
                return
            if command.name == POLICY_COMMAND:
                self._set_policy(ref, command.args, now_ns)
                return
            if command.name == OTA_NOTICE:
                self._update(ref, command.args, now_ns)
                return
            if self.actuator is None:
                raise BadInputError("this vehicle has no actuators")
            detail = self.actuator.execute(command.name, command.args)
        except BadInputError as e:  # WireFormatError included
            self._acknowledge(Ack(ref, "command", "rejected", str(e)), now_ns)
            return
        self._acknowledge(Ack(ref, "command", "applied", detail), now_ns)

    def _update(self, ref: str, args: Mapping[str, Any], now_ns: int) -> None:
        """Run the update cycle the notice asks for; the acknowledgement carries the
        :class:`OtaReport` (``applied`` only when the ordered image runs)."""
        if self.ota is None:
            raise BadInputError("this vehicle takes no OTA updates")
        report = replace(self.ota.run(args), at_ns=now_ns)  # on the vehicle's clock
        log.info("%s: OTA update %s: %s", self.vin, report.state, report.detail)
        if report.state != "deferred":  # what each ECU runs now, signed (Uptane §5.4.2)
            manifest = self.ota.manifest(counter=now_ns // 1_000_000)
            if manifest is not None:
                self.outbox.events.append(VehicleEvent(MANIFEST_EVENT, now_ns, "info",
                                                       {"manifest": manifest}))
        self._acknowledge(Ack(ref, "command",
                              "applied" if report.state == "installed" else "rejected",
                              report.to_detail()), now_ns)

    def _set_consent(self, ref: str, args: Mapping[str, Any], now_ns: int) -> None:
        """Apply a newer collection consent at once; acknowledged with the record saved."""
        new = self.consent.updated(args)  # BadInputError: rejected by the caller
        stopped = [c for c in self.consent.categories if c not in new.categories]
        self.consent = new
        self._acknowledge(
            Ack(ref, "command", "applied", describe_consent(new, stopped), new.version),
            now_ns, [new])

    def _set_policy(self, ref: str, args: Mapping[str, Any], now_ns: int) -> None:
        """Apply a newer minimisation policy of the vehicle's region at once (and, while the
        cloud has sent no consent, its default); acknowledged with the record saved."""
        record, policy = self.policy_record.updated(args, self.region)  # BadInputError
        self.policy_record, self.region_policy = record, policy
        if self.consent.version < 0:
            self.consent = region_default(policy.default_off)
        self._acknowledge(Ack(ref, "command", "applied", describe_policy(record, policy),
                              record.version), now_ns, [record])

    def withdraw(self, categories: Sequence[str], now_ns: int) -> CollectionConsent:
        """Withdraw ``categories`` in the car (its own screen): in force at once, kept with
        the signed ``privacy.consent.withdrawn`` event that tells the cloud (sealed now, in
        one transaction with the state record, so a crash loses neither without the other).

        Raises:
            BadInputError: an unknown category, or one not collected now (nothing changes).
            StorageError: the buffer failed (nothing changes).
        """
        new = self.consent.withdrawn(categories, now_ns // 1_000_000)
        event = VehicleEvent(WITHDRAWN_EVENT, now_ns, "info", {
            "withdrawn": sorted(set(categories)), "categories": sorted(new.categories),
            "version": new.version})
        self.outbox.seal_json(MessageKind.EVENTS, EVENTS, events_to_dict([event]),
                              EVENT_PRIORITY, now_ns, [new])
        self.outbox.events_sent += 1
        self.consent = new
        log.info("%s: %s withdrawn in the car: %s", self.vin, ", ".join(sorted(categories)),
                 describe_consent(new))
        return new

    def _take_entitlements(self, accepted: Accepted, now_ns: int) -> None:
        """Offer each token of the message to the gate; the tokens taken are in force at
        once (the agent switches the features on its next tick). Any token refused for a
        reason other than a duplicate makes the acknowledgement ``rejected``, naming it."""
        ref = accepted.envelope.message_id
        version = accepted.body.get("version")
        version = version if isinstance(version, int) and not isinstance(version, bool) else None
        tokens = accepted.body.get("tokens")
        if self.entitlements is None or not isinstance(tokens, list) or version is None:
            why = ("this vehicle takes no entitlements" if self.entitlements is None
                   else "entitlements body: expected {'version': int, 'tokens': [str]}")
            self._acknowledge(Ack(ref, "entitlements", "rejected", why, version), now_ns)
            return
        outcomes = self.entitlements.offer_all(tokens, now_ns)
        refused = [o for o in outcomes
                   if isinstance(o, TokenRefused) and o.reason not in BENIGN_REFUSALS]
        for o in refused:
            self._refusals_unreported[f"entitlement.{o.reason}"] += 1
        detail = describe(outcomes)[:1000]
        self._acknowledge(
            Ack(ref, "entitlements", "rejected" if refused else "applied", detail, version),
            now_ns,
            [self.entitlements.to_record()],
        )

    def _install_manifest(self, accepted: Accepted, now_ns: int) -> None:
        """Switch the CAN decoding to a newer decoder manifest (an older or equal version is
        refused: the newer one is in force)."""
        ref = accepted.envelope.message_id
        version = accepted.body.get("version")
        version = version if isinstance(version, int) and not isinstance(version, bool) else None
        try:
            manifest = DecoderManifest.from_dict(accepted.body)
            if manifest.version <= self.manifest_version:
                raise ConflictError(f"decoder manifest version {manifest.version} is not newer "
                                    f"than version {self.manifest_version} in force")
            if self._on_manifest is None:
                raise BadInputError("this vehicle decodes no CAN traffic")
            # The tenant's custom signals the map decodes into come with the manifest.
            catalog = manifest.catalog_over(self.base_catalog)
            decoding = CanDecoding.from_manifest(manifest, catalog)
        except (BadInputError, ConflictError) as e:  # DBC, map and format errors included
            self._acknowledge(Ack(ref, "decoder_manifest", "rejected", str(e), version), now_ns)
            return
        self.manifest_version = manifest.version
        self.catalog = catalog
        self._on_manifest(manifest, decoding, now_ns)
        self._acknowledge(
            Ack(ref, "decoder_manifest", "applied",
                f"{manifest.model}: decoder manifest {manifest.version} in force "
                f"({len(decoding.paths)} signals)", manifest.version),
            now_ns,
            [ManifestInForce(manifest.to_dict())],
        )
