"""Routing the non-telemetry batches of a micro-batch: vehicle events (with ECU inventories and
the vehicle's entitlement reports to the twins, and consent withdrawn in the car to the privacy
ledger) and acknowledgements of downlink messages."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from drivetrain.cloud.ingest import records
from drivetrain.cloud.ingest.microbatch import MicroBatch, iso_ns
from drivetrain.cloud.ingest.records import DeadLetterDraft
from drivetrain.cloud.ingest.results import AuthenticBatch, MessageResult
from drivetrain.cloud.privacy.vehicle_sync import SYNC_EVENT, SyncRequest, sync_vehicle
from drivetrain.cloud.privacy.vehicle_withdrawal import (
    WITHDRAWN_EVENT,
    Withdrawal,
    withdraw_from_vehicle,
)
from drivetrain.core.entitlement_twin import CHANGED_EVENT as ENTITLEMENTS_EVENT
from drivetrain.core.entitlement_twin import reports_from_event, twin_values
from drivetrain.core.errors import BadInputError, NotFoundError
from drivetrain.core.wire import INVENTORY_EVENT, Ack, VehicleEvent, inventory_from_event

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def route_other(mb: MicroBatch, batch: AuthenticBatch) -> None:
    """Route one events or ack batch (an events message with no events is stored as is)."""
    if batch.events:
        route_events(mb, batch)
    elif batch.ack is not None:
        route_ack(mb, batch, batch.ack)
    else:
        mb.tally.result(batch.source, MessageResult("stored", batch.vehicle.vin, batch.batch_id))
        mb.tally.count(batch.vehicle.tenant, batch.vehicle.vin, "accepted", 1, 0)


def route_ack(mb: MicroBatch, batch: AuthenticBatch, ack: Ack) -> None:
    """Desired-state acks go to the twins; acks of campaigns and commands are kept as
    vehicle events (``ack.campaign``, ``ack.command``) for the domains that sent them."""
    vehicle = batch.vehicle
    if ack.ref_kind != "desired_state":
        event = VehicleEvent(type=f"ack.{ack.ref_kind}", ts_ns=batch.sent_ns, data=ack.to_dict())
        records.add_events(
            mb.session,
            tenant=vehicle.tenant,
            vin=vehicle.vin,
            region=vehicle.region,
            batch_id=batch.batch_id,
            events=[(0, event)],
            now=mb.received_at,
        )
    else:
        try:
            mb.reported.record_acks(mb.session, vehicle.vin, [ack])
        except (BadInputError, NotFoundError) as e:  # checked before any change
            mb.tally.refuse_batch(batch, f"ack refused by the twin: {e}")
            return
    mb.tally.result(batch.source, MessageResult("stored", vehicle.vin, batch.batch_id))
    mb.tally.count(vehicle.tenant, vehicle.vin, "accepted", 1, 0)


def route_events(mb: MicroBatch, batch: AuthenticBatch) -> None:
    """Store the events in the window; ``vehicle.inventory`` events also go to the twins
    (in this transaction). Events outside the window, and inventories the twins refuse,
    are dead-lettered per reason; the message's other events are stored."""
    earliest, latest = mb.bounds
    good: list[tuple[int, VehicleEvent]] = []
    bad: dict[str, list[tuple[int, VehicleEvent]]] = {}
    details: dict[str, str] = {}
    vehicle = batch.vehicle
    for position, event in enumerate(batch.events):
        if event.ts_ns < earliest:
            bad.setdefault("timestamp_too_old", []).append((position, event))
        elif event.ts_ns > latest:
            bad.setdefault("timestamp_in_future", []).append((position, event))
        elif event.type == ENTITLEMENTS_EVENT:
            if problem := _entitlements(mb, vehicle.vin, event):
                bad.setdefault("bad_entitlements", []).append((position, event))
                details.setdefault("bad_entitlements",
                                   f"event {position} ({event.type!r}): {problem}")
            else:
                good.append((position, event))
        elif event.type in (WITHDRAWN_EVENT, SYNC_EVENT):
            privacy = _withdrawal if event.type == WITHDRAWN_EVENT else _privacy_sync
            if problem := privacy(mb, batch, event):
                bad.setdefault("bad_consent", []).append((position, event))
                details.setdefault("bad_consent", f"event {position} ({event.type!r}): {problem}")
            else:
                good.append((position, event))
        elif event.type != INVENTORY_EVENT:
            good.append((position, event))
        elif problem := _inventory(mb, vehicle.vin, event):
            bad.setdefault("bad_inventory", []).append((position, event))
            details.setdefault("bad_inventory", f"event {position} ({event.type!r}): {problem}")
        else:
            good.append((position, event))
    records.add_events(
        mb.session,
        tenant=vehicle.tenant,
        vin=vehicle.vin,
        region=vehicle.region,
        batch_id=batch.batch_id,
        events=good,
        now=mb.received_at,
    )
    for reason, events in bad.items():
        position, first = events[0]
        window = f"[{iso_ns(earliest)}, {iso_ns(latest)}]"
        cause = details.get(reason) or (
            f"event {position} ({first.type!r}) at {iso_ns(first.ts_ns)} is outside the "
            f"accepted window {window}"
        )
        mb.tally.add_dead_letter(
            DeadLetterDraft(
                received_at=mb.received_at,
                vin=vehicle.vin,
                tenant=vehicle.tenant,
                topic=batch.topic,
                kind=batch.kind,
                batch_id=batch.batch_id,
                level="samples",
                reason=reason,
                detail=f"{len(events)} event(s) with {reason}: {cause}",
                sample_count=len(events),
                payload_format="json",
                payload=records.events_json(events),
                replay_of=mb.replay_of,
                verified=True,
            )
        )
        mb.tally.count(vehicle.tenant, vehicle.vin, reason, 1, len(events))
    if good:
        mb.tally.count(vehicle.tenant, vehicle.vin, "accepted", 1, len(good))
    mb.tally.result(
        batch.source,
        MessageResult(
            "stored",
            vehicle.vin,
            batch.batch_id,
            accepted=len(good),
            refused={r: len(e) for r, e in bad.items()},
        ),
    )


