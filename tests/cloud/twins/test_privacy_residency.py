"""Residency of consent: a registered vehicle's consent (categories, source) and the personal
part of its ledger grants (categories, person, source) live only in the store of its region;
the state database keeps the rows that list them without it. Reads, ingestion's consent
filter, access archives, erasure, export and import, and upgrades reach them there."""

from __future__ import annotations

import json
from pathlib import Path

import sqlalchemy as sa
from residency_support import LATITUDE, SOC, state_url, telemetry, traces

from drivetrain.cloud.fleet import VehicleCredentials
from drivetrain.cloud.infra import Database
from drivetrain.cloud.infra.region_stores import region_session
from drivetrain.cloud.ingest import IngestPipeline, MemoryLake
from drivetrain.cloud.ingest.sinks import TwinsReportedState
from drivetrain.cloud.lake import Lake
from drivetrain.cloud.portability.rights import serve_access, serve_erasure
from drivetrain.cloud.portability.service import export_data, import_bundle
from drivetrain.cloud.portability.tables import Subject
from drivetrain.cloud.privacy import consent_map, get_consent, set_consent
from drivetrain.cloud.privacy.ledger import active_grants, consent_history, give_consent
from drivetrain.cloud.privacy.models import ConsentRow, PurposeGrantRow
from drivetrain.cloud.twins import get_twin

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
    assert sorted(traces(stores["EU"], (), EU_TEXTS)) == [
        "privacy_consent_contents.source", "privacy_purpose_grant_contents.source"]
    assert traces(stores["US"], (), EU_TEXTS) == []
    # In the state database only the audit log names them (the record of each change).
    assert set(traces(state_url(regional), (), EU_TEXTS)) == {"audit_log.details"}
    assert sorted(traces(stores["US"], (), (US_CONSENT, US_GRANT))) == [
        "privacy_consent_contents.source", "privacy_purpose_grant_contents.source"]
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
    pipeline = IngestPipeline(regional, MemoryLake(), TwinsReportedState(), vehicle_cache_ttl_s=0)
    pipeline.process([telemetry(cars["eu1"], {LATITUDE: 48.1, SOC: 55.0})])
    with regional.read_session() as session:
        twin = get_twin(session, cars["eu1"].vin, tenant="acme")
    assert sorted(twin.reported) == [SOC]


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
    assert sorted(traces(stores["US"], (), (US_CONSENT, US_GRANT))) == [
        "privacy_consent_contents.source", "privacy_purpose_grant_contents.source"]


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
    assert set(traces(main, (), EU_TEXTS)) == {"audit_log.details"}
    assert sorted(traces(stores["EU"], (), EU_TEXTS)) == [
        "privacy_consent_contents.source", "privacy_purpose_grant_contents.source"]
    with regional.read_session() as session:
        consent = get_consent(session, eu, "acme")
        assert (set(consent.categories), consent.source) == ({"location", "technical"},
                                                             EU_CONSENT)
        [grant] = consent_history(session, "acme", eu)
        assert (set(grant.categories), grant.person) == ({"location"}, "owner")
