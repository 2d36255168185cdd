"""Residency of state: the personal reported values of a twin (location, driving behaviour,
cabin), the contents of a known vehicle's dead letters and the data of its events live only in
the store of the vehicle's region; reads, convergence, replay, access archives, erasure and
upgrades reach them there; a store of another region is never written by mistake."""

from __future__ import annotations

import json
import random
import struct
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from residency_support import (
    CLOUD_KEY,
    EU_POSITION,
    EU_STORED,
    LATITUDE,
    LONGITUDE,
    SOC,
    US_POSITION,
    US_STORED,
    state_url,
    telemetry,
    traces,
)

from drivetrain.cloud.fleet import VehicleCredentials, provision_vehicle
from drivetrain.cloud.infra import Database, create_tenant
from drivetrain.cloud.infra.region_stores import ResidencyError, region_session
from drivetrain.cloud.ingest import (
    IngestPipeline,
    MemoryLake,
    RawMessage,
    list_dead_letters,
    list_vehicle_events,
    refused_items,
    replay_dead_letters,
    select_for_replay,
)
from drivetrain.cloud.ingest.models import DeadLetterRow, VehicleEventRow
from drivetrain.cloud.ingest.sinks import TwinsReportedState
from drivetrain.cloud.lake import Lake
from drivetrain.cloud.portability.rights import serve_access, serve_erasure
from drivetrain.cloud.privacy import set_consent
from drivetrain.cloud.twins import get_twin, query_twins
from drivetrain.cloud.twins.models import PERSONAL_REPORTED, REPORTED
from drivetrain.cloud.twins.personal import write_region_rows
from drivetrain.core.errors import ConfigurationError
from drivetrain.core.settings import Settings
from drivetrain.core.transport import vehicle_topic
from drivetrain.core.vss import PRIVACY_CATEGORIES
from drivetrain.core.wire import (
    MessageKind,
    VehicleEvent,
    events_to_dict,
    seal_json,
)


def _ingest(database: Database, cars: dict[str, VehicleCredentials]) -> None:
    pipeline = IngestPipeline(database, MemoryLake(), TwinsReportedState(), vehicle_cache_ttl_s=0)
    report = pipeline.process(
        [
            telemetry(
                cars["eu1"], {LATITUDE: EU_POSITION[0], LONGITUDE: EU_POSITION[1], SOC: 80.5}
            ),
            telemetry(
                cars["us1"], {LATITUDE: US_POSITION[0], LONGITUDE: US_POSITION[1], SOC: 61.5}
            ),
        ]
    )
    assert report.samples_accepted == 6


def test_an_eu_vehicles_location_lands_only_in_the_eu_store(
    regional: Database, cars: dict[str, VehicleCredentials], stores: dict[str, str]
) -> None:
    _ingest(regional, cars)
    eu_numbers, eu_texts = EU_STORED + EU_POSITION, ("48.14", "11.58", "48.137", "11.575")
    us_numbers = US_STORED + US_POSITION
    # The EU store holds the EU car's position; the US store and the state database nothing of it.
    assert sorted(set(traces(stores["EU"], eu_numbers, eu_texts))) == ["twin_reported_personal.num"]
    assert traces(stores["US"], eu_numbers, eu_texts) == []
    main_url = state_url(regional)
    assert traces(main_url, eu_numbers, eu_texts) == []
    assert traces(main_url, us_numbers, ("40.713", "74.006")) == []
    assert sorted(set(traces(stores["US"], us_numbers, ()))) == ["twin_reported_personal.num"]
    # The non-personal value stays in the state database.
    assert "twin_reported.num" in traces(main_url, (80.5,), ())
    # Reads merge the stores transparently: the twin, and a fleet query on the position.
    with regional.read_session() as session:
        twin = get_twin(session, cars["eu1"].vin, tenant="acme")
        assert twin.reported[LATITUDE].value == pytest.approx(EU_STORED[0])
        assert twin.reported[SOC].value == pytest.approx(80.5)
        page = query_twins(session, "acme", f'reported."{LATITUDE}" > 45')
        assert [t.vin for t in page.twins] == [cars["eu1"].vin]
        page = query_twins(session, "acme", f'NOT reported."{LATITUDE}" > 45')
        assert [t.vin for t in page.twins] == [cars["us1"].vin]


