"""Fleet registry and provisioning against a real database (both engines)."""

from __future__ import annotations

import random
import stat
from pathlib import Path

import pytest

from drivetrain.cloud.fleet import (
    VehicleCredentials,
    count_vehicles,
    generate_vin,
    get_vehicle,
    list_vehicles,
    load_or_create_cloud_key,
    provision_vehicle,
    retire_vehicle,
    vin_check_digit,
)
from drivetrain.cloud.infra import Database, create_tenant, list_audit
from drivetrain.core.crypto import SigningKey
from drivetrain.core.errors import BadInputError, ConfigurationError, ConflictError, NotFoundError

CLOUD = SigningKey.from_seed(b"c" * 32)


def _tenants(database: Database, *names: str) -> None:
    with database.session() as session:
        for name in names:
            create_tenant(session, name, actor="test")


def test_generated_vins_carry_a_valid_check_digit() -> None:
    assert vin_check_digit("1M8GDM9AXKP042788") == "X"  # the 49 CFR 565 worked example
    rng = random.Random(3)
    for _ in range(200):
        vin = generate_vin(rng)
        assert len(vin) == 17 and vin[8] == vin_check_digit(vin)
        assert not set("IOQ") & set(vin)


def test_provisioned_vehicle_is_registered_with_its_public_key_only(database: Database) -> None:
    _tenants(database, "acme")
    with database.session() as session:
        vehicle, credentials = provision_vehicle(
            session, tenant="acme", model="compact-bev", region="EU",
            cloud_key=CLOUD.verify_key, actor="test", rng=random.Random(1),
        )
    with database.session() as session:
        stored = get_vehicle(session, vehicle.vin)
        entries = list_audit(session, "acme")
    assert stored.verify_key == credentials.signing_key.verify_key
    assert stored.region == "EU" and stored.status == "active"
    assert [e.action for e in entries] == ["tenant.create", "fleet.vehicle.register"]


def test_duplicate_vin_is_a_conflict(database: Database) -> None:
    _tenants(database, "acme")
    with database.session() as session:
        vehicle, _ = provision_vehicle(
            session, tenant="acme", model="suv-bev", region="US", cloud_key=CLOUD.verify_key, actor="t"
        )
    with database.session() as session, pytest.raises(ConflictError, match=vehicle.vin):
        provision_vehicle(
            session, tenant="acme", model="suv-bev", region="US", cloud_key=CLOUD.verify_key,
            actor="t", vin=vehicle.vin,
        )


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [("vin", "WDD123", "not a VIN"), ("region", "MARS", "region 'MARS'"), ("model", "Bad Model", "model")],
)
def test_malformed_registration_is_refused_naming_the_field(
    database: Database, field: str, value: str, message: str
) -> None:
    _tenants(database, "acme")
    args = {"vin": "DTVJETH88T571PG8B", "region": "EU", "model": "compact-bev", field: value}
    with database.session() as session, pytest.raises(BadInputError, match=message):
        provision_vehicle(session, tenant="acme", cloud_key=CLOUD.verify_key, actor="t", **args)
    with database.session() as session:
        assert list_vehicles(session) == []


def test_a_vehicle_of_a_tenant_that_does_not_exist_is_refused(database: Database) -> None:
    _tenants(database, "acme")
    with database.session() as session, pytest.raises(NotFoundError, match="tenant 'nobody'"):
        provision_vehicle(
            session, tenant="nobody", model="compact-bev", region="EU",
            cloud_key=CLOUD.verify_key, actor="t",
        )
    with database.session() as session:
        assert list_vehicles(session) == []


def test_another_tenants_vehicle_is_not_found(database: Database) -> None:
    _tenants(database, "acme", "globex")
    with database.session() as session:
        vehicle, _ = provision_vehicle(
            session, tenant="acme", model="compact-bev", region="CN", cloud_key=CLOUD.verify_key, actor="t"
        )
    with database.session() as session:
        assert get_vehicle(session, vehicle.vin, tenant="acme").vin == vehicle.vin
        with pytest.raises(NotFoundError):
            get_vehicle(session, vehicle.vin, tenant="globex")
        assert list_vehicles(session, tenant="globex") == []
        assert count_vehicles(session, tenant="acme") == {"CN": 1}
        assert retire_vehicle(session, vehicle.vin, actor="t").status == "retired"


def test_credentials_file_round_trips_and_is_private(tmp_path: Path) -> None:
    credentials = VehicleCredentials(
        vin="DTVJETH88T571PG8B", model="compact-bev", region="EU", tenant="acme",
        signing_key=SigningKey.generate(), cloud_key=CLOUD.verify_key,
    )
    path = tmp_path / "vehicle.json"
    credentials.write(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    loaded = VehicleCredentials.read(path)
    assert loaded.signing_key.key_id == credentials.signing_key.key_id
    assert loaded.cloud_key == CLOUD.verify_key
    path.write_text('{"version": 1, "vin": 5}')
    with pytest.raises(BadInputError, match="'vin'"):
        VehicleCredentials.read(path)


def test_cloud_key_is_created_once_in_embedded_mode_and_required_in_production(tmp_path: Path) -> None:
    path = tmp_path / "keys" / "cloud.pem"
    with pytest.raises(ConfigurationError, match="does not exist"):
        load_or_create_cloud_key(path, create=False)
    first = load_or_create_cloud_key(path, create=True)
    assert load_or_create_cloud_key(path, create=False).key_id == first.key_id
    path.chmod(0o644)
    with pytest.raises(ConfigurationError, match="chmod 600"):
        load_or_create_cloud_key(path, create=False)
