"""``/v1/commerce`` over HTTP: a catalog is written and read, a feature bought and invoiced in
exact minor units, a payment event replayed changes nothing, a declined card buys nothing —
and each tenant reaches only its own subscriptions, invoices and vehicles; a reader cannot
sell."""

from __future__ import annotations

import random
import re
import zlib
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from fastapi.testclient import TestClient

from drivetrain.cloud.commerce import TestPaymentProvider, run_commerce
from drivetrain.cloud.commerce.catalog import example_catalog
from drivetrain.cloud.fleet import provision_vehicle
from drivetrain.cloud.infra import Database
from drivetrain.cloud.twins import apply_reported, set_ecu
from drivetrain.core.crypto import SigningKey
from drivetrain.core.entitlement_twin import FeatureReport

CATALOG = example_catalog()
CLOUD = SigningKey.from_seed(b"commerce-api-cloud-key-000000000")


def _pdf_text(document: bytes) -> bytes:
    """The page content of a PDF, its compressed streams inflated."""
    out = []
    for match in re.finditer(rb"stream\r?\n(.*?)\r?\nendstream", document, re.DOTALL):
        try:
            out.append(zlib.decompress(match.group(1)))
        except zlib.error:
            out.append(match.group(1))
    return b"".join(out)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def setup(database: Database, new_tenant: Callable[[str], Any],
          new_client: Callable[..., Any], get_token: Callable[..., str]) -> dict[str, Any]:
    acme_admin = new_tenant("acme")
    globex_admin = new_tenant("globex")
    rng = random.Random(3)
    with database.session() as session:
        vins = {tenant: provision_vehicle(session, tenant=tenant, model="compact-bev",
                                          region="EU", cloud_key=CLOUD.verify_key,
                                          actor="test", rng=rng)[0].vin
                for tenant in ("acme", "globex")}
        for tenant, vin in vins.items():  # the boost needs VCU software 5 or newer
            set_ecu(session, vin, "VCU", tenant=tenant, hardware_id=None,
                    software_version="5.2.1", actor="test")
    return {
        "vins": vins,
        "seller": bearer(get_token(new_client(acme_admin, "admin"))),
        "reader": bearer(get_token(new_client(acme_admin, "read_only"))),
        "globex": bearer(get_token(new_client(globex_admin, "admin"))),
    }


def test_a_feature_is_sold_invoiced_and_reported_per_region(
    client: TestClient, setup: dict[str, Any],
) -> None:
    seller, vin = setup["seller"], setup["vins"]["acme"]
    put = client.put("/v1/commerce/catalog", headers=seller, json=CATALOG)
    assert put.status_code == 200, put.text
    assert put.json()["version"] == 1
    assert client.get("/v1/commerce/catalog", headers=setup["reader"]).json()["offers"][0][
        "prices"]["EU"] == {"amount": "9.99", "currency": "EUR"}
    assert client.put("/v1/commerce/accounts/driver:alice/payment-method", headers=seller,
                      json={"payment_method": "test_card_ok"}).status_code == 200
    bought = client.post("/v1/commerce/subscriptions", headers=seller,
                         json={"vin": vin, "account_id": "driver:alice",
                               "offer_id": "boost-monthly"})
    assert bought.status_code == 201, bought.text
    sub = bought.json()
    assert (sub["status"], sub["price"], sub["price_minor"]) == ("active", "9.99", 999)
    invoices = client.get("/v1/commerce/invoices", headers=setup["reader"]).json()["invoices"]
    assert [(i["total_minor"], i["total"], i["status"]) for i in invoices] == \
        [(1189, "11.89", "paid")]
    html = client.get(f"/v1/commerce/invoices/{invoices[0]['invoice_id']}/html",
                      headers=setup["reader"])
    assert html.status_code == 200 and "11.89 EUR" in html.text
    pdf = client.get(f"/v1/commerce/invoices/{invoices[0]['invoice_id']}/pdf",
                     headers=setup["reader"])
    assert pdf.status_code == 200 and pdf.headers["content-type"] == "application/pdf"
    assert pdf.content.startswith(b"%PDF-") and b"11.89 EUR" in _pdf_text(pdf.content)
    revenue = client.get("/v1/commerce/revenue", headers=setup["reader"]).json()
    assert revenue["regions"] == [{"region": "EU", "currency": "EUR", "revenue_minor": 999,
                                   "revenue": "9.99"}]
    assert revenue["subscriptions"] == {"active": 1}
    event = {"provider": "bank", "event_id": "evt-1", "kind": "refund",
             "invoice_id": invoices[0]["invoice_id"], "amount_minor": 100, "currency": "EUR"}
    first = client.post("/v1/commerce/payment-events", headers=seller, json=event).json()
    again = client.post("/v1/commerce/payment-events", headers=seller, json=event).json()
    assert (first["replayed"], again["replayed"]) == (False, True)
    refunded = client.get(f"/v1/commerce/invoices/{invoices[0]['invoice_id']}",
                          headers=setup["reader"]).json()
    assert refunded["refunded_minor"] == 100
    cancelled = client.post(f"/v1/commerce/subscriptions/{sub['subscription_id']}/cancel",
                            headers=seller, json={})
    assert cancelled.json()["cancel_at_period_end"] is True


