"""Commands and jobs end to end: signed messages reach real agents, their acks settle each
vehicle's delivery, rollouts follow their policy."""

from __future__ import annotations

from datetime import timedelta

import pytest
from rig import CLOUD_KEY, Rig, utc

from drivetrain.cloud.commands import (
    NO_LINK_REASON,
    Dispatcher,
    Payload,
    RolloutPolicy,
    cancel_job,
    create_job,
    get_job,
    list_deliveries,
    send_command,
)
from drivetrain.core.errors import StateTransitionError
from drivetrain.core.transport import COMMANDS, vehicle_topic
from drivetrain.core.wire import MessageKind, parse


def _job(rig: Rig, job_id: str):
    with rig.database.session() as session:
        return get_job(session, job_id, tenant="acme")


def _states(rig: Rig, job_id: str) -> dict[str, str]:
    with rig.database.session() as session:
        page = list_deliveries(session, job_id, tenant="acme", limit=1000)
    return {d.vin: d.state for d in page.deliveries}


def test_a_signed_command_to_one_vehicle_succeeds_with_the_vehicles_answer(rig: Rig) -> None:
    vin = rig.vins[0]
    with rig.database.session() as session:
        job = send_command(session, vin, "flash_lights", {"times": 3}, tenant="acme",
                           actor="op")
    assert job.job_id.startswith("cmd-") and job.counts.queued == 1
    rig.cycle()
    done = _job(rig, job.job_id)
    assert done.status == "finished" and done.counts.succeeded == 1
    assert rig.actuators[vin].executed == [("flash_lights", {"times": 3})]
    with rig.database.session() as session:
        (delivery,) = list_deliveries(session, job.job_id, tenant="acme").deliveries
    assert delivery.detail == "flashed 3 times" and delivery.attempts == 1


def test_a_job_to_a_query_selected_group_finishes_with_its_counts(rig: Rig) -> None:
    with rig.database.session() as session:
        job = create_job(session, tenant="acme", actor="op",
                         payload=Payload.command("flash_lights"), query='region == "EU"')
    assert job.counts.queued == 2 and job.status == "running"
    rig.cycle()
    done = _job(rig, job.job_id)
    assert done.status == "finished"
    assert done.counts.to_dict() == {"queued": 0, "delivered": 0, "succeeded": 2, "failed": 0,
                                     "timed_out": 0, "cancelled": 0}
    us_vin = rig.vins[2]
    assert rig.actuators[us_vin].executed == []


def test_the_message_is_signed_for_its_vehicle_retained_and_expires_after_the_freshness(
    rig: Rig,
) -> None:
    vin = rig.vins[0]
    rig.go_offline(vin)
    with rig.database.session() as session:
        send_command(session, vin, "flash_lights", tenant="acme", actor="op",
                     policy=RolloutPolicy(freshness_s=120, timeout_s=150))
    before = utc()
    rig.dispatcher.run_once()
    rig.bus.drain(5)
    seen = []
    rig.bus.subscribe(vehicle_topic(vin, COMMANDS), seen.append)  # retained: sent at once
    rig.bus.drain(5)
    (message,) = seen
    assert message.retain
    envelope = parse(message.payload).verify(CLOUD_KEY.verify_key)
    assert envelope.kind == MessageKind.COMMAND and envelope.vehicle_id == vin
    body = envelope.json_body()
    assert body["name"] == "flash_lights"
    expires_s = body["expires_ns"] / 1e9 - before.timestamp()
    assert 119 < expires_s < 125


def test_an_offline_vehicle_gets_the_command_when_it_reconnects_within_the_window(
    rig: Rig,
) -> None:
    vin = rig.vins[1]
    rig.go_offline(vin)
    with rig.database.session() as session:
        job = send_command(session, vin, "flash_lights", tenant="acme", actor="op")
    rig.cycle()
    assert _states(rig, job.job_id) == {vin: "delivered"}
    rig.come_online(vin)
    rig.cycle()
    assert _states(rig, job.job_id) == {vin: "succeeded"}
    assert rig.actuators[vin].executed == [("flash_lights", {})]