def test_access_and_erasure_reach_the_region_stores(
    regional: Database,
    cars: dict[str, VehicleCredentials],
    stores: dict[str, str],
    tmp_path: Path,
) -> None:
    _ingest(regional, cars)
    vin = cars["eu1"].vin
    lake = Lake(tmp_path / "data")
    try:
        access = serve_access(
            regional,
            lake,
            tenant="acme",
            vins=[vin],
            archive_root=tmp_path / "archives",
            actor="test",
        )
        archive = tmp_path / "archives" / access.request_id / "data"
        personal = json.loads((archive / "twin_reported_personal.json").read_text())
        assert {(r["path"], r["num"]) for r in personal} == {
            (LATITUDE, EU_STORED[0]),
            (LONGITUDE, EU_STORED[1]),
        }
        serve_erasure(regional, lake, tenant="acme", vins=[vin], actor="test")
    finally:
        lake.close()
    assert traces(stores["EU"], EU_STORED, ()) == []
    assert traces(stores["EU"], (), (vin,)) == []
    # The other vehicle's state is untouched.
    assert sorted(set(traces(stores["US"], US_STORED, ()))) == ["twin_reported_personal.num"]


def test_a_store_of_another_region_is_never_written(
    regional: Database,
    cars: dict[str, VehicleCredentials],
    stores: dict[str, str],
    database_url: str,
) -> None:
    us_vin = cars["us1"].vin
    row = (us_vin, LATITUDE, "f", US_STORED[0], None, 1, 1)
    with (
        pytest.raises(ResidencyError, match="region US to the EU store"),
        regional.session() as session,
    ):
        write_region_rows(region_session(session, "EU"), [row], {us_vin: "US"})
    assert traces(stores["EU"], US_STORED, ()) == []
    # A store that served EU refuses to serve the US (a swapped or copied URL).
    swapped = Database(database_url, region_urls={"US": stores["EU"], "EU": stores["US"]})
    try:
        with (
            pytest.raises(ResidencyError, match="serves region EU; refusing to use it for US"),
            swapped.session() as session,
        ):
            write_region_rows(region_session(session, "US"), [row], {us_vin: "US"})
    finally:
        swapped.dispose()
    assert traces(stores["EU"], US_STORED, ()) == []
    # Two regions on one database are refused outright, as is a region that does not exist.
    with pytest.raises(ResidencyError, match="name the same database"):
        Database(database_url, region_urls={"EU": stores["EU"], "US": stores["EU"]})
    with pytest.raises(ConfigurationError, match="'MARS' is not a region"):
        Settings(state_region_urls={"MARS": stores["EU"]})


def test_an_embedded_state_database_keeps_each_region_in_its_own_file(
    tmp_path: Path,
) -> None:
    database = Database(f"sqlite:///{tmp_path / 'state.db'}")
    database.upgrade()
    try:
        with database.session() as session:
            create_tenant(session, "acme", actor="test")
            _, car = provision_vehicle(
                session,
                tenant="acme",
                model="compact-bev",
                region="EU",
                cloud_key=CLOUD_KEY.verify_key,
                actor="test",
                rng=random.Random(1),
            )
            set_consent(
                session,
                vin=car.vin,
                tenant="acme",
                categories=PRIVACY_CATEGORIES,
                source="test",
                actor="test",
            )
        pipeline = IngestPipeline(
            database, MemoryLake(), TwinsReportedState(), vehicle_cache_ttl_s=0
        )
        pipeline.process([telemetry(car, {LATITUDE: EU_POSITION[0]})])
    finally:
        database.dispose()
    eu_file = tmp_path / "state-EU.db"
    assert traces(f"sqlite:///{eu_file}", EU_STORED, ()) == ["twin_reported_personal.num"]
    assert traces(f"sqlite:///{tmp_path / 'state.db'}", EU_STORED + EU_POSITION, ()) == []
    assert eu_file.stat().st_mode & 0o077 == 0  # owner-only, like the state database


def test_an_upgrade_moves_personal_values_stored_before_to_their_region_store(
    regional: Database, cars: dict[str, VehicleCredentials], stores: dict[str, str]
) -> None:
    vin = cars["eu1"].vin
    with regional.session() as session:  # as written before values were kept per region
        get_twin(session, vin, tenant="acme")
        session.execute(
            sa.insert(REPORTED).values(
                vin=vin, path=LATITUDE, kind="f", num=EU_STORED[0], text=None, ts_ns=1, updated_ns=1
            )
        )
        # and as kept while the EU had no store of its own (the state database's table)
        session.execute(
            sa.insert(PERSONAL_REPORTED).values(
                vin=vin,
                path=LONGITUDE,
                kind="f",
                num=EU_STORED[1],
                text=None,
                ts_ns=1,
                updated_ns=1,
            )
        )
    regional.upgrade()
    assert traces(state_url(regional), EU_STORED, ()) == []
    assert traces(stores["EU"], EU_STORED, ()) == ["twin_reported_personal.num"] * 2
    with regional.session() as session:
        assert get_twin(session, vin, tenant="acme").reported[LATITUDE].value == EU_STORED[0]


