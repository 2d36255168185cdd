"""Act "Driver buys a feature": a purchase turns the performance boost on in the car within
seconds; a lapsed payment turns it off after the grace period; revenue per region.

Every piece is real: simulated cars (``drivetrain.sim.fleet``) each run the edge agent, whose
entitlement gate checks each signed token offline and switches the feature in the car's
physics (the boost lets the driver accelerate harder). Through the live HTTP API, as a
storefront would, the act:

1. puts the example catalog (the boost's grace period shortened to a few seconds for the
   demo) and gives each of two drivers — one with an EU car, one with a US car — a card;
2. buys ``boost-monthly`` for both cars (9.99 EUR, 10.99 USD, invoiced with tax and charged
   through the built-in test payment provider) and waits until both cars run the boost: the
   commerce runner signs each car's entitlement, the dispatcher and the twin's desired state
   deliver it; then until each car's twin confirms it (the car reports holding that token);
3. the EU driver's card is declined from now on, and the billing clock of that subscription
   jumps to the end of its month: the renewal is declined and the subscription is
   ``past_due``. The cloud stops renewing the car's entitlement (the demo platform's lease is
   a few seconds); the car, on its own clock, turns the boost off once its last token's
   validity and grace period have run out — no revocation is sent;
4. reads revenue per region.

Its check: both cars turned the boost on (and their acceleration limit rose) and their twins
confirmed it, the EU car
turned it off after the grace period while the US car kept it, the EU car's entitlement was
never revoked (it lapsed), and the act added 19.98 EUR of revenue in the EU — the paid month
and the declined renewal, invoiced and owed until it is paid or dunning voids it — and
10.99 USD in the US.
"""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any, Final

import httpx

from drivetrain.cloud.commerce import payment_provider
from drivetrain.cloud.commerce.catalog import example_catalog
from drivetrain.cloud.commerce.runner import renew_subscription
from drivetrain.demo.acts import Act, ActResult, DemoContext, Figure
from drivetrain.demo.fleet_session import fleet_identities, running_fleet
from drivetrain.sim.fleet import FleetRunner, FleetSpec, SimActuator, plan_fleet

NAME = "driver-buys-a-feature"
TITLE = "Commerce: a driver buys a feature, on in seconds, off after a lapsed payment's grace"
TENANT = "default"
OWNER = "commerce demo"
CREDENTIALS_DIR = "commerce-demo-cars"
FEATURE: Final = "performance_boost"
OFFER: Final = "boost-monthly"
#: The boost's grace period in the demo, seconds (the example catalog gives ten minutes).
DEMO_GRACE_S: Final = 3
HTTP_TIMEOUT_S = 10.0
POLL_S = 0.2
#: Below this budget the act stops after the purchase (the lapse needs a lease and a grace
#: period to run out) and says so.
LAPSE_BUDGET_S: Final = 12.0


def _catalog() -> dict[str, Any]:
    catalog = example_catalog()
    for offer in catalog["offers"]:
        if offer["id"] == OFFER:
            offer["grace_s"] = DEMO_GRACE_S
    return catalog


def _wait(context: DemoContext, done: Any, what: str, fraction: float, limit_s: float
          ) -> float | None:
    """Seconds until ``done()`` held, or None when ``limit_s`` or the act's time ran out."""
    start = time.monotonic()
    while not done():
        elapsed = time.monotonic() - start
        if elapsed > limit_s or context.remaining_s() < 1.0:
            return None
        context.report(what, fraction=fraction)
        time.sleep(POLL_S)
    return time.monotonic() - start


def _boosted(runner: FleetRunner, index: int) -> bool:
    return FEATURE in runner.agents[index].features


def _accel(runner: FleetRunner, index: int) -> float:
    actuator = runner.agents[index].actuator
    assert isinstance(actuator, SimActuator)
    return actuator.accel_limit_mps2


