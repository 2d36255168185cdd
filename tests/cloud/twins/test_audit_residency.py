"""Residency of the audit log: an entry about one registered vehicle (a consent change, a
ledger grant, an owner binding, a Data Act grant or read, a read of its twin) keeps who did
what to it in the vehicle's region store; the state database's hash chain keeps a pointer.
The audit API's reader gets the whole entry back; an erasure leaves the pointer only."""

from __future__ import annotations

import json
from pathlib import Path

import sqlalchemy as sa
from residency_support import state_url, traces
from test_privacy_residency import _data_act, _principal

from drivetrain.cloud.fleet import VehicleCredentials
from drivetrain.cloud.infra import (
    Database,
    Role,
    create_client,
    list_audit,
    record_audit,
    verify_chain,
)
from drivetrain.cloud.infra.audit_regional import REGIONAL_ACTOR, AuditPersonalRow
from drivetrain.cloud.infra.models import AuditEntryRow
from drivetrain.cloud.infra.region_stores import region_session
from drivetrain.cloud.lake import Lake
from drivetrain.cloud.portability.rights import serve_erasure
from drivetrain.cloud.privacy import set_consent
from drivetrain.cloud.privacy.ledger import give_consent, withdraw_consent
from drivetrain.cloud.privacy.state_reads import bind_state_read

EU_SOURCE = "eu-consent-kiosk.42"
PERSONAL_ACTIONS = ("privacy.consent.set", "privacy.consent.give", "privacy.consent.withdraw",
                    "privacy.owner.add", "privacy.data_act.grant", "privacy.read",
                    "privacy.read.refused")


def _everything_personal(database: Database, cars: dict[str, VehicleCredentials]
                         ) -> dict[str, str]:
    """Consent set, given and withdrawn; then the Data Act flow of the residency tests (an
    owner bound, a repairer granted diagnostics and reading them, once refused) and a read of
    the twin by the tenant's operator: the ids involved."""
    vin = cars["eu1"].vin
    with database.session() as session:
        set_consent(session, vin=vin, tenant="acme", categories=["technical"],
                    source=EU_SOURCE, actor="cli:eu-operator")
        grant = give_consent(session, tenant="acme", vin=vin, purpose="insurance",
                             categories=["location"], person="driver", source=EU_SOURCE,
                             actor="cli:eu-operator")
        withdraw_consent(session, tenant="acme", grant_id=grant.grant_id, actor="cli:eu-driver")
        analyst = create_client(session, tenant="acme", role=Role.FLEET_OPERATOR, actor="test"
                                ).client.client_id
    ids = _data_act(database, cars)
    bind_state_read(database, _principal(analyst, Role.FLEET_OPERATOR), "maintenance",
                    target=f"twin:{vin}", request_id=None, vins=[vin])
    return {**ids, "analyst": analyst}


def test_the_state_databases_audit_log_holds_nothing_personal_of_an_eu_vehicle(
    regional: Database, cars: dict[str, VehicleCredentials], stores: dict[str, str]
) -> None:
    eu = cars["eu1"].vin
    ids = _everything_personal(regional, cars)
    wanted = (eu, EU_SOURCE, "cli:eu-operator", "cli:eu-driver", *ids.values())
    # The state database: no audit entry names the vehicle, a person or what was read ...
    central = [t for t in traces(state_url(regional), (), wanted) if t.startswith("audit")]
    with regional.read_session() as session:
        personal = list(session.scalars(sa.select(AuditEntryRow).where(
            AuditEntryRow.action.in_(PERSONAL_ACTIONS))))
        leaked = [(r.seq, r.action) for r in personal
                  if any(w in f"{r.actor} {r.target} {r.details}" for w in wanted)]
    assert leaked == []
    # ... but for the registry's own record of provisioning it (not personal-state actions).
    assert {t for t in central} <= {"audit_log.target"}
    assert {r.action for r in personal} >= set(PERSONAL_ACTIONS)
    # (the US vehicle's consent, set by the fixture, points to the US store)
    assert {(r.actor, r.target) for r in personal} == {
        (REGIONAL_ACTOR, "region:EU"), (REGIONAL_ACTOR, "region:US")}
    # The EU store holds it all; the US store nothing of it.
    assert "audit_personal.details" in traces(stores["EU"], (), (EU_SOURCE,))
    assert set(traces(stores["EU"], (), (ids["repairer"],))) == {
        "audit_personal.actor", "audit_personal.details",
        "privacy_data_act_access_contents.client_id"}
    assert traces(stores["US"], (), wanted) == []
    with regional.read_session() as session:
        assert verify_chain(session, "acme").ok


