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
from drivetrain.cloud.commerce.runner import CommerceRound
from drivetrain.cloud.infra import Database

CATALOG: dict[str, Any] = {
    "features": [
        {"code": "performance_boost", "name": "Performance boost",
         "requires": 'model == "compact-bev"'},
        {"code": "heated_seats", "name": "Heated seats"},
        {"code": "range_assistant", "name": "AI range assistant", "binding": "account",
         "provider": "routewise", "revenue_share": "0.30"},
        {"code": "track_mode", "name": "Track mode", "requires": 'model == "roadster"'},
    ],
    "offers": [
        {"id": "boost-monthly", "features": ["performance_boost"], "billing": "monthly",
         "prices": {"EU": {"amount": "9.99", "currency": "EUR"},
                    "US": {"amount": "10.99", "currency": "USD"}}, "grace_s": 600},
        {"id": "seats-yearly", "features": ["heated_seats"], "billing": "yearly",
         "prices": {"EU": {"amount": "99.00", "currency": "EUR"}}, "trial_days": 14},
        {"id": "range-monthly", "features": ["range_assistant"], "billing": "monthly",
         "prices": {"EU": {"amount": "4.99", "currency": "EUR"}}},
        {"id": "charging-usage", "features": ["heated_seats"], "billing": "usage",
         "unit": "hour", "prices": {"EU": {"amount": "0.50", "currency": "EUR"}}},
        {"id": "track-once", "features": ["track_mode"], "billing": "one_off",
         "prices": {"EU": {"amount": "199.00", "currency": "EUR"}}},
    ],
    "tax_rates": {"EU": "0.19", "US": "0.07"},
}
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
