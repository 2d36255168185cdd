"""Attacks on the dispatcher, one named test each: nothing is stored or changed, and the
refusal says why."""

from __future__ import annotations

import pytest
from rig import Rig

from drivetrain.cloud.commands import (
    Payload,
    create_job,
    get_job,
    list_deliveries,
    list_jobs,
    send_command,
)
from drivetrain.cloud.ingest import RawMessage
from drivetrain.core.crypto import SigningKey
from drivetrain.core.errors import NotFoundError
from drivetrain.core.transport import ACK, vehicle_topic
from drivetrain.core.wire import Ack, MessageKind, seal_json


def _delivered_command(rig: Rig, vin: str) -> tuple[str, str]:
    """A command delivered to the offline ``vin``: (job id, message id)."""
    rig.go_offline(vin)
    with rig.database.session() as session:
        job = send_command(session, vin, "flash_lights", tenant="acme", actor="op")
    rig.dispatcher.run_once()
    with rig.database.session() as session:
        (delivery,) = list_deliveries(session, job.job_id, tenant="acme").deliveries
    assert delivery.state == "delivered" and delivery.message_id is not None
    return job.job_id, delivery.message_id


def _ack_from(rig: Rig, vin: str, ref: str, key: SigningKey | None = None, seq: int = 9) -> None:
    """An ack of ``ref`` sent as ``vin`` (signed with ``key``; default: the vehicle's own)."""
    signer = key or rig.agents[vin].identity.signing_key
    payload = seal_json(MessageKind.ACK, vin, Ack(ref, "command", "applied", "done").to_dict(),
                        key=signer, seq=seq)
    rig.pipeline.process([RawMessage(vehicle_topic(vin, ACK), payload)])
    rig.dispatcher.run_once()


def _state(rig: Rig, job_id: str) -> str:
    with rig.database.session() as session:
        return list_deliveries(session, job_id, tenant="acme").deliveries[0].state


def test_a_command_for_another_tenants_vehicle_is_refused_and_nothing_is_stored(
    rig: Rig,
) -> None:
    foreign = rig.other_vins[0]
    with rig.database.session() as session, pytest.raises(NotFoundError) as refused:
        send_command(session, foreign, "flash_lights", tenant="acme", actor="op")
    assert f"{foreign} is not a vehicle of tenant 'acme'" in str(refused.value)
    with rig.database.session() as session, pytest.raises(NotFoundError):
        create_job(session, tenant="acme", actor="op", payload=Payload.command("flash_lights"),
                   vins=[rig.vins[0], foreign])
    with rig.database.session() as session:
        # only the drivers' consents, sent when the cars were set up
        assert {j.origin for j in list_jobs(session, tenant="acme")} == {"privacy"}
        # a query never reaches another tenant's vehicles either
        job = create_job(session, tenant="acme", actor="op",
                         payload=Payload.command("flash_lights"), query=f'vin == "{foreign}"')
    assert job.status == "finished" and job.counts.total == 0


def test_a_forged_ack_is_refused_at_ingest_and_the_delivery_still_waits(rig: Rig) -> None:
    vin = rig.vins[0]
    job_id, ref = _delivered_command(rig, vin)
    _ack_from(rig, vin, ref, key=SigningKey.generate())
    assert _state(rig, job_id) == "delivered"
    assert rig.dispatcher.stats.succeeded == 0


def test_a_replayed_ack_changes_nothing(rig: Rig) -> None:
    vin = rig.vins[0]
    job_id, ref = _delivered_command(rig, vin)
    _ack_from(rig, vin, ref, seq=1)
    assert _state(rig, job_id) == "succeeded"
    with rig.database.session() as session:
        finished = get_job(session, job_id, tenant="acme").ended_at
    _ack_from(rig, vin, ref, seq=2)  # the vehicle's key, a new envelope, the same reference
    assert _state(rig, job_id) == "succeeded"
    (refusal,) = rig.dispatcher.stats.recent_refusals
    assert refusal.reason == "not_awaiting" and "replayed or late" in refusal.detail
    with rig.database.session() as session:
        assert get_job(session, job_id, tenant="acme").ended_at == finished


def test_an_ack_for_a_message_the_vehicle_never_received_is_refused(rig: Rig) -> None:
    target, other = rig.vins[0], rig.vins[1]
    job_id, ref = _delivered_command(rig, target)
    _ack_from(rig, other, ref)  # another vehicle claims the target's message
    _ack_from(rig, other, "0" * 32)  # and one that was never sent at all
    assert _state(rig, job_id) == "delivered"
    reasons = [r.reason for r in rig.dispatcher.stats.recent_refusals]
    assert reasons == ["unknown_ref", "unknown_ref"]
    assert "never sent to it" in rig.dispatcher.stats.recent_refusals[0].detail


def test_a_job_whose_targets_go_offline_times_them_out_and_finishes(rig: Rig) -> None:
    from rig import utc

    with rig.database.session() as session:
        job = create_job(session, tenant="acme", actor="op",
                         payload=Payload.command("flash_lights"), query="")
    for vin in rig.vins[:2]:
        rig.go_offline(vin)
    rig.cycle()
    rig.dispatcher.run_once(utc(400))
    with rig.database.session() as session:
        done = get_job(session, job.job_id, tenant="acme")
    assert done.status == "finished"
    assert (done.counts.succeeded, done.counts.timed_out) == (1, 2)