# --- dead letters and vehicle events -----------------------------------------------------------

TRIP_EVENT = "trip.ended"
DAY_NS = 86_400 * 10**9


def _events(car: VehicleCredentials, events: list[VehicleEvent], seq: int) -> RawMessage:
    payload = seal_json(
        MessageKind.EVENTS, car.vin, events_to_dict(events), key=car.signing_key, seq=seq
    )
    return RawMessage(vehicle_topic(car.vin, "events"), payload)


def _binary(*numbers: float) -> tuple[str, ...]:
    """Each number as a float64 in a binary payload (an Arrow IPC stream), as latin-1 text."""
    return tuple(struct.pack("<d", n).decode("latin-1") for n in numbers)


def _trip(position: tuple[float, float], ts_ns: int) -> VehicleEvent:
    return VehicleEvent(TRIP_EVENT, ts_ns, data={"lat": position[0], "lon": position[1]})


def _refused_and_events(database: Database, cars: dict[str, VehicleCredentials]) -> tuple[str, str]:
    """Each car sends its raw position in samples from the future (dead-lettered whole), in a
    message whose signature fails (kept raw), in a trip event (stored) and in a trip event
    from the future (dead-lettered); each tampered message's header, as latin-1 text."""
    now_ns = int(datetime.now(UTC).timestamp() * 1e9)
    messages, tampered = [], []
    for name, position in (("eu1", EU_POSITION), ("us1", US_POSITION)):
        car = cars[name]
        where = {LATITUDE: position[0], LONGITUDE: position[1]}
        bad = bytearray(telemetry(car, where).payload)
        bad[-1] ^= 0xFF  # the signature no longer verifies
        at = bytes(bad).index(car.vin.encode())  # the header, from the claimed VIN on
        tampered.append(bytes(bad[at : at + 48]).decode("latin-1"))
        messages += [
            telemetry(car, where, ts_ns=now_ns + DAY_NS),
            RawMessage(vehicle_topic(car.vin, "telemetry"), bytes(bad)),
            _events(car, [_trip(position, now_ns)], seq=2),
            _events(car, [_trip(position, now_ns + DAY_NS)], seq=3),
        ]
    pipeline = IngestPipeline(database, MemoryLake(), TwinsReportedState(), vehicle_cache_ttl_s=0)
    report = pipeline.process(messages)
    assert report.dead_letters == 6
    return tampered[0], tampered[1]


EU_RAW_TEXTS = ("48.137", "11.575")
US_RAW_TEXTS = ("40.712", "74.005")


def test_an_eu_vehicles_dead_letters_and_events_land_only_in_the_eu_store(
    regional: Database, cars: dict[str, VehicleCredentials], stores: dict[str, str]
) -> None:
    eu_raw, us_raw = _refused_and_events(regional, cars)
    eu_texts = (*EU_RAW_TEXTS, *_binary(*EU_POSITION), eu_raw)
    us_texts = (*US_RAW_TEXTS, *_binary(*US_POSITION), us_raw)
    eu_found = set(traces(stores["EU"], EU_POSITION, eu_texts))
    assert eu_found >= {
        "ingest_dead_letter_contents.payload",  # the refused samples and the raw message
        "ingest_vehicle_event_data.data",  # the trip event's position
    }
    assert {f.split(".")[0] for f in eu_found} == {
        "ingest_dead_letter_contents",
        "ingest_vehicle_event_data",
    }
    assert traces(stores["US"], EU_POSITION, eu_texts) == []
    main_url = state_url(regional)
    assert traces(main_url, EU_POSITION, eu_texts) == []
    assert traces(main_url, US_POSITION, us_texts) == []
    assert traces(stores["EU"], US_POSITION, us_texts) == []
    # Reads merge the region stores back in.
    vin = cars["eu1"].vin
    with regional.read_session() as session:
        letters = list_dead_letters(session, tenant="acme", vin=vin)
        assert sorted(d.reason for d in letters) == [
            "bad_signature",
            "timestamp_in_future",
            "timestamp_in_future",
        ]
        assert all(d.payload_bytes > 0 for d in letters)
        samples = next(d for d in letters if d.payload_format == "arrow-ipc")
        assert LATITUDE in samples.detail  # the detail, also kept in the EU store
        items = refused_items(session, samples.dead_letter_id, tenant="acme")
        assert sorted(i["value"] for i in items) == sorted(EU_POSITION)
        events = list_vehicle_events(session, tenant="acme", vin=vin, types=[TRIP_EVENT])
        assert [e.data for e in events] == [{"lat": EU_POSITION[0], "lon": EU_POSITION[1]}]
        rows = session.query(DeadLetterRow).filter(DeadLetterRow.vin == vin).all()
        assert {(r.region, r.detail, bytes(r.payload)) for r in rows} == {("EU", "", b"")}
        ids = select_for_replay(session, tenant="acme", vin=vin)
    # A replay reads the payloads from the EU store and writes its outcome back there.
    pipeline = IngestPipeline(regional, MemoryLake(), TwinsReportedState(), vehicle_cache_ttl_s=0)
    results = replay_dead_letters(pipeline, ids)
    assert {r.outcome for r in results} == {"still_refused"}
    with regional.read_session() as session:
        letters = list_dead_letters(session, tenant="acme", vin=vin)
        assert all("still_refused" in (d.replay_outcome or "") for d in letters)
    assert {f for f in traces(stores["EU"], (), ("still_refused",))} == {
        "ingest_dead_letter_contents.replay_outcome"
    }
    assert traces(main_url, EU_POSITION, eu_texts + ("still_refused",)) == []


