"""A tenant's catalog, a paying driver and the connected fleet for the commerce tests."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from rig import CLOUD_KEY, Rig

from drivetrain.cloud.commerce import (
    TestPaymentProvider,
    put_catalog,
    run_commerce,
    set_payment_method,
)
from drivetrain.cloud.commerce.catalog import example_catalog
from drivetrain.cloud.commerce.runner import CommerceRound
from drivetrain.cloud.infra import Database
from drivetrain.cloud.twins import set_ecu

CATALOG: dict[str, Any] = example_catalog()
LEASE_S = 3600.0


class Shop:
    """Tenants ``acme`` (2 EU cars, 1 US car) and ``globex``; acme sells ``CATALOG``; the
    driver ``driver:alice`` pays with a working card, ``driver:bob`` with a declined one."""

    def __init__(self, database: Database) -> None:
        self.rig = Rig(database)
        self.database = database
        self.provider = TestPaymentProvider()
        with database.session() as session:
            put_catalog(session, tenant="acme", actor="test", document=CATALOG)
            for vin in self.rig.vins:  # the boost needs VCU software 5 or newer
                set_ecu(session, vin, "VCU", tenant="acme", hardware_id=None,
                        software_version="5.2.1", actor="test")
            for account, method in (("driver:alice", "test_card_ok"),
                                    ("driver:bob", "test_card_declined")):
                set_payment_method(session, tenant="acme", actor="test", account_id=account,
                                   payment_method=method, provider=self.provider)

    def commerce_round(self, now: datetime) -> CommerceRound:
        return run_commerce(self.database, CLOUD_KEY, self.provider, now=now, lease_s=LEASE_S)

    def deliver(self, now: datetime) -> None:
        """The dispatcher sends what commerce queued; the cars act and acknowledge."""
        self.rig.dispatcher.run_once(now)
        self.rig.vehicles_act(int(now.timestamp() * 1e9))
        self.rig.dispatcher.run_once(now)