def _inventory(mb: MicroBatch, vin: str, event: VehicleEvent) -> str:
    """Route one inventory event to the twins; returns why it was refused ('' if it was
    recorded). A refused inventory changes nothing."""
    try:
        ecus = inventory_from_event(event)
        mb.reported.record_inventory(mb.session, vin, ecus)
    except (BadInputError, NotFoundError) as e:  # WireFormatError included
        return str(e)
    return ""


def _entitlements(mb: MicroBatch, vin: str, event: VehicleEvent) -> str:
    """Store the features an ``entitlements.changed`` event reports as the twin's reported
    state (``Entitlement.<feature>.*``, measured at the event's time); returns why it was
    refused ('' if it was recorded). A refused report changes nothing."""
    if "features" not in event.data:
        return ""  # an agent that reports only what it switched: nothing for the twin
    try:
        values = twin_values(reports_from_event(event.data))
        if values:
            measured = _EPOCH + timedelta(microseconds=event.ts_ns // 1000)
            mb.reported.apply_reported(
                mb.session, {vin: {path: (value, measured) for path, value in values.items()}})
    except (BadInputError, NotFoundError) as e:  # WireFormatError included
        return str(e)
    return ""


def _withdrawal(mb: MicroBatch, batch: AuthenticBatch, event: VehicleEvent) -> str:
    """Record consent the driver withdrew in the car (the vehicle signed the report; its VIN
    is the envelope's); returns why it was refused ('' if it was recorded or is older than
    the consent in force). A refused report changes nothing."""
    vehicle = batch.vehicle
    try:
        withdrawal = Withdrawal.from_event(event.data)
        default = (mb.policy.regions[vehicle.region].default_consent
                   if mb.policy is not None and vehicle.region in mb.policy.regions else None)
        with mb.session.begin_nested():  # a refusal leaves the micro-batch's work intact
            withdraw_from_vehicle(mb.session, vin=vehicle.vin, tenant=vehicle.tenant,
                                  withdrawal=withdrawal, region_default=default,
                                  now=mb.received_at)
    except (BadInputError, NotFoundError) as e:
        return str(e)
    return ""


def _privacy_sync(mb: MicroBatch, batch: AuthenticBatch, event: VehicleEvent) -> str:
    """Re-send the consent and the region's policy the car reports it is behind on (it
    reports on each start); returns why the report was refused ('' if it was handled)."""
    vehicle = batch.vehicle
    try:
        request = SyncRequest.from_event(event.data)
        with mb.session.begin_nested():  # a refusal leaves the micro-batch's work intact
            sync_vehicle(mb.session, vin=vehicle.vin, tenant=vehicle.tenant,
                         region=vehicle.region, request=request, now=mb.received_at,
                         reported_at=_EPOCH + timedelta(microseconds=event.ts_ns // 1000))
    except (BadInputError, NotFoundError) as e:
        return str(e)
    return ""