def test_access_and_erasure_reach_dead_letters_and_events_in_the_region_store(
    regional: Database,
    cars: dict[str, VehicleCredentials],
    stores: dict[str, str],
    tmp_path: Path,
) -> None:
    _refused_and_events(regional, cars)
    vin = cars["eu1"].vin
    lake = Lake(tmp_path / "data")
    try:
        access = serve_access(
            regional, lake, tenant="acme", vins=[vin], archive_root=tmp_path / "a", actor="test"
        )
        archive = tmp_path / "a" / access.request_id / "data"
        contents = json.loads((archive / "ingest_dead_letter_contents.json").read_text())
        assert len(contents) == 3 and {c["vin"] for c in contents} == {vin}
        data = json.loads((archive / "ingest_vehicle_event_data.json").read_text())
        assert [json.loads(d["data"]) for d in data] == [
            {"lat": EU_POSITION[0], "lon": EU_POSITION[1]}
        ]
        serve_erasure(regional, lake, tenant="acme", vins=[vin], actor="test")
    finally:
        lake.close()
    assert traces(stores["EU"], EU_POSITION, (*EU_RAW_TEXTS, vin)) == []
    # The other vehicle's are untouched.
    assert "ingest_vehicle_event_data.data" in traces(stores["US"], (), US_RAW_TEXTS)


def test_an_upgrade_moves_dead_letters_and_events_stored_before_to_their_region_store(
    regional: Database, cars: dict[str, VehicleCredentials], stores: dict[str, str]
) -> None:
    vin = cars["eu1"].vin
    now = datetime.now(UTC)
    with regional.session() as session:  # as written before they were kept per region
        session.execute(
            sa.insert(DeadLetterRow).values(
                received_at=now, vin=vin, tenant_id="acme", topic=f"dt/v1/{vin}/telemetry",
                kind="telemetry", batch_id=None, level="message", reason="bad_signature",
                detail="value 48.137154 refused", sample_count=0, payload_format="envelope",
                payload=b"lat=48.137154", payload_size=13, dedup_key="d" * 64, status="open",
                replayed_at=None, replay_outcome=None, replay_attempts=0, replay_of=None,
            )
        )  # fmt: skip
        session.execute(
            sa.insert(VehicleEventRow).values(
                tenant_id="acme", vin=vin, batch_id="b" * 32, position=0, type=TRIP_EVENT,
                severity="info", ts_ns=1, data='{"lat":48.137154}', received_at=now,
            )
        )  # fmt: skip
    regional.upgrade()
    assert traces(state_url(regional), (), EU_RAW_TEXTS) == []
    assert sorted(traces(stores["EU"], (), EU_RAW_TEXTS)) == [
        "ingest_dead_letter_contents.detail",
        "ingest_dead_letter_contents.payload",
        "ingest_vehicle_event_data.data",
    ]
    with regional.read_session() as session:
        (letter,) = list_dead_letters(session, tenant="acme", vin=vin)
        assert letter.detail == "value 48.137154 refused" and letter.payload_bytes == 13
        (event,) = list_vehicle_events(session, tenant="acme", vin=vin)
        assert event.data == {"lat": 48.137154}
