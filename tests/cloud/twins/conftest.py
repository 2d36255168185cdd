"""Fixtures for the twins domain: a small registered fleet in two tenants, on both engines;
for the residency tests, a state database with EU and US stores of their own and a vehicle in
each."""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path

import pytest
from residency_support import CLOUD_KEY
from twins_support import Fleet, provision

from drivetrain.cloud.fleet import VehicleCredentials, provision_vehicle
from drivetrain.cloud.infra import Database, create_tenant
from drivetrain.cloud.infra.testing import temporary_postgres_schema
from drivetrain.cloud.privacy import set_consent
from drivetrain.core.vss import PRIVACY_CATEGORIES


@pytest.fixture
def fleet(database: Database) -> Fleet:
    """Tenants ``acme`` (3 EU, 2 US vehicles) and ``globex`` (1 EU vehicle)."""
    with database.session() as session:
        create_tenant(session, "acme", actor="test")
        create_tenant(session, "globex", actor="test")
    acme = provision(database, "acme", ["EU", "EU", "EU", "US", "US"], seed=1)
    globex = provision(database, "globex", ["EU"], seed=2)
    return Fleet(acme=acme, globex=globex)


@pytest.fixture
def stores(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[dict[str, str]]:
    """The EU and US stores: SQLite files; on PostgreSQL the EU store is a PostgreSQL database
    of its own (a schema of the test server) and the US store a SQLite file."""
    urls = {"EU": f"sqlite:///{tmp_path / 'eu.db'}", "US": f"sqlite:///{tmp_path / 'us.db'}"}
    if backend == "sqlite":
        yield urls
        return
    with temporary_postgres_schema(request.getfixturevalue("postgres_worker_database")) as eu:
        yield {**urls, "EU": eu}


@pytest.fixture
def regional(database_url: str, stores: dict[str, str]) -> Iterator[Database]:
    """A migrated state database whose EU and US personal state have stores of their own."""
    database = Database(database_url, region_urls=stores)
    database.upgrade()
    yield database
    database.dispose()


@pytest.fixture
def cars(regional: Database) -> dict[str, VehicleCredentials]:
    creds = {}
    with regional.session() as session:
        create_tenant(session, "acme", actor="test")
        for name, region in (("eu1", "EU"), ("us1", "US")):
            _, creds[name] = provision_vehicle(
                session,
                tenant="acme",
                model="compact-bev",
                region=region,
                cloud_key=CLOUD_KEY.verify_key,
                actor="test",
                rng=random.Random(name),
            )
            set_consent(
                session,
                vin=creds[name].vin,
                tenant="acme",
                categories=PRIVACY_CATEGORIES,
                source="test",
                actor="test",
            )
    return creds
