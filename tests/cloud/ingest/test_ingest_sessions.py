"""Vehicle sessions at the door: a signed session_open, then envelopes MAC'd under it.

Each attack on a session is refused with its own reason (forged MAC, replayed sequence number,
a session of one vehicle used for another, an unknown session, a session_open for another
platform key or signed by another key), and a worker that never saw the session_open verifies
its envelopes from the key stored in the database; an agent's sessions reach a worker
through a real Mosquitto."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from ingest_helpers import CLOUD_KEY, NOW_NS, SOC, Fleet
from sqlalchemy import select
from sqlalchemy.orm import Session

from drivetrain.cloud.infra import Database
from drivetrain.cloud.ingest import (
    IngestPipeline,
    IngestWorker,
    MemoryLake,
    MemoryReportedState,
    RawMessage,
)
from drivetrain.cloud.ingest import replay as replay_module
from drivetrain.cloud.ingest.isolation import is_transient
from drivetrain.cloud.ingest.limits import IngestLimits
from drivetrain.cloud.ingest.models import SessionRow
from drivetrain.cloud.ingest.replay import replay_dead_letters
from drivetrain.cloud.ingest.service import list_dead_letters
from drivetrain.cloud.ingest.sessions import forget_superseded_sessions
from drivetrain.core.crypto import SigningKey
from drivetrain.core.transport import InProcessTransport, vehicle_topic
from drivetrain.core.transport.mqtt import MqttTransport
from drivetrain.core.transport.testing import PrivateBroker
from drivetrain.core.wire import (
    REPLAY_WINDOW,
    MessageKind,
    VehicleEvent,
    VehicleSession,
    encode_samples,
    events_to_dict,
    samples_table,
    seal_telemetry,
    seal_with_mac,
)
from drivetrain.edge import Samples, VehicleIdentity
from drivetrain.edge.agent import EdgeAgent
from drivetrain.edge.buffer import MemoryBuffer


def _session(fleet: Fleet, name: str = "eu1", platform: SigningKey = CLOUD_KEY) -> VehicleSession:
    return VehicleSession(fleet.vin(name), fleet.key(name), platform.verify_key, seq=1)


def _opening(session: VehicleSession) -> RawMessage:
    return RawMessage(vehicle_topic(session.vin, "telemetry"), session.open_envelope)


def _sample(session: VehicleSession, seq: int, value: float = 50.0, vin: str = "") -> RawMessage:
    vin = vin or session.vin
    table = samples_table([SOC], [0], [NOW_NS - seq], [value])
    payload = seal_telemetry(session.vin, table, key=session, seq=seq)
    return RawMessage(vehicle_topic(vin, "telemetry"), payload)


def _reasons(pipeline: IngestPipeline, messages: list[RawMessage]) -> list[str | None]:
    report = pipeline.process(messages)
    return [r.reason if r.status == "refused" else r.status for r in report.results]


@pytest.fixture
def sessioned(make_pipeline: Callable[..., IngestPipeline]) -> IngestPipeline:
    return make_pipeline(platform_key=CLOUD_KEY)


def test_a_session_opens_and_its_macd_envelopes_are_stored(
    sessioned: IngestPipeline, fleet: Fleet, lake: MemoryLake, database: Database
) -> None:
    session = _session(fleet)
    assert _reasons(sessioned, [_opening(session), _sample(session, 2)]) == ["stored", "stored"]
    assert _reasons(sessioned, [_sample(session, 3), _sample(session, 5)]) == ["stored"] * 2
    rows = lake.rows()
    assert rows is not None and rows.num_rows == 3
    with database.session() as db:
        row = db.get(SessionRow, session.session_id)
        assert row is not None and row.vin == fleet.vin("eu1") and row.highest_seq == 5
        assert row.vehicle_key_id == fleet.key("eu1").key_id
        # the MAC key is stored sealed, never as it is
        assert len(row.sealed_key) == 12 + 32 + 16


def test_a_session_open_later_in_the_same_micro_batch_still_authenticates(
    sessioned: IngestPipeline, fleet: Fleet
) -> None:
    session = _session(fleet)
    assert _reasons(sessioned, [_sample(session, 2), _opening(session)]) == ["stored", "stored"]


def test_another_worker_verifies_from_the_stored_key(
    make_pipeline: Callable[..., IngestPipeline], fleet: Fleet
) -> None:
    first, second = make_pipeline(platform_key=CLOUD_KEY), make_pipeline(platform_key=CLOUD_KEY)
    session = _session(fleet)
    assert _reasons(first, [_opening(session)]) == ["stored"]
    assert _reasons(second, [_sample(session, 2)]) == ["stored"]


def test_a_forged_mac_is_bad_mac(sessioned: IngestPipeline, fleet: Fleet) -> None:
    session = _session(fleet)
    good = _sample(session, 2)
    forged = good.payload[:-1] + bytes([good.payload[-1] ^ 1])
    altered = bytearray(good.payload)
    altered[len(altered) // 2] ^= 0x40
    assert _reasons(sessioned, [_opening(session), RawMessage(good.topic, forged),
                                RawMessage(good.topic, bytes(altered))]) == [
        "stored", "bad_mac", "bad_mac"]  # fmt: skip


def test_a_replayed_sequence_number_is_refused_but_a_redelivery_is_a_duplicate(
    sessioned: IngestPipeline, fleet: Fleet, database: Database
) -> None:
    session = _session(fleet)
    first = _sample(session, 7)
    assert _reasons(sessioned, [_opening(session), first]) == ["stored", "stored"]
    assert _reasons(sessioned, [first]) == ["duplicate"]  # the same batch id
    # another batch under a sequence number already used, in one micro-batch and across
    assert _reasons(sessioned, [_sample(session, 7, 60.0)]) == ["replayed_seq"]
    assert _reasons(sessioned, [_sample(session, 9), _sample(session, 9, 61.0)]) == [
        "stored", "replayed_seq"]  # fmt: skip
    # out of order inside the window is fine; below it is not
    assert _reasons(sessioned, [_sample(session, 8)]) == ["stored"]
    far = 9 + REPLAY_WINDOW + 1
    assert _reasons(sessioned, [_sample(session, far)]) == ["stored"]
    assert _reasons(sessioned, [_sample(session, 10)]) == ["replayed_seq"]
    with database.session() as db:
        (letter, *_) = list_dead_letters(db, tenant="acme", reason="replayed_seq")
    assert letter.reason == "replayed_seq"


def test_a_micro_batch_that_fails_does_not_advance_the_window(
    sessioned: IngestPipeline, fleet: Fleet, lake: MemoryLake, monkeypatch: pytest.MonkeyPatch
) -> None:
    session = _session(fleet)
    assert _reasons(sessioned, [_opening(session)]) == ["stored"]
    message = _sample(session, 4)

    def broken(*args: object, **kwargs: object) -> None:
        raise OSError("disk gone")

    with monkeypatch.context() as patched:
        patched.setattr(lake, "append", broken)
        with pytest.raises(Exception):  # noqa: B017 - whatever the lake's failure becomes
            sessioned.process([message])
    assert _reasons(sessioned, [message]) == ["stored"]  # redelivered: not a replay


def _macd(session: VehicleSession, vin: str, key_id: str, seq: int,
          kind: MessageKind = MessageKind.TELEMETRY) -> RawMessage:
    """An envelope naming ``vin`` and ``key_id``, MAC'd with ``session``'s key."""
    if kind == MessageKind.TELEMETRY:
        body, encoding = encode_samples(samples_table([SOC], [0], [NOW_NS], [50.0])), "arrow-ipc"
    else:
        events = [VehicleEvent("privacy.consent.withdrawn", NOW_NS, "info", {})]
        body, encoding = json.dumps(events_to_dict(events)).encode(), "json"
    payload = seal_with_mac(
        kind, vin, body, body_encoding=encoding,  # type: ignore[arg-type]
        key_id=key_id, session_id=session.session_id, mac_key=session._mac_key, seq=seq,
    )  # fmt: skip
    channel = "telemetry" if kind == MessageKind.TELEMETRY else "events"
    return RawMessage(vehicle_topic(vin, channel), payload)


def test_a_session_of_one_vehicle_is_refused_for_another(
    sessioned: IngestPipeline, fleet: Fleet
) -> None:
    mine = _session(fleet, "eu1")
    other, other_key = fleet.vin("eu2"), fleet.key("eu2").key_id
    assert _reasons(sessioned, [
        _opening(mine),
        _macd(mine, other, other_key, 2),  # eu1's session for an envelope naming eu2
        _sample(mine, 3, vin=other),  # eu1's envelope on eu2's topic
    ]) == ["stored", "bad_signature", "malformed"]  # fmt: skip


def test_a_session_named_by_another_vehicles_envelope_is_bad_signature(
    sessioned: IngestPipeline, fleet: Fleet
) -> None:
    mine, theirs = _session(fleet, "eu1"), _session(fleet, "eu2")
    assert _reasons(sessioned, [_opening(mine), _opening(theirs)]) == ["stored", "stored"]
    # eu2 names eu1's session in its own envelope, MAC'd with its own session's key
    crossed = _macd(theirs, theirs.vin, theirs.key_id, 2)
    header_swapped = crossed.payload.replace(theirs.session_id.encode(), mine.session_id.encode())
    assert _reasons(sessioned, [RawMessage(crossed.topic, header_swapped)]) == ["bad_signature"]


def test_an_unknown_session_is_refused_and_its_bytes_kept(
    sessioned: IngestPipeline, fleet: Fleet, database: Database
) -> None:
    session = _session(fleet)
    message = _sample(session, 2)
    assert _reasons(sessioned, [message]) == ["unknown_session"]
    with database.session() as db:
        (letter,) = list_dead_letters(db, tenant="acme", reason="unknown_session")
    assert letter.payload_size == len(message.payload)


def test_a_pipeline_without_a_platform_key_knows_no_session(
    make_pipeline: Callable[..., IngestPipeline], fleet: Fleet
) -> None:
    session = _session(fleet)
    assert _reasons(make_pipeline(), [_opening(session), _sample(session, 2)]) == [
        "malformed", "unknown_session"]  # fmt: skip


def test_a_session_open_for_another_platform_key_is_refused(
    sessioned: IngestPipeline, fleet: Fleet
) -> None:
    session = _session(fleet, platform=SigningKey.from_seed(b"o" * 32))
    assert _reasons(sessioned, [_opening(session), _sample(session, 2)]) == [
        "malformed", "unknown_session"]  # fmt: skip


def test_a_session_open_signed_by_the_wrong_key_is_bad_signature(
    sessioned: IngestPipeline, fleet: Fleet
) -> None:
    stolen = VehicleSession(fleet.vin("eu1"), SigningKey.from_seed(b"x" * 32),
                            CLOUD_KEY.verify_key, seq=1)  # fmt: skip
    assert _reasons(sessioned, [_opening(stolen), _sample(stolen, 2)]) == [
        "bad_signature", "unknown_session"]  # fmt: skip


def test_events_must_be_signed_not_macd(sessioned: IngestPipeline, fleet: Fleet) -> None:
    session = _session(fleet)
    with pytest.raises(ValueError, match="signed"):
        session.seal(MessageKind.EVENTS, b"{}", body_encoding="json", seq=2)
    withdrawal = _macd(session, session.vin, session.key_id, 2, MessageKind.EVENTS)
    assert _reasons(sessioned, [_opening(session), withdrawal]) == ["stored", "bad_signature"]


def test_an_agent_macs_its_telemetry_and_a_worker_ingests_it_through_mosquitto(
    database: Database, fleet: Fleet, lake: MemoryLake, private_broker: PrivateBroker
) -> None:
    identity = VehicleIdentity(fleet.vin("eu1"), fleet.key("eu1"), CLOUD_KEY.verify_key)
    group = f"sessions{uuid.uuid4().hex[:10]}"
    pipeline = IngestPipeline(database, lake, MemoryReportedState(), vehicle_cache_ttl_s=0,
                              platform_key=CLOUD_KEY)  # fmt: skip
    with MqttTransport(private_broker.url, client_id=f"{group}-w", session_expiry_s=60) as link, \
            MqttTransport(private_broker.url, client_id=f"{group}-car") as car_link:  # fmt: skip
        worker = IngestWorker(link, pipeline, max_batch_messages=16, max_delay_ms=30,
                              group=group).start()  # fmt: skip
        try:
            time.sleep(0.3)  # the subscriptions are in place
            agent = EdgeAgent(identity, car_link, MemoryBuffer())
            agent.start()
            now = time.time_ns()
            for second in range(5):
                at = now + second * 1_000_000_000
                agent.tick(at, samples=Samples.from_values({SOC: 50.0 + second}, at))
                agent.flush(at)
            sealed = agent.stats().batches_sealed
            deadline = time.monotonic() + 30
            while worker.stats().acknowledged < sealed + 1 and time.monotonic() < deadline:
                agent.tick(time.time_ns())
                time.sleep(0.05)
            agent.stop()
        finally:
            worker.stop()
    assert sealed >= 1 and agent.outbox.sessions_opened == 1
    rows = lake.rows()
    assert rows is not None and len(set(rows.column("batch_id").to_pylist())) == sealed
    with database.session() as db:
        assert list_dead_letters(db, tenant=None, limit=10) == []
        (row,) = db.query(SessionRow).all()
    assert row.vin == identity.vin and row.highest_seq >= 0


def _open_letters(database: Database, reason: str = "unknown_session") -> list[int]:
    with database.session() as db:
        return [d.dead_letter_id for d in list_dead_letters(db, tenant=None, reason=reason)]


def _stored_once(lake: MemoryLake, count: int) -> None:
    rows = lake.rows()
    assert rows is not None and rows.num_rows == count
    assert len(set(rows.column("batch_id").to_pylist())) == count


def test_envelopes_refused_before_their_session_committed_are_replayed_by_its_opener(
    make_pipeline: Callable[..., IngestPipeline], fleet: Fleet, lake: MemoryLake,
    database: Database,
) -> None:
    # B commits the session's first envelope as unknown_session (a dead letter kept whole
    # even above the cap for unverified bytes), then A commits the session_open
    a = make_pipeline(platform_key=CLOUD_KEY)
    b = make_pipeline(platform_key=CLOUD_KEY, limits=IngestLimits(dead_letter_max_bytes=16))
    session = _session(fleet)
    early = _sample(session, 2)
    assert _reasons(b, [early]) == ["unknown_session"]
    assert len(_open_letters(database)) == 1
    # A accepts later sequence numbers in the same micro-batch; seq 2 is older, inside the
    # window, and still stored when A replays it after its commit
    assert _reasons(a, [_opening(session), _sample(session, 3), _sample(session, 40)]) == [
        "stored"] * 3  # fmt: skip
    assert _open_letters(database) == []
    _stored_once(lake, 3)
    assert _reasons(b, [early]) == ["duplicate"]
    with database.session() as db:
        (letter,) = list_dead_letters(db, tenant="acme", reason="unknown_session", status=None)
    assert letter.status == "replayed"


@pytest.fixture
def workers(make_pipeline: Callable[..., IngestPipeline]) -> tuple[IngestPipeline, IngestPipeline]:
    """Two workers sharing one database (and subscription)."""
    return make_pipeline(platform_key=CLOUD_KEY), make_pipeline(platform_key=CLOUD_KEY)


def test_envelopes_refused_after_their_session_committed_are_replayed_by_their_refuser(
    workers: tuple[IngestPipeline, IngestPipeline], fleet: Fleet, lake: MemoryLake,
    database: Database, monkeypatch: pytest.MonkeyPatch,
) -> None:
    # B looked the session up before A committed it, A's scan after its commit found no dead
    # letter yet, then B committed its dead letter: B's check after its commit replays it
    a, b = workers
    session = _session(fleet)
    assert _reasons(a, [_opening(session)]) == ["stored"]
    stale = {"on": True}
    looked_up, recover = b.sessions.get, b._recover_sessions

    def get_before_commit(db: object, session_id: str) -> object:
        return None if stale["on"] else looked_up(db, session_id)  # type: ignore[arg-type]

    def recover_after_commit() -> None:
        stale["on"] = False
        recover()

    monkeypatch.setattr(b.sessions, "get", get_before_commit)
    monkeypatch.setattr(b, "_recover_sessions", recover_after_commit)
    report = b.process([_sample(session, 2)])
    assert [r.reason for r in report.results] == ["unknown_session"]  # as B's micro-batch saw it
    assert _open_letters(database) == []
    _stored_once(lake, 1)


def test_a_dead_letter_replayed_by_two_workers_at_once_is_stored_once(
    workers: tuple[IngestPipeline, IngestPipeline], fleet: Fleet, lake: MemoryLake,
    database: Database, monkeypatch: pytest.MonkeyPatch,
) -> None:
    a, b = workers
    session = _session(fleet)
    with monkeypatch.context() as patched:  # its check ran before the session committed
        patched.setattr(b, "_recover_sessions", lambda: None)
        assert _reasons(b, [_sample(session, 2)]) == ["unknown_session"]
    with monkeypatch.context() as patched:  # the session stored, its scan missed the letter
        patched.setattr(a, "_recover_sessions", lambda: None)
        assert _reasons(a, [_opening(session)]) == ["stored"]
    (letter,) = _open_letters(database)
    loaded = threading.Barrier(2, timeout=30)
    load = replay_module._load
    outcomes: list[str] = []
    waited: set[str] = set()

    def load_together(pipeline: IngestPipeline, dead_letter_id: int) -> object:
        target = load(pipeline, dead_letter_id)
        if threading.current_thread().name not in waited:  # once per thread
            waited.add(threading.current_thread().name)
            loaded.wait()  # both have read it open before either stores it
        return target

    monkeypatch.setattr(replay_module, "_load", load_together)

    def replay(pipeline: IngestPipeline) -> None:
        try:
            outcomes.extend(r.outcome for r in replay_dead_letters(pipeline, [letter]))
        except Exception as e:  # noqa: BLE001 - judged below
            # SQLite may refuse the loser's write outright (its snapshot is stale): the
            # database was busy, which the worker logs and leaves to the winner
            outcomes.append("busy" if is_transient(e) else f"raised {type(e).__name__}: {e}")

    threads = [threading.Thread(target=replay, args=(p,)) for p in (a, b)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # the loser finds the letter closed, or (when its run starts after the winner's commit)
    # the batch already in the ledger
    assert sorted(outcomes) in (
        ["not_open", "replayed"], ["busy", "replayed"], ["duplicate", "replayed"]
    ), outcomes
    _stored_once(lake, 1)
    assert _open_letters(database) == []


def _stored_session(db: Session, session_id: str, vin: str, opened_at: datetime) -> None:
    db.add(SessionRow(session_id=session_id, vin=vin, vehicle_key_id="k", platform_key_id="p",
                      sealed_key=b"x" * 60, opened_at=opened_at, highest_seq=0))


def test_sessions_replaced_before_the_acceptance_window_are_forgotten(
    database: Database, fleet: Fleet
) -> None:
    now = datetime.now(UTC)
    window_start = now - timedelta(days=30)
    one, other = fleet.vin("eu1"), fleet.vin("us1")
    with database.session() as db:
        _stored_session(db, "old", one, now - timedelta(days=40))
        _stored_session(db, "replaced", one, now - timedelta(days=35))  # by "newest", in time
        _stored_session(db, "newest", one, now - timedelta(days=31))
        # replaced, but only inside the window: its envelopes may still hold fresh samples
        _stored_session(db, "alone", other, now - timedelta(days=90))
        _stored_session(db, "recent", other, now - timedelta(days=2))
    with database.session() as db:
        assert forget_superseded_sessions(db, superseded_before=window_start) == 2
    with database.session() as db:
        left = sorted(db.scalars(select(SessionRow.session_id)))
    # a vehicle's newest session stays however old; one replaced within the window stays
    assert left == ["alone", "newest", "recent"]


def test_the_worker_forgets_replaced_sessions_when_it_prunes(
    sessioned: IngestPipeline, database: Database, fleet: Fleet
) -> None:
    now = datetime.now(UTC)
    vin = fleet.vin("eu1")
    with database.session() as db:
        _stored_session(db, "before", vin, now - timedelta(days=60))
        _stored_session(db, "after", vin, now - timedelta(days=45))
    with InProcessTransport() as bus:
        worker = IngestWorker(bus, sessioned, prune_interval_s=0).start()
        deadline, left = time.monotonic() + 10, ["before", "after"]
        while time.monotonic() < deadline and left != ["after"]:
            time.sleep(0.05)
            with database.session() as db:
                left = list(db.scalars(select(SessionRow.session_id)))
        worker.stop()
    assert left == ["after"]