def test_a_declined_card_is_a_conflict_and_a_float_price_is_refused(
    client: TestClient, setup: dict[str, Any],
) -> None:
    seller, vin = setup["seller"], setup["vins"]["acme"]
    client.put("/v1/commerce/catalog", headers=seller, json=CATALOG)
    client.put("/v1/commerce/accounts/driver:bob/payment-method", headers=seller,
               json={"payment_method": "test_card_declined"})
    declined = client.post("/v1/commerce/subscriptions", headers=seller,
                           json={"vin": vin, "account_id": "driver:bob",
                                 "offer_id": "boost-monthly"})
    assert declined.status_code == 409 and "card_declined" in declined.json()["detail"]
    assert client.get("/v1/commerce/subscriptions", headers=seller).json() == \
        {"subscriptions": []}
    bad = {**CATALOG, "offers": [{**CATALOG["offers"][0],
                                  "prices": {"EU": {"amount": 9.99, "currency": "EUR"}}}]}
    refused = client.put("/v1/commerce/catalog", headers=seller, json=bad)
    assert refused.status_code == 400 or refused.status_code == 422
    assert "offers[0].prices.EU.amount" in refused.json()["detail"]


def test_each_tenant_reaches_only_its_own(client: TestClient, setup: dict[str, Any]) -> None:
    seller = setup["seller"]
    client.put("/v1/commerce/catalog", headers=seller, json=CATALOG)
    client.put("/v1/commerce/accounts/driver:alice/payment-method", headers=seller,
               json={"payment_method": "test_card_ok"})
    sub = client.post("/v1/commerce/subscriptions", headers=seller,
                      json={"vin": setup["vins"]["acme"], "account_id": "driver:alice",
                            "offer_id": "boost-monthly"}).json()
    other = setup["globex"]
    assert client.get(f"/v1/commerce/subscriptions/{sub['subscription_id']}",
                      headers=other).status_code == 404
    assert client.post(f"/v1/commerce/subscriptions/{sub['subscription_id']}/cancel",
                       headers=other, json={"at_period_end": False}).status_code == 404
    assert client.get(f"/v1/commerce/vehicles/{setup['vins']['acme']}/entitlements",
                      headers=other).status_code == 404
    stolen = client.post("/v1/commerce/subscriptions", headers=seller,
                         json={"vin": setup["vins"]["globex"], "account_id": "driver:alice",
                               "offer_id": "boost-monthly"})
    assert stolen.status_code == 404
    assert client.post("/v1/commerce/subscriptions", headers=setup["reader"],
                       json={"vin": setup["vins"]["acme"], "account_id": "driver:alice",
                             "offer_id": "boost-monthly"}).status_code == 403


