"""Residency of consent: a registered vehicle's consent (categories, source) and the personal
part of its ledger grants (categories, person, source) live only in the store of its region;
the state database keeps the rows that list them without it. Reads, ingestion's consent
filter, access archives, erasure, export and import, and upgrades reach them there."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import sqlalchemy as sa
from residency_support import LATITUDE, SOC, state_url, telemetry, traces

from drivetrain.cloud.fleet import VehicleCredentials
from drivetrain.cloud.infra import Database, Principal, Role, create_client
from drivetrain.cloud.infra.region_stores import region_session
from drivetrain.cloud.ingest import IngestPipeline, MemoryLake
from drivetrain.cloud.ingest.sinks import TwinsReportedState
from drivetrain.cloud.lake import Lake
from drivetrain.cloud.portability.rights import serve_access, serve_erasure
from drivetrain.cloud.portability.service import export_data, import_bundle
from drivetrain.cloud.portability.tables import Subject
from drivetrain.cloud.privacy import consent_map, get_consent, set_consent
from drivetrain.cloud.privacy.containers import load_containers
from drivetrain.cloud.privacy.data_act import data_act_grants, decide_access, grant_containers
from drivetrain.cloud.privacy.data_act_log import access_log, log_access
from drivetrain.cloud.privacy.ledger import active_grants, consent_history, give_consent
from drivetrain.cloud.privacy.models import (
    OWNERS,
    ConsentRow,
    DataActAccessRow,
    PurposeGrantRow,
)
from drivetrain.cloud.privacy.owners import add_owner, list_owners, owned_vins, owner_binding
from drivetrain.cloud.twins import get_twin
from drivetrain.core.errors import PermissionDeniedError
from drivetrain.core.vss import builtin_catalog

# Distinctive sources: where each car's consent and grant came from.
EU_CONSENT = "eu-consent-app.7"
EU_GRANT = "eu-insurer-portal.7"
US_CONSENT = "us-consent-app.9"
US_GRANT = "us-insurer-portal.9"
EU_TEXTS = (EU_CONSENT, EU_GRANT)


def _consent_and_grants(database: Database, cars: dict[str, VehicleCredentials]) -> None:
    with database.session() as session:
        for name, consent, grant in (("eu1", EU_CONSENT, EU_GRANT), ("us1", US_CONSENT, US_GRANT)):
            vin = cars[name].vin
            set_consent(session, vin=vin, tenant="acme", categories=["technical"],
                        source=consent, actor="test")
            give_consent(session, tenant="acme", vin=vin, purpose="insurance",
                         categories=["location", "technical"], person="driver", source=grant,
                         actor="test")


def test_an_eu_vehicles_consent_and_grants_land_only_in_the_eu_store(
    regional: Database, cars: dict[str, VehicleCredentials], stores: dict[str, str]
) -> None:
    _consent_and_grants(regional, cars)
    eu, us = cars["eu1"].vin, cars["us1"].vin
    assert sorted(set(traces(stores["EU"], (), EU_TEXTS))) == [  # and the audit entries'
        "audit_personal.details", "privacy_consent_contents.source",
        "privacy_purpose_grant_contents.source"]
    assert traces(stores["US"], (), EU_TEXTS) == []
    # Nothing in the state database names them (the audit log's record of each change
    # included: its personal part is in the region store too).
    assert traces(state_url(regional), (), EU_TEXTS) == []
    assert sorted(set(traces(stores["US"], (), (US_CONSENT, US_GRANT)))) == [
        "audit_personal.details", "privacy_consent_contents.source",
        "privacy_purpose_grant_contents.source"]
    with regional.read_session() as session:
        listed = session.execute(
            sa.select(ConsentRow.vin, ConsentRow.categories, ConsentRow.source, ConsentRow.region)
            .order_by(ConsentRow.region)).all()
        assert [tuple(r) for r in listed] == [(eu, "", "", "EU"), (us, "", "", "US")]
        grants = session.execute(
            sa.select(PurposeGrantRow.vin, PurposeGrantRow.purpose, PurposeGrantRow.categories,
                      PurposeGrantRow.person, PurposeGrantRow.source, PurposeGrantRow.region)
            .order_by(PurposeGrantRow.region)).all()
        assert [tuple(r) for r in grants] == [
            (eu, "insurance", "", "", "", "EU"), (us, "insurance", "", "", "", "US")]
        consent = get_consent(session, eu, "acme")
        assert (set(consent.categories), consent.source) == ({"technical"}, EU_CONSENT)
        assert consent_map(session, [eu, us]) == {
            eu: frozenset({"technical"}), us: frozenset({"technical"})}
        [grant] = consent_history(session, "acme", eu)
        assert (set(grant.categories), grant.person, grant.source) == (
            {"location", "technical"}, "driver", EU_GRANT)
        assert active_grants(session, "acme", "insurance", recipient=None) == {
            eu: frozenset({"location", "technical"}), us: frozenset({"location", "technical"})}


def test_ingestion_filters_by_the_consent_in_the_region_store(
    regional: Database, cars: dict[str, VehicleCredentials]
) -> None:
    _consent_and_grants(regional, cars)  # technical only: the location is dropped
    eu = cars["eu1"]
    pipeline = IngestPipeline(regional, MemoryLake(), TwinsReportedState(), vehicle_cache_ttl_s=0)
    pipeline.process([telemetry(eu, {LATITUDE: 48.1, SOC: 55.0})])
    with regional.session() as session:
        assert sorted(get_twin(session, eu.vin, tenant="acme").reported) == [SOC]
        set_consent(session, vin=eu.vin, tenant="acme", categories=["technical", "location"],
                    source=EU_CONSENT, actor="test")
    # The location is kept once the consent in the EU store allows it (the default would not).
    pipeline.process([telemetry(eu, {LATITUDE: 48.2, SOC: 56.0})])
    with regional.read_session() as session:
        twin = get_twin(session, eu.vin, tenant="acme")
    assert sorted(twin.reported) == [LATITUDE, SOC]


def test_access_erasure_export_and_import_reach_consent_in_the_region_store(
    regional: Database, cars: dict[str, VehicleCredentials], stores: dict[str, str],
    tmp_path: Path,
) -> None:
    _consent_and_grants(regional, cars)
    eu = cars["eu1"].vin
    lake = Lake(tmp_path / "data")
    try:
        access = serve_access(regional, lake, tenant="acme", vins=[eu],
                              archive_root=tmp_path / "archives", actor="test")
        archive = tmp_path / "archives" / access.request_id / "data"
        consent = json.loads((archive / "privacy_consent_contents.json").read_text())
        assert [(r["vin"], r["source"]) for r in consent] == [(eu, EU_CONSENT)]
        grants = json.loads((archive / "privacy_purpose_grant_contents.json").read_text())
        assert [(r["vin"], r["person"], r["source"]) for r in grants] == [
            (eu, "driver", EU_GRANT)]
        # A tenant's bundle carries them; importing it again finds every row there.
        export_data(regional, lake, Subject("acme"), tmp_path / "bundle", actor="test")
        report = import_bundle(regional, lake, tmp_path / "bundle", actor="test")
        for table in ("privacy_consent", "privacy_consent_contents",
                      "privacy_purpose_grants", "privacy_purpose_grant_contents"):
            assert (report.inserted[table], report.unchanged[table]) == (0, 2), table
        serve_erasure(regional, lake, tenant="acme", vins=[eu], actor="test")
    finally:
        lake.close()
    assert traces(stores["EU"], (), (eu, *EU_TEXTS)) == []
    assert sorted(set(traces(stores["US"], (), (US_CONSENT, US_GRANT)))) == [
        "audit_personal.details", "privacy_consent_contents.source",
        "privacy_purpose_grant_contents.source"]


def test_an_upgrade_moves_consent_stored_before_to_its_region_store(
    regional: Database, cars: dict[str, VehicleCredentials], stores: dict[str, str]
) -> None:
    _consent_and_grants(regional, cars)
    eu = cars["eu1"].vin
    with regional.session() as session:  # as written before consent was kept per region
        for table in ("privacy_consent_contents", "privacy_purpose_grant_contents"):
            region_session(session, "EU").execute(sa.text(f"DELETE FROM {table}"))
        session.execute(sa.update(ConsentRow).where(ConsentRow.vin == eu).values(
            categories="location technical", source=EU_CONSENT, region=None))
        session.execute(sa.update(PurposeGrantRow).where(PurposeGrantRow.vin == eu).values(
            categories="location", person="owner", source=EU_GRANT, region=None))
    regional.upgrade()
    main = state_url(regional)
    assert traces(main, (), EU_TEXTS) == []
    assert sorted(set(traces(stores["EU"], (), EU_TEXTS))) == [  # and the audit entries'
        "audit_personal.details", "privacy_consent_contents.source",
        "privacy_purpose_grant_contents.source"]
    with regional.read_session() as session:
        consent = get_consent(session, eu, "acme")
        assert (set(consent.categories), consent.source) == ({"location", "technical"},
                                                             EU_CONSENT)
        [grant] = consent_history(session, "acme", eu)
        assert (set(grant.categories), grant.person) == ({"location"}, "owner")


# --- Data Act grants and access logs -----------------------------------------------------------

EU_OWNER_NAME = "eu-owner-anna"


def _data_act(database: Database, cars: dict[str, VehicleCredentials]) -> dict[str, str]:
    """The EU car's owner shares diagnostics with a repairer, who reads them twice (once
    refused: a container not granted); the owner's and repairer's client ids."""
    eu = cars["eu1"].vin
    with database.session() as session:
        owner = create_client(session, tenant="acme", role=Role.OWNER, name=EU_OWNER_NAME,
                              actor="test").client.client_id
        repairer = create_client(session, tenant="acme", role=Role.THIRD_PARTY_APP,
                                 actor="test").client.client_id
        add_owner(session, tenant="acme", vin=eu, client_id=owner, relation="owner",
                  actor="test")
        grant_containers(session, principal=_principal(owner, Role.OWNER), vin=eu,
                         recipient=repairer, containers=["diagnostics"], valid_days=7,
                         container_set=load_containers(), catalog=builtin_catalog())
    reader = _principal(repairer, Role.THIRD_PARTY_APP, frozenset({"diagnostics"}))
    with database.session() as session:
        access = decide_access(session, reader, eu, container_set=load_containers(),
                               catalog=builtin_catalog(), containers=["diagnostics"])
    log_access(database, reader, eu, action="latest", access=access, value_count=3,
               byte_count=777_331)
    log_access(database, reader, eu, action="latest", containers=["location"],
               error=PermissionDeniedError("not granted"))
    return {"owner": owner, "repairer": repairer}


def _principal(client_id: str, role: Role, containers: frozenset[str] = frozenset()
               ) -> Principal:
    return Principal(client_id, "acme", role, frozenset(), "t",
                     datetime.now(UTC) + timedelta(hours=1), containers)


def test_an_eu_vehicles_data_act_grants_and_access_log_land_only_in_the_eu_store(
    regional: Database, cars: dict[str, VehicleCredentials], stores: dict[str, str]
) -> None:
    eu = cars["eu1"].vin
    ids = _data_act(regional, cars)
    who = (ids["owner"], ids["repairer"])
    assert sorted(set(traces(stores["EU"], (777_331,), who))) == [
        "audit_personal.actor", "audit_personal.details",
        "privacy_data_act_access_contents.byte_count",
        "privacy_data_act_access_contents.client_id",
        "privacy_data_act_grant_contents.granted_by",
        "privacy_vehicle_owners.client_id",
    ]
    assert traces(stores["US"], (777_331,), who) == []
    # The state database names the clients as clients (the audit log as the clients it
    # created; the repairer as the recipient a ledger grant is selected by and metered),
    # never in the Data Act tables nor as the vehicle's owner.
    assert {t.split(".")[0] for t in traces(state_url(regional), (777_331,), who)} <= {
        "clients", "audit_log", "privacy_purpose_grants", "privacy_data_act_metering"}
    with regional.read_session() as session:
        listed = session.execute(sa.select(
            DataActAccessRow.client_id, DataActAccessRow.containers,
            DataActAccessRow.byte_count, DataActAccessRow.outcome, DataActAccessRow.region,
        ).order_by(DataActAccessRow.access_id)).all()
        assert [tuple(r) for r in listed] == [("", "", 0, "allowed", "EU"),
                                              ("", "", 0, "refused", "EU")]
        [grant] = data_act_grants(session, "acme", eu)
        assert (grant.containers, grant.granted_by) == (("diagnostics",), ids["owner"])
        log = access_log(session, "acme", eu)
        assert [(e["client_id"], e["containers"], e["bytes"], e["outcome"], e["error"])
                for e in log] == [
            (ids["repairer"], ["location"], 0, "refused", "PermissionDeniedError"),
            (ids["repairer"], ["diagnostics"], 777_331, "allowed", None)]


def test_owner_bindings_live_in_the_region_store_and_an_upgrade_moves_older_ones(
    regional: Database, cars: dict[str, VehicleCredentials], stores: dict[str, str]
) -> None:
    eu = cars["eu1"].vin
    owner = _data_act(regional, cars)["owner"]
    table = OWNERS
    with regional.read_session() as session:
        assert session.execute(sa.select(table)).all() == []
        assert owned_vins(session, "acme", owner) == [eu]
        assert [(b.vin, b.client_id) for b in list_owners(session, "acme")] == [(eu, owner)]
    with regional.session() as session:  # as written before bindings were kept per region
        store = region_session(session, "EU")
        row = dict(store.execute(sa.select(table)).one()._mapping)
        store.execute(sa.delete(table))
        session.execute(sa.insert(table).values(**row))
    with regional.read_session() as session:  # still found before the upgrade moves it
        assert owner_binding(session, "acme", owner, eu).relation == "owner"
    regional.upgrade()
    with regional.read_session() as session:
        assert session.execute(sa.select(table)).all() == []
        assert owned_vins(session, "acme", owner) == [eu]
    assert "privacy_vehicle_owners.client_id" in traces(stores["EU"], (), (owner,))
    assert traces(stores["US"], (), (owner,)) == []


def test_erasure_reaches_data_act_grants_and_access_logs_in_the_region_store(
    regional: Database, cars: dict[str, VehicleCredentials], stores: dict[str, str],
    tmp_path: Path,
) -> None:
    eu = cars["eu1"].vin
    ids = _data_act(regional, cars)
    lake = Lake(tmp_path / "data")
    try:
        access = serve_access(regional, lake, tenant="acme", vins=[eu],
                              archive_root=tmp_path / "archives", actor="test")
        archive = tmp_path / "archives" / access.request_id / "data"
        log = json.loads((archive / "privacy_data_act_access_contents.json").read_text())
        assert sorted(r["byte_count"] for r in log) == [0, 777_331]
        serve_erasure(regional, lake, tenant="acme", vins=[eu], actor="test")
    finally:
        lake.close()
    assert traces(stores["EU"], (777_331,), (eu, ids["owner"], ids["repairer"])) == []