def test_the_audit_reader_gets_the_whole_entry_from_the_region_store(
    regional: Database, cars: dict[str, VehicleCredentials]
) -> None:
    eu = cars["eu1"].vin
    ids = _everything_personal(regional, cars)
    with regional.read_session() as session:
        consent = [e for e in list_audit(session, "acme", action="privacy.consent.set")
                   if e.target == f"vehicle:{eu}"][-1]  # the fixture's, then ours
        reads = list_audit(session, "acme", action="privacy.read")
        refused = list_audit(session, "acme", action="privacy.read.refused")
    assert (consent.region, consent.actor, dict(consent.details)) == (
        "EU", "cli:eu-operator", {"categories": ["technical"], "source": EU_SOURCE})
    assert [(e.region, e.actor, e.target) for e in reads] == [
        ("EU", ids["repairer"], f"data-act:{eu}"), ("EU", ids["analyst"], f"twin:{eu}")]
    assert reads[0].details["values"] == 3
    assert [(e.actor, e.details["containers"], e.details["error"]) for e in refused] == [
        (ids["repairer"], ["location"], "PermissionDeniedError")]
    assert consent.to_dict()["region"] == "EU"


def test_an_unregistered_vehicles_entry_stays_whole_and_other_entries_are_untouched(
    regional: Database, cars: dict[str, VehicleCredentials]
) -> None:
    with regional.session() as session:
        set_consent(session, vin="UNREGISTERED00001", tenant="acme", categories=["technical"],
                    source=EU_SOURCE, actor="test")
        record_audit(session, tenant="acme", actor="test", action="test.thing",
                     target="thing:1", details={"n": 1})
    with regional.read_session() as session:
        [entry] = [e for e in list_audit(session, "acme", action="privacy.consent.set")
                   if e.target == "vehicle:UNREGISTERED00001"]
        [other] = list_audit(session, "acme", action="test.thing")
        row = session.scalars(sa.select(AuditEntryRow).where(
            AuditEntryRow.seq == entry.seq, AuditEntryRow.tenant_id == "acme")).one()
    assert (entry.region, entry.details["source"]) == (None, EU_SOURCE)
    assert EU_SOURCE in row.details  # region unknown: nowhere else to keep it
    assert (other.region, other.actor, dict(other.details)) == (None, "test", {"n": 1})


def test_an_edited_personal_part_is_flagged_and_an_erased_one_leaves_the_pointer(
    regional: Database, cars: dict[str, VehicleCredentials], stores: dict[str, str],
    tmp_path: Path,
) -> None:
    eu = cars["eu1"].vin
    ids = _everything_personal(regional, cars)
    with regional.session() as session:
        consent = [e for e in list_audit(session, "acme", action="privacy.consent.set")
                   if e.region == "EU"][-1]
        region_session(session, "EU").execute(
            sa.update(AuditPersonalRow).where(AuditPersonalRow.seq == consent.seq)
            .values(details=json.dumps({"categories": ["location"], "source": EU_SOURCE},
                                       sort_keys=True, separators=(",", ":"))))
    with regional.read_session() as session:
        [edited] = [e for e in list_audit(session, "acme", action="privacy.consent.set")
                    if e.seq == consent.seq]
    assert (edited.actor, edited.details["mismatch"]) == (REGIONAL_ACTOR, True)
    lake = Lake(tmp_path / "data")
    try:
        serve_erasure(regional, lake, tenant="acme", vins=[eu], actor="test")
    finally:
        lake.close()
    assert traces(stores["EU"], (), (eu, EU_SOURCE, *ids.values())) == []
    with regional.read_session() as session:
        after = [e for e in list_audit(session, "acme", limit=1000) if e.region == "EU"]
        assert verify_chain(session, "acme").ok
    assert after and all(e.actor == REGIONAL_ACTOR and set(e.details) == {"region", "personal"}
                         for e in after)