def test_an_upgrade_and_a_partners_statement_over_http(
    client: TestClient, setup: dict[str, Any],
) -> None:
    seller, vin = setup["seller"], setup["vins"]["acme"]
    client.put("/v1/commerce/catalog", headers=seller, json=CATALOG)
    client.put("/v1/commerce/accounts/driver:alice/payment-method", headers=seller,
               json={"payment_method": "test_card_ok"})
    monthly = client.post("/v1/commerce/subscriptions", headers=seller, json={
        "vin": vin, "account_id": "driver:alice", "offer_id": "boost-monthly"}).json()
    client.post("/v1/commerce/subscriptions", headers=seller, json={
        "vin": vin, "account_id": "driver:alice", "offer_id": "range-monthly"})
    changed = client.post(f"/v1/commerce/subscriptions/{monthly['subscription_id']}/change",
                          headers=seller, json={"offer_id": "boost-yearly"})
    assert changed.status_code == 200, changed.text
    assert (changed.json()["offer_id"], changed.json()["status"]) == ("boost-yearly", "active")
    old = client.get(f"/v1/commerce/subscriptions/{monthly['subscription_id']}",
                     headers=seller).json()
    assert old["end_reason"] == "changed to boost-yearly"
    statement = client.get("/v1/commerce/partners/routewise/statement", headers=seller,
                           params={"since": "2000-01-01T00:00:00Z",
                                   "until": "2100-01-01T00:00:00Z"}).json()
    assert statement["share_minor"] == {"EUR": 149}  # 30 % of 4.99 EUR, rounded down
    assert [line["amount_minor"] for line in statement["lines"]] == [499]


def test_a_subscription_shows_the_features_its_car_confirmed_through_the_twin(
    client: TestClient, setup: dict[str, Any], database: Database,
) -> None:
    seller, reader, vin = setup["seller"], setup["reader"], setup["vins"]["acme"]
    client.put("/v1/commerce/catalog", headers=seller, json=CATALOG)
    client.put("/v1/commerce/accounts/driver:alice/payment-method", headers=seller,
               json={"payment_method": "test_card_ok"})
    sub = client.post("/v1/commerce/subscriptions", headers=seller,
                      json={"vin": vin, "account_id": "driver:alice",
                            "offer_id": "boost-monthly"}).json()
    run_commerce(database, CLOUD, TestPaymentProvider())
    path = f"/v1/commerce/subscriptions/{sub['subscription_id']}"
    assert client.get(path, headers=reader).json()["confirmed_by_car"] == []
    (grant,) = client.get(f"/v1/commerce/vehicles/{vin}/entitlements",
                          headers=reader).json()["entitlements"]
    assert (grant["twin"], grant["car_state"]) == ("pending", None)
    report = FeatureReport("performance_boost", grant["token"], grant["seq"],
                           int(datetime.fromisoformat(grant["expires_at"]).timestamp()),
                           "enabled")
    with database.session() as session:  # the car's report, as ingestion stores it
        apply_reported(session, {vin: {p: (v, datetime.now(UTC))
                                       for p, v in report.twin_values().items()}})
    assert client.get(path, headers=reader).json()["confirmed_by_car"] == ["performance_boost"]
    listed = client.get("/v1/commerce/subscriptions", headers=reader).json()["subscriptions"]
    assert [s["confirmed_by_car"] for s in listed] == [["performance_boost"]]
    entitlements = client.get(f"/v1/commerce/vehicles/{vin}/entitlements", headers=reader).json()
    (grant,) = entitlements["entitlements"]
    assert (grant["twin"], grant["car_state"], grant["car_seq"]) == ("confirmed", "enabled", 1)
    assert entitlements["reported"] == ["performance_boost"]