def _confirmed(http: httpx.Client, sub: dict[str, Any]) -> bool:
    """True once the car confirmed the subscription's feature through its twin."""
    read = http.get(f"/v1/commerce/subscriptions/{sub['subscription_id']}").json()
    return FEATURE in (read.get("confirmed_by_car") or [])


def _revenue(http: httpx.Client) -> dict[str, int]:
    return {r["region"]: r["revenue_minor"]
            for r in http.get("/v1/commerce/revenue").json()["regions"]}


def _end_live(http: httpx.Client, vin: str) -> None:
    """A kept data dir may hold an earlier run's subscriptions for these cars: end them."""
    subs = http.get("/v1/commerce/subscriptions", params={"vin": vin}).json()["subscriptions"]
    for s in subs:
        if s["status"] != "expired":
            http.post(f"/v1/commerce/subscriptions/{s['subscription_id']}/cancel",
                      json={"at_period_end": False}).raise_for_status()


def run(context: DemoContext) -> ActResult:
    """Play the act (see the module docstring)."""
    platform = context.platform
    plan = plan_fleet(FleetSpec(vehicles=max(2, min(context.vehicles, 4)),
                                seed=context.seed + 13_001, regions=("EU", "US")))
    eu = next(v for v in plan.vehicles if v.region == "EU")
    us = next(v for v in plan.vehicles if v.region == "US")
    identities = fleet_identities(context, plan, tenant=TENANT, owner=OWNER,
                                  actor=f"demo:{NAME}", folder=context.data_dir / CREDENTIALS_DIR)
    headers = {"Authorization": f"Bearer {platform.admin_token}"}
    figures: dict[str, Figure] = {}
    with running_fleet(context, plan, identities) as runner, httpx.Client(
        base_url=platform.api_url, headers=headers, timeout=HTTP_TIMEOUT_S
    ) as http:
        http.put("/v1/commerce/catalog", json=_catalog()).raise_for_status()
        for vehicle in (eu, us):  # the boost needs VCU 5: the twins learn it from the cars
            _wait(context, lambda v=vehicle.vin: any(
                e["name"] == "VCU" for e in http.get(f"/v1/twins/{v}").json()["ecus"]),
                "the twins learn each car's VCU release", 0.1, 10.0)
        subs: dict[str, dict[str, Any]] = {}
        for vehicle in (eu, us):  # an earlier run's boost ends first: the baseline is without
            _end_live(http, vehicle.vin)
        _wait(context, lambda: not (_boosted(runner, eu.index) or _boosted(runner, us.index)),
              "an earlier run's boost is revoked", 0.15, 10.0)
        base_accel = {v.vin: _accel(runner, v.index) for v in (eu, us)}
        revenue_before = _revenue(http)
        for vehicle in (eu, us):
            account = f"driver:{vehicle.vin[-6:].lower()}"
            http.put(f"/v1/commerce/accounts/{account}/payment-method",
                     json={"payment_method": "test_card_ok"}).raise_for_status()
            bought = http.post("/v1/commerce/subscriptions", json={
                "vin": vehicle.vin, "account_id": account, "offer_id": OFFER})
            bought.raise_for_status()
            subs[vehicle.vin] = bought.json()
        context.report(f"{OFFER} bought for {eu.vin} (EU) and {us.vin} (US)", fraction=0.2)
        on_s = _wait(context, lambda: _boosted(runner, eu.index) and _boosted(runner, us.index),
                     "the cars receive their signed entitlements", 0.3, 10.0)
        figures["on_after_s"] = round(on_s, 1) if on_s is not None else "never"
        confirmed_s = _wait(context, lambda: all(_confirmed(http, subs[v.vin]) for v in (eu, us)),
                            "each car's twin confirms the entitlement", 0.4, 10.0)
        figures["twin_confirmed_after_s"] = (round((on_s or 0.0) + confirmed_s, 1)
                                             if confirmed_s is not None else "never")
        accel = {v.vin: _accel(runner, v.index) for v in (eu, us)}
        if on_s is not None and context.remaining_s() < LAPSE_BUDGET_S:
            ok = all(accel[v] > base_accel[v] for v in accel) and confirmed_s is not None
            return ActResult(ok, (
                f"stopped early (time budget): {OFFER} on in both cars {on_s:.1f} s after "
                "purchase" + (" (acceleration limit x1.3), confirmed by each car's twin"
                              if ok else f", but acceleration limits {accel} (from "
                              f"{base_accel}) or the twins' confirmation "
                              f"({figures['twin_confirmed_after_s']}) fell short")), figures)
        # The EU driver's card fails; the billing clock of that subscription reaches its end.
        eu_sub = subs[eu.vin]
        http.put(f"/v1/commerce/accounts/{eu_sub['account_id']}/payment-method",
                 json={"payment_method": "test_card_declined"}).raise_for_status()
        status = renew_subscription(platform.database, payment_provider(context.settings),
                                    eu_sub["subscription_id"],
                                    datetime.fromisoformat(eu_sub["period_end"]))
        context.report(f"renewal of {eu.vin}'s boost declined: {status}", fraction=0.5)
        off_s = _wait(context, lambda: not _boosted(runner, eu.index),
                      "the EU car's last entitlement runs out, grace period included", 0.6,
                      platform.settings.entitlement_lease_s + DEMO_GRACE_S + 5.0)
        figures["off_after_lapse_s"] = round(off_s, 1) if off_s is not None else "never"
        us_still_on = _boosted(runner, us.index)
        held = http.get(f"/v1/commerce/vehicles/{eu.vin}/entitlements").json()["entitlements"]
        revenue = http.get("/v1/commerce/revenue").json()
        added = {region: minor - revenue_before.get(region, 0)
                 for region, minor in _revenue(http).items()}
        eu_state = http.get(f"/v1/commerce/subscriptions/{eu_sub['subscription_id']}").json()
    for row in revenue["regions"]:
        figures[f"revenue_{row['region']}"] = f"{row['revenue']} {row['currency']}"
    problems = []
    if on_s is None:
        problems.append("the boost did not reach both cars within 10 s")
    if confirmed_s is None:
        problems.append("the cars' twins did not confirm the boost within 10 s")
    elif any(accel[v] <= base_accel[v] for v in accel):
        problems.append(f"acceleration limits {accel} did not rise from {base_accel}")
    if status != "past_due" or eu_state["status"] != "past_due":
        problems.append(f"the declined renewal left the subscription {eu_state['status']}")
    if off_s is None:
        problems.append("the EU car kept the boost after its grace period")
    if not us_still_on:
        problems.append("the US car lost the boost although its driver paid")
    if added != {"EU": 2 * 999, "US": 1099}:
        problems.append(f"revenue added {added} (minor units); expected EU 1998, US 1099")
    if [e["status"] for e in held] != ["grant"]:
        problems.append(f"the EU car's entitlement is {held}; expected the last grant to lapse")
    if problems:
        return ActResult(False, "; ".join(problems), figures)
    regions = ", ".join(f"{r['region']} {r['revenue']} {r['currency']}"
                        for r in revenue["regions"])
    return ActResult(True, (
        f"{OFFER} on in both cars {on_s:.1f} s after purchase (acceleration limit x1.3), and "
        f"each car's twin confirmed it (the car reports holding the signed token); the "
        f"EU driver's renewal was declined and the car turned the boost off by itself "
        f"{off_s:.1f} s later, when its last signed token and {DEMO_GRACE_S} s of grace ran "
        f"out; the US car kept it; revenue per region: {regions}"), figures)


# Light: it plays last and takes what the acts before it leave (it needs about 13 s).
COMMERCE_ACT = Act(name=NAME, title=TITLE, run=run, weight=0.3, min_budget_s=18.0)