def test_an_offline_vehicle_times_out_with_that_reason_and_its_slot_is_cleared(
    rig: Rig,
) -> None:
    vin = rig.vins[1]
    rig.go_offline(vin)
    with rig.database.session() as session:
        job = send_command(session, vin, "flash_lights", tenant="acme", actor="op")
    rig.cycle()
    rig.dispatcher.run_once(utc(400))  # past freshness (300 s) and timeout (330 s)
    done = _job(rig, job.job_id)
    assert done.status == "finished" and done.counts.timed_out == 1
    with rig.database.session() as session:
        (delivery,) = list_deliveries(session, job.job_id, tenant="acme").deliveries
    assert delivery.state == "timed_out"
    assert "no acknowledgement within 330 s" in (delivery.reason or "")
    assert "offline" in (delivery.reason or "")
    rig.come_online(vin)  # the retained command is gone: nothing to act on
    rig.vehicles_act()
    assert rig.actuators[vin].executed == []
    assert rig.agents[vin].stats().downlink_refused == {}


def test_a_rejected_command_is_retried_then_fails_with_the_vehicles_reason(rig: Rig) -> None:
    vin = rig.vins[0]
    with rig.database.session() as session:
        job = send_command(session, vin, "refuse", {"why": "parked"}, tenant="acme",
                           actor="op", policy=RolloutPolicy(max_retries=1, retry_delay_s=0))
    rig.cycle()  # rejected, queued again and (no delay) sent again in the same round
    with rig.database.session() as session:
        (retry,) = list_deliveries(session, job.job_id, tenant="acme").deliveries
    assert retry.state == "delivered" and retry.attempts == 2
    rig.vehicles_act()
    rig.dispatcher.run_once()
    with rig.database.session() as session:
        (final,) = list_deliveries(session, job.job_id, tenant="acme").deliveries
    assert final.state == "failed" and final.attempts == 2
    assert final.reason == "rejected by the vehicle: door locked: parked"
    assert _job(rig, job.job_id).status == "finished"


def test_two_commands_to_one_vehicle_go_one_after_the_other(rig: Rig) -> None:
    vin = rig.vins[0]
    with rig.database.session() as session:
        first = send_command(session, vin, "flash_lights", {"times": 1}, tenant="acme",
                             actor="op")
        second = send_command(session, vin, "flash_lights", {"times": 2}, tenant="acme",
                              actor="op")
    rig.dispatcher.run_once()
    assert _states(rig, first.job_id) == {vin: "delivered"}
    assert _states(rig, second.job_id) == {vin: "queued"}  # the vehicle's slot is busy
    rig.vehicles_act()
    rig.cycle()
    assert _job(rig, first.job_id).counts.succeeded == 1
    assert _job(rig, second.job_id).counts.succeeded == 1
    assert [a["times"] for _, a in rig.actuators[vin].executed] == [1, 2]


def test_the_rollout_rate_hands_out_vehicles_per_minute(database) -> None:  # type: ignore[no-untyped-def]
    rig = Rig(database, ["EU"] * 6)
    try:
        t0 = utc()
        with database.session() as session:
            job = create_job(session, tenant="acme", actor="op",
                             payload=Payload.command("flash_lights"), query='region == "EU"',
                             policy=RolloutPolicy(rate_per_min=60), now=t0)
        rig.dispatcher.run_once(t0)
        assert _job(rig, job.job_id).counts.delivered == 0  # the bucket starts empty
        rig.dispatcher.run_once(t0 + timedelta(seconds=1))
        assert _job(rig, job.job_id).counts.delivered == 1
        rig.dispatcher.run_once(t0 + timedelta(seconds=3))
        assert _job(rig, job.job_id).counts.delivered == 2  # at most one second's worth
        rig.dispatcher.run_once(t0 + timedelta(seconds=60))
        assert _job(rig, job.job_id).counts.delivered == 3
    finally:
        rig.close()


def test_a_rate_that_grows_with_successes(database) -> None:  # type: ignore[no-untyped-def]
    policy = RolloutPolicy.from_dict({"rate_per_min": 60, "growth_factor": 2,
                                      "grow_every_successes": 2, "max_rate_per_min": 200})
    assert [policy.rate_at(s) for s in (0, 1, 2, 4, 6, 100)] == [60, 60, 120, 200, 200, 200]


def test_a_maintenance_window_holds_the_rollout_until_it_opens(rig: Rig) -> None:
    policy = RolloutPolicy.from_dict({"maintenance_windows": [
        {"days": ["mon", "tue", "wed", "thu", "fri", "sat", "sun"], "start": "02:00",
         "end": "03:00"}]})
    closed = utc().replace(hour=12, minute=0)
    with rig.database.session() as session:
        job = create_job(session, tenant="acme", actor="op",
                         payload=Payload.command("flash_lights"), query='region == "EU"',
                         policy=policy, now=closed)
    rig.dispatcher.run_once(closed)
    assert _job(rig, job.job_id).counts.queued == 2
    rig.dispatcher.run_once(closed.replace(hour=2, minute=30))
    assert _job(rig, job.job_id).counts.delivered == 2


