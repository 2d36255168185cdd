"""Pseudonyms and consent against a real database (both engines)."""

from __future__ import annotations

import pytest

from drivetrain.cloud.infra import Database, create_tenant
from drivetrain.cloud.privacy import (
    DEFAULT_CONSENT,
    consent_map,
    get_consent,
    pseudonymiser,
    set_consent,
    vehicle_pseudonym,
)
from drivetrain.core.errors import BadInputError, NotFoundError

VIN = "DTVJETH88T571PG8B"


@pytest.fixture
def tenants(database: Database) -> Database:
    with database.session() as session:
        create_tenant(session, "acme", actor="test")
        create_tenant(session, "globex", actor="test")
    return database


def test_pseudonyms_are_stable_per_tenant_and_unlinkable_across_tenants(tenants: Database) -> None:
    with tenants.session() as session:
        first = vehicle_pseudonym(session, "acme", VIN)
    with tenants.session() as session:
        assert vehicle_pseudonym(session, "acme", VIN) == first
        assert vehicle_pseudonym(session, "globex", VIN) != first
        assert VIN not in first and len(first) == 24
        assert "key" not in repr(pseudonymiser(session, "acme")).lower().replace("pseudonymiser", "")


def test_unknown_tenant_has_no_pseudonym_key(tenants: Database) -> None:
    with tenants.session() as session, pytest.raises(NotFoundError):
        pseudonymiser(session, "nobody")


def test_consent_in_a_tenant_that_does_not_exist_is_refused(tenants: Database) -> None:
    with tenants.session() as session, pytest.raises(NotFoundError, match="tenant 'nobody'"):
        set_consent(session, vin=VIN, tenant="nobody", categories=["technical"], source="x", actor="t")
    with tenants.session() as session:
        assert get_consent(session, VIN, "acme").updated_at is None


def test_consent_defaults_to_technical_data_and_can_be_widened(tenants: Database) -> None:
    with tenants.session() as session:
        assert get_consent(session, VIN, "acme").categories == DEFAULT_CONSENT
        set_consent(
            session, vin=VIN, tenant="acme", categories=["technical", "location"],
            source="driver-app", actor="test",
        )
    with tenants.session() as session:
        assert get_consent(session, VIN, "acme").categories == {"technical", "location"}
        assert consent_map(session, [VIN, "DTV00000000000000"]) == {
            VIN: {"technical", "location"}, "DTV00000000000000": DEFAULT_CONSENT,
        }


def test_unknown_category_is_refused_and_changes_nothing(tenants: Database) -> None:
    with tenants.session() as session, pytest.raises(BadInputError, match="'gps'"):
        set_consent(session, vin=VIN, tenant="acme", categories=["gps"], source="x", actor="t")
    with tenants.session() as session:
        assert get_consent(session, VIN, "acme").source == "default"
