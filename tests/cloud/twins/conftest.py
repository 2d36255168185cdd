"""Fixtures for the twins domain: a small registered fleet in two tenants, on both engines."""

from __future__ import annotations

import pytest
from twins_support import Fleet, provision

from drivetrain.cloud.infra import Database, create_tenant


@pytest.fixture
def fleet(database: Database) -> Fleet:
    """Tenants ``acme`` (3 EU, 2 US vehicles) and ``globex`` (1 EU vehicle)."""
    with database.session() as session:
        create_tenant(session, "acme", actor="test")
        create_tenant(session, "globex", actor="test")
    acme = provision(database, "acme", ["EU", "EU", "EU", "US", "US"], seed=1)
    globex = provision(database, "globex", ["EU"], seed=2)
    return Fleet(acme=acme, globex=globex)