def test_a_job_aborts_when_its_failure_rate_passes_the_threshold(database) -> None:  # type: ignore[no-untyped-def]
    rig = Rig(database, ["EU"] * 4)
    try:
        policy = RolloutPolicy(rate_per_min=120, abort_failure_rate=0.5, abort_min_outcomes=2)
        t0 = utc()
        with database.session() as session:
            job = create_job(session, tenant="acme", actor="op",
                             payload=Payload.command("refuse"), query="", policy=policy, now=t0)
        for step in range(1, 4):
            rig.dispatcher.run_once(t0 + timedelta(seconds=step))
            rig.vehicles_act()
            rig.dispatcher.run_once(t0 + timedelta(seconds=step))
        done = _job(rig, job.job_id)
        assert done.status == "aborted" and "failure rate 100%" in (done.reason or "")
        assert done.counts.failed == 2 and done.counts.cancelled == 2
    finally:
        rig.close()


def test_a_scheduled_job_waits_for_its_start(rig: Rig) -> None:
    start = utc(3600)
    with rig.database.session() as session:
        job = create_job(session, tenant="acme", actor="op",
                         payload=Payload.command("flash_lights"), query='region == "US"',
                         start_at=start)
    assert job.status == "scheduled"
    rig.dispatcher.run_once()
    assert _job(rig, job.job_id).counts.queued == 1
    rig.dispatcher.run_once(start)
    running = _job(rig, job.job_id)
    assert running.status == "running" and running.counts.delivered == 1


def test_cancelling_a_job_cancels_its_deliveries_and_clears_what_waits_on_vehicles(
    rig: Rig,
) -> None:
    for vin in rig.vins[:2]:
        rig.go_offline(vin)
    with rig.database.session() as session:
        job = create_job(session, tenant="acme", actor="op",
                         payload=Payload.command("flash_lights"), query='region == "EU"',
                         policy=RolloutPolicy(rate_per_min=60))
    rig.dispatcher.run_once(utc(1))  # one delivered (to an offline car), one queued
    with rig.database.session() as session:
        cancelled = cancel_job(session, job.job_id, tenant="acme", actor="op", reason="oops")
    assert cancelled.status == "cancelled" and cancelled.counts.cancelled == 2
    rig.dispatcher.run_once()
    for vin in rig.vins[:2]:
        rig.come_online(vin)
    rig.vehicles_act()
    assert all(a.executed == [] for a in rig.actuators.values())
    with rig.database.session() as session, pytest.raises(StateTransitionError):
        cancel_job(session, job.job_id, tenant="acme", actor="op")


def test_without_a_vehicle_link_deliveries_say_not_delivered(database) -> None:  # type: ignore[no-untyped-def]
    rig = Rig(database, link=False)
    try:
        with database.session() as session:
            job = send_command(session, rig.vins[0], "flash_lights", tenant="acme", actor="op")
        rig.dispatcher.run_once()
        waiting = _job(rig, job.job_id)
        assert waiting.counts.queued == 1 and waiting.waiting_reason == NO_LINK_REASON
    finally:
        rig.close()


def test_a_query_that_selects_nothing_finishes_at_once_saying_so(rig: Rig) -> None:
    with rig.database.session() as session:
        job = create_job(session, tenant="acme", actor="op",
                         payload=Payload.command("flash_lights"), query='region == "JP"')
    assert job.status == "finished" and job.reason == "no vehicle matched the query"


def test_the_after_round_steps_run_each_round_and_a_failing_one_is_counted(
    rig: Rig,
) -> None:
    seen: list[object] = []

    def broken(now: object) -> None:
        raise StateTransitionError("step refused")

    dispatcher = Dispatcher(rig.database, rig.bus, CLOUD_KEY,
                            after_round=[broken, seen.append])
    at = utc()
    dispatcher.run_once(at)
    dispatcher.run_once(at + timedelta(seconds=1))
    assert seen == [at, at + timedelta(seconds=1)]  # the round went on past the failure
    assert dispatcher.stats.errors == 2 and dispatcher.stats.last_error == "step refused"
