"""The console end to end in a real headless Chromium (Debian's, driven by Playwright): sign
in, open every page, act on each (set a desired value, approve and suspend a campaign, send
and cancel a command job, read dead letters) and see the result — through the same API and
authorization as any client. Every request the browser makes must stay on this host.

Screenshots of every page are written to ``$DRIVETRAIN_TEST_ARTIFACTS/console`` (default: a
temp dir, printed). One browser for the module (its tests run on one xdist worker); a fresh context (no shared
sign-in) per test.
"""

from __future__ import annotations

import io
import os
import shutil
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

import httpx
import pytest
from console_server import (
    EVSE_ID,
    FLEET_CONSENT,
    MARKUP,
    SOC,
    SPEED,
    TENANT,
    Client,
    Console,
    console_server,
)
from ota_fleet_health import drive
from rich.console import Console as Console_

from drivetrain.api.demo_routes import DemoBoard
from drivetrain.cloud.infra import Role, create_client, credentials
from drivetrain.cloud.ingest.records import add_events
from drivetrain.cloud.insights.registry import ModelCard, ModelRegistry
from drivetrain.cloud.insights.service import store_run
from drivetrain.cloud.insights.training import ComponentPrediction
from drivetrain.cloud.lake import Lake
from drivetrain.cloud.ota import EcuAssignment, OtaLayout
from drivetrain.cloud.ota import service as ota_service
from drivetrain.cloud.ota.rollout import WavePolicy
from drivetrain.cloud.ota.service import RolloutSpec
from drivetrain.cloud.privacy import vehicle_pseudonym
from drivetrain.cloud.twins import apply_reported
from drivetrain.core.settings import load_settings
from drivetrain.demo import (
    Act,
    ActResult,
    DemoContext,
    PlatformHandles,
    ScenarioOptions,
    run_scenario,
)
from drivetrain.demo.board import BoardObserver
from drivetrain.demo.view import HeadlessObserver
from drivetrain.edge import SecurityEvent, to_vehicle_event

playwright_api = pytest.importorskip(
    "playwright.sync_api", reason="the test extra installs playwright"
)

CHROMIUM = os.environ.get("DRIVETRAIN_CHROMIUM", "/usr/bin/chromium")
#: Flags for a headless Chromium that runs as root and contacts nothing by itself.
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
# Generous: the whole suite shares two cores with this browser.
TIMEOUT_MS = 20_000
# One server and one browser for the module: with pytest-xdist's loadgroup its tests stay on
# one worker instead of each worker starting its own.
pytestmark = pytest.mark.xdist_group("console-browser")
LIMIT = "Vehicle.Powertrain.TractionBattery.Charging.ChargeLimit"


@pytest.fixture(scope="module")
def console(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Console]:
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(credentials, "SCRYPT_N", 2**10)  # cheaper secret hashing for tests
        with console_server(tmp_path_factory.mktemp("console") / "data") as served:
            yield served


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not Path(CHROMIUM).exists() and not shutil.which("chromium"):
        message = f"no Chromium at {CHROMIUM}: apt-get install chromium (scripts/test does)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    with playwright_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@pytest.fixture(scope="module")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = os.environ.get("DRIVETRAIN_TEST_ARTIFACTS")
    folder = Path(root) / "console" if root else tmp_path_factory.mktemp("console-screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    print(f"console screenshots in {folder}")
    return folder


@pytest.fixture
def page(browser: Any, console: Console) -> Iterator[Any]:
    """A fresh tab whose requests may only reach the console's own host."""
    host_url = console.url
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    outside: list[str] = []

    def guard(route: Any) -> None:
        url = route.request.url
        if url.startswith((host_url, "data:", "blob:")):
            route.continue_()
        else:
            outside.append(url)
            route.abort()

    context.route("**/*", guard)
    tab = context.new_page()
    tab.set_default_timeout(TIMEOUT_MS)
    errors: list[str] = []
    tab.on("pageerror", lambda error: errors.append(str(error)))
    yield tab
    context.close()
    assert outside == [], f"the console fetched from outside the host: {outside}"
    assert errors == [], f"script errors: {errors}"


def sign_in(page: Any, console: Console, client: Client, hash_: str = "") -> None:
    page.goto(f"{console.url}/{hash_}")
    page.get_by_label("Client ID").fill(client.client_id)
    page.get_by_label("Client secret").fill(client.client_secret)
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("button", name="Sign out").wait_for()


def api(console: Console, client: Client, method: str, path: str, **kw: Any) -> Any:
    token = httpx.post(f"{console.url}/v1/auth/token", data={
        "grant_type": "client_credentials", "client_id": client.client_id,
        "client_secret": client.client_secret}).json()["access_token"]
    response = httpx.request(method, f"{console.url}{path}",
                             headers={"Authorization": f"Bearer {token}"}, **kw)
    response.raise_for_status()
    return response.json()


def test_a_wrong_secret_is_refused_with_the_api_reason(page: Any, console: Console,
                                                       shots: Path) -> None:
    sign_in_attempt = Client(console.operator.client_id, "not-the-secret")
    page.goto(console.url)
    page.get_by_label("Client ID").fill(sign_in_attempt.client_id)
    page.get_by_label("Client secret").fill(sign_in_attempt.client_secret)
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("alert").get_by_text("invalid client credentials").wait_for()
    page.screenshot(path=shots / "sign-in-refused.png")


def test_fleet_page_maps_every_vehicle_with_its_state_and_counts(
    page: Any, console: Console, shots: Path
) -> None:
    sign_in(page, console, console.operator)
    page.get_by_role("table", name="Vehicles").wait_for()
    for vin in console.vins:
        page.get_by_role("link", name=vin).first.wait_for()
    assert page.locator("svg.map g.vehicle").count() == len(console.vins)
    assert page.locator("svg.map path.land").count() == 1  # the bundled country outlines
    assert page.locator("svg.map g.state-driving").count() == 1
    assert page.locator("svg.map g.state-charging").count() == 1
    breakdown = page.locator(".breakdown.software").inner_text()
    assert "2.3.1 ×1" in breakdown and "2.4.0 ×2" in breakdown
    page.screenshot(path=shots / "fleet.png", full_page=True)
    # keyboard: a vehicle on the map opens its page with Enter
    page.locator("svg.map g.state-charging").focus()
    page.keyboard.press("Enter")
    page.get_by_role("heading", name=f"Vehicle {console.vins[1]}").wait_for()


def test_fleet_map_withholds_a_position_once_its_consent_is_withdrawn(
    page: Any, console: Console
) -> None:
    vin = console.vins[2]
    grants = api(console, console.admin, "GET", f"/v1/privacy/vehicles/{vin}/grants")
    [active] = [g for g in grants if g["status"] == "active"]
    api(console, console.admin, "POST", f"/v1/privacy/grants/{active['grant_id']}/withdraw")
    try:
        sign_in(page, console, console.operator)
        page.get_by_text("1 of 3 vehicles' location withheld").wait_for()
        assert page.locator("svg.map g.vehicle").count() == len(console.vins) - 1
    finally:
        api(console, console.admin, "POST", f"/v1/privacy/vehicles/{vin}/grants", json={
            "purpose": "fleet_operations", "categories": list(FLEET_CONSENT),
            "person": "fleet", "source": "fleet-contract"})


def test_fleet_page_shows_reported_changes_live(page: Any, console: Console) -> None:
    sign_in(page, console, console.operator)
    page.get_by_text("live: changes appear as they happen").wait_for()
    with console.database.session() as session:
        apply_reported(session, {console.vins[2]: {SPEED: (77.0, datetime.now(UTC))}})
    page.locator(".activity li", has_text=console.vins[2]).first.wait_for()
    page.get_by_role("table", name="Vehicles").get_by_role("cell", name="77").wait_for()


def test_operator_sets_a_desired_value_and_sees_it_pending(
    page: Any, console: Console, shots: Path
) -> None:
    vin = console.vins[0]
    sign_in(page, console, console.operator, f"#/vehicle/{vin}")
    page.get_by_role("heading", name=f"Vehicle {vin}").wait_for()
    page.locator("svg.chart path.line").wait_for()  # the lake's charge history, plotted
    # the feature bought for this car may already stand in its desired state (commerce writes
    # its entitlement there), so the operator's value makes the next version
    version = api(console, console.operator, "GET", f"/v1/twins/{vin}")["version"] + 1
    page.get_by_label("Actuator path").fill(LIMIT)
    page.get_by_label("Value", exact=True).fill("75")
    page.get_by_role("button", name="Set desired value").click()
    page.get_by_text(f"Desired version {version} set").wait_for()
    row = page.get_by_role("table", name="Desired state").get_by_role("row").filter(
        has_text=LIMIT)
    assert "75" in row.inner_text() and "pending" in row.inner_text()
    page.screenshot(path=shots / "vehicle.png", full_page=True)
    twin = api(console, console.operator, "GET", f"/v1/twins/{vin}")
    assert twin["desired"][LIMIT] == 75
    # a value the actuator refuses: the API's reason, nothing written
    page.get_by_label("Value", exact=True).fill("250")
    page.get_by_role("button", name="Set desired value").click()
    page.get_by_role("alert").wait_for()
    assert api(console, console.operator, "GET", f"/v1/twins/{vin}")["version"] == version


def test_data_page_plots_the_lake_and_says_why_a_vehicle_has_no_samples(
    page: Any, console: Console, shots: Path
) -> None:
    with_data, without = console.vins[0], console.vins[1]
    sign_in(page, console, console.admin, "#/data")
    page.get_by_label("Vehicles", exact=True).select_option([with_data, without])
    page.get_by_label("Signals", exact=True).select_option([SOC])
    page.get_by_role("button", name="Plot").click()
    page.get_by_text("points (mean per").wait_for()
    assert page.locator("svg.chart path.line").count() == 1  # only the car with samples
    page.locator(".missing li", has_text=without).get_by_text("its consent allows").wait_for()
    with page.expect_download() as download:
        page.get_by_role("button", name="Download CSV").click()
    lines = Path(download.value.path()).read_text().splitlines()
    assert lines[0] == "vin,path,ts,value"
    assert len(lines) > 10 and all(line.startswith(f"{with_data},{SOC},") for line in lines[1:])
    # speed is driving behaviour: maintenance may not read it, and the page says so (fleet
    # operations may, where the fleet account consented, as it did for these cars)
    page.get_by_label("Purpose", exact=True).select_option("maintenance")
    page.get_by_label("Signals", exact=True).select_option([SPEED])
    page.get_by_role("button", name="Plot").click()
    page.get_by_role("alert").get_by_text("driving_behaviour").wait_for()
    page.screenshot(path=shots / "data.png", full_page=True)


def test_operator_approves_then_suspends_a_campaign(page: Any, console: Console,
                                                    shots: Path) -> None:
    sign_in(page, console, console.operator, "#/campaigns")
    listed = page.get_by_role("table", name="Campaigns")
    listed.get_by_role("row", name="speed-sample").get_by_role("button", name="Approve").click()
    page.get_by_text("Campaign speed-sample: approve done.").wait_for()
    # the campaign runner starts it; the change feed brings the page up to date
    listed.get_by_role("row", name="speed-sample").get_by_text("running").wait_for()
    listed.get_by_role("row", name="speed-sample").get_by_role("button", name="Suspend").click()
    page.get_by_text("Campaign speed-sample: suspend done.").wait_for()
    campaign = api(console, console.operator, "GET", "/v1/campaigns/speed-sample")
    assert campaign["status"] == "suspended"
    page.get_by_role("link", name="speed-sample").click()
    page.get_by_role("heading", name="Campaign speed-sample").wait_for()
    page.get_by_text("2 vehicles").wait_for()  # the live preview of the draft form's query
    page.screenshot(path=shots / "campaigns.png", full_page=True)


def test_operator_sends_a_command_job_and_cancels_it(page: Any, console: Console,
                                                     shots: Path) -> None:
    sign_in(page, console, console.operator, "#/jobs")
    page.get_by_label("Vehicles (fleet query)").fill('region == "EU"')
    page.get_by_role("button", name="Send to vehicles").click()
    page.get_by_text("created for 2 vehicles").wait_for()
    job_id = page.get_by_role("table", name="Jobs").get_by_role("link").first.inner_text()
    page.get_by_role("table", name="Jobs").get_by_role("row", name=job_id).get_by_role(
        "button", name="Cancel").click()
    page.get_by_text(f"Job {job_id} cancelled.").wait_for()
    assert api(console, console.operator, "GET", f"/v1/jobs/{job_id}")["status"] == "cancelled"
    page.get_by_role("link", name=job_id).click()
    page.get_by_role("table", name="Deliveries").wait_for()
    page.screenshot(path=shots / "jobs.png", full_page=True)


def test_admin_pauses_a_subscription(page: Any, console: Console, shots: Path) -> None:
    sign_in(page, console, console.admin, "#/subscriptions")
    row = page.get_by_role("table", name="Subscriptions").get_by_role("row", name=console.vins[0])
    row.get_by_role("button", name="Pause").click()
    page.get_by_text("pause done.").wait_for()
    row.get_by_text("paused").wait_for()
    listed = api(console, console.admin, "GET", "/v1/commerce/subscriptions")["subscriptions"]
    assert [s["status"] for s in listed] == ["paused"]
    page.get_by_role("table", name="Offers").get_by_text("boost-monthly").wait_for()
    page.screenshot(path=shots / "subscriptions.png", full_page=True)


def test_ingest_health_page_reads_the_tenants_counters(page: Any, console: Console,
                                                       shots: Path) -> None:
    sign_in(page, console, console.operator, "#/ingest")
    page.get_by_text("Nothing ingested yet").wait_for()
    page.get_by_text("No open dead letter").wait_for()
    page.screenshot(path=shots / "ingest.png", full_page=True)


def test_markup_a_vehicle_reports_is_shown_as_text_never_run(page: Any, console: Console) -> None:
    sign_in(page, console, console.operator, f"#/vehicle/{console.vins[2]}")
    page.get_by_label("Filter").fill("EvseId")
    cell = page.get_by_role("table", name="Reported state").get_by_role("row").nth(1)
    assert cell.inner_text().split("\t")[:2] == [EVSE_ID, MARKUP]
    assert page.locator("table img, table script").count() == 0
    assert page.evaluate("window.__injected") is None


def test_the_fleet_page_reflows_on_a_tablet(page: Any, console: Console, shots: Path) -> None:
    page.set_viewport_size({"width": 820, "height": 1180})
    sign_in(page, console, console.operator)
    page.get_by_role("table", name="Vehicles").wait_for()
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 820, f"the page is {width} px wide on an 820 px screen"
    page.screenshot(path=shots / "fleet-tablet.png", full_page=True)


def test_read_only_sees_the_pages_but_every_action_is_refused(page: Any, console: Console) -> None:
    vin = console.vins[0]
    sign_in(page, console, console.reader, f"#/vehicle/{vin}")
    assert page.get_by_role("button", name="Set desired value").is_disabled()
    # The disabled button is a courtesy; the API decides. Forcing the call from the page:
    status = page.evaluate("""async ([vin, path]) => {
        const saved = JSON.parse(sessionStorage.getItem('drivetrain.console.token'));
        const response = await fetch(`/v1/twins/${vin}/desired`, {method: 'PATCH',
          headers: {Authorization: `Bearer ${saved.accessToken}`, 'If-Match': '*',
                    'Content-Type': 'application/json'},
          body: JSON.stringify({values: {[path]: 60}})});
        return response.status; }""", [vin, LIMIT])
    assert status == 403
    page.goto(f"{console.url}/#/campaigns")
    approve = page.get_by_role("table", name="Campaigns").get_by_role("button").first
    assert approve.is_disabled()
    page.goto(f"{console.url}/#/insights")
    assert page.get_by_role("button", name="Move to this slot").is_disabled()


def test_insights_page_shows_alerts_and_a_model_card_and_accepts_then_moves_an_appointment(
    page: Any, console: Console, shots: Path
) -> None:
    sign_in(page, console, console.operator, "#/insights")
    # before any model or scoring run, each list says why it is empty
    page.get_by_text("no scoring run yet").wait_for()
    page.get_by_text("no model trained yet").wait_for()
    page.get_by_text("No appointment yet").wait_for()
    vin, now = console.vins[0], datetime.now(UTC)
    held_out = {"component": "brake_pads", "failures": 3, "caught": 2, "missed": 1,
                "mean_lead_time_s": 5400.0, "false_alarm_vehicles": 0}
    card = ModelRegistry.for_tenant(console.data_dir, TENANT).save(ModelCard(
        name="maintenance", version=1, kind="maintenance.failure-window", created_at=now,
        code_version="test", features=("brake_wear_mean", MARKUP),
        training={"start": (now - timedelta(days=30)).isoformat(), "end": now.isoformat(),
                  "vehicles": 3, "rows": 900, "failures": 3},
        metrics={"held_out": [held_out]}), {"weights": [0.5]})
    with console.database.session() as session:
        store_run(session, tenant=TENANT, card=card, threshold=0.5, trigger="api", actor="test",
                  predictions=[ComponentPrediction(vehicle_pseudonym(session, TENANT, vin),
                                                   "brake_pads", 0.8, now + timedelta(days=7),
                                                   now + timedelta(days=9), now)],
                  data_window=(now - timedelta(hours=1), now), started_at=now)
    api(console, console.operator, "PUT", "/v1/insights/service-centres/north", json={
        "name": "North", "lat": 48.2, "lon": 11.5, "daily_capacity": 5, "stock": {"brake-pads": 4}})
    [booked] = api(console, console.operator, "POST", "/v1/insights/appointments/book",
                   json={"days": 14})["booked"]
    page.reload()
    alert = page.get_by_role("table", name="Maintenance alerts").get_by_role("row", name=vin)
    assert "brake_pads" in alert.inner_text() and "80 %" in alert.inner_text()
    page.get_by_role("heading", name="maintenance v1").wait_for()
    features = page.get_by_role("article", name="Model maintenance").get_by_text("brake_wear_mean")
    assert MARKUP in features.inner_text()  # a feature name is shown as text, never run
    assert page.evaluate("window.__injected") is None
    page.get_by_role("table", name="Held-out metrics of maintenance").get_by_text("5400").wait_for()
    row = page.get_by_role("table", name="Appointments").get_by_role("row", name=vin)
    row.get_by_role("button", name="Accept").click()
    page.get_by_text(f"Appointment {booked['appointment_id']} accepted").wait_for()
    row.get_by_text("accepted").wait_for()
    row.get_by_role("button", name="Move").click()
    page.get_by_text(f"Appointment {booked['appointment_id']} moved to north").wait_for()
    moved = api(console, console.operator, "GET",
                f"/v1/insights/appointments/{booked['appointment_id']}")
    assert moved["status"] == "accepted" and moved["day"] != booked["day"]
    # to a chosen day; one after the predicted window is refused with the API's reason
    chosen = (now + timedelta(days=3)).date().isoformat()
    page.get_by_label("Day", exact=True).fill(chosen)
    page.get_by_role("button", name="Move to this slot").click()
    page.get_by_text(f"moved to north on {chosen}").wait_for()
    page.get_by_label("Day", exact=True).fill((now + timedelta(days=12)).date().isoformat())
    page.get_by_role("button", name="Move to this slot").click()
    page.get_by_role("alert").get_by_text("cannot move").wait_for()
    assert api(console, console.operator, "GET",
               f"/v1/insights/appointments/{booked['appointment_id']}")["day"] == chosen
    page.screenshot(path=shots / "insights.png", full_page=True)


def test_ota_page_lists_signed_images_and_a_vehicles_assignments(
    page: Any, console: Console, shots: Path
) -> None:
    vin = console.vins[1]
    sign_in(page, console, console.reader, "#/ota")
    page.get_by_text("The Image repository signs no image").wait_for()
    page.get_by_text("Choose a vehicle to see what").wait_for()
    layout = OtaLayout.under(console.data_dir)
    layout.init({"root": (1, 1)})
    layout.images().add_image("bms/bms-2.6.1.bin", b"firmware", hardware_id="BMS-HW-1",
                              release_counter=7, version="2.6.1")
    page.get_by_label("Vehicle", exact=True).select_option(vin)
    page.get_by_text(f"The Director has signed no assignment for {vin} yet").wait_for()
    images = page.get_by_role("table", name="Images").get_by_role("row", name="bms/bms-2.6.1.bin")
    assert "2.6.1" in images.inner_text() and "BMS-HW-1" in images.inner_text()
    layout.director().assign(vin, [EcuAssignment("BMS", "BMS-HW-1", "bms/bms-2.6.1.bin")],
                             layout.images())
    page.reload()
    assigned = page.get_by_role("table", name="Assignments").get_by_role("row", name="BMS")
    # told to install 2.6.1, while the BMS last reported running 2.4.0
    assert assigned.inner_text().split("\t") == ["BMS", "BMS-HW-1", "bms/bms-2.6.1.bin", "2.6.1",
                                                  "2.4.0"]
    page.get_by_text("No rollout yet").wait_for()
    # A rollout of that build whose first wave then uses more energy than the two cars left
    # on the old build: the platform's gate pauses it, and the page shows its evidence.
    t0 = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=3)
    with console.database.session() as session:
        rid = ota_service.create_rollout(
            session, layout, RolloutSpec("bms-2.6.1", "BMS", ("bms/bms-2.6.1.bin",),
                                         policy=WavePolicy(waves=(0.3, 1.0), min_control=2)),
            tenant=TENANT, actor="release-engineer", now=t0).rollout_id
        ota_service.approve_rollout(session, layout, rid, tenant=TENANT,
                                    actor="release-manager", now=t0)
    vehicles = api(console, console.reader, "GET", f"/v1/ota/rollouts/{rid}/vehicles")
    [updated] = [v["vin"] for v in vehicles if v["wave"] == 1]
    with console.database.session() as session:
        ota_service.report_vehicle(session, rid, updated, "installed", tenant=TENANT,
                                   software_after="2.6.1", now=t0 + timedelta(minutes=1))
    with Lake.open(load_settings(deployment="embedded", data_dir=console.data_dir)) as lake:
        for car in console.vins:
            drive(console.database, lake, tenant=TENANT, vin=car,
                  start=t0 + timedelta(minutes=2), minutes=50,
                  kwh_per_100km=21.0 if car == updated else 16.0)
    token = httpx.post(f"{console.url}/v1/auth/token", data={
        "grant_type": "client_credentials", "client_id": console.operator.client_id,
        "client_secret": console.operator.client_secret}).json()["access_token"]
    # the dispatcher's round may judge the wave first (then advancing a paused one is a 409)
    httpx.post(f"{console.url}/v1/ota/rollouts/{rid}/advance",
               headers={"Authorization": f"Bearer {token}"})
    shown = api(console, console.reader, "GET", f"/v1/ota/rollouts/{rid}")
    assert shown["status"] == "paused", shown["reason"]
    page.reload()
    row = page.get_by_role("table", name="Rollouts").get_by_role("row", name="bms-2.6.1")
    assert row.inner_text().split("\t")[:5] == ["bms-2.6.1", "BMS", "2.6.1", "paused", "1 of 2"]
    assert "energy_kwh_per_100km" in row.inner_text()  # the reason
    gate = page.get_by_role("table", name="Health gate evidence of bms-2.6.1")
    energy = gate.get_by_role("row", name="Energy, kWh/100 km").inner_text().split("\t")
    figures = shown["evidence"]["energy_kwh_per_100km"]
    assert abs(float(energy[1]) - 21.0) < 0.05 and abs(float(energy[2]) - 16.0) < 0.05
    assert float(energy[3]) == pytest.approx(figures["limit"], abs=1e-3)
    assert energy[4:] == ["5 %", "1 / 2", "worse than control"]
    dtcs = gate.get_by_role("row", name="Error DTCs per vehicle-hour").inner_text().split("\t")
    assert dtcs[-1] == "within margin"
    page.screenshot(path=shots / "ota.png", full_page=True)


@pytest.mark.parametrize(("path", "ready"), [("/docs", ".swagger-ui .info .title"),
                                             ("/redoc", "h1")])
def test_api_docs_render_offline(page: Any, console: Console, shots: Path, path: str,
                                 ready: str) -> None:
    page.goto(f"{console.url}{path}")
    page.locator(ready).first.wait_for()
    assert "Drivetrain API" in page.locator(ready).first.inner_text()
    page.screenshot(path=shots / f"{path.strip('/')}.png")


def _report_security_event(console: Console, vin: str, batch: str) -> None:
    """``vin``'s detector saw forged frames on 0x0D0 five seconds ago (as ingestion stores it)."""
    now = datetime.now(UTC)
    event = SecurityEvent(0x1006, "cross_signal", "0x0D0", 4, 1.0, 1.2, 2.0, ("1.0 D0#00",))
    with console.database.session() as session:
        add_events(session, tenant=TENANT, vin=vin, batch_id=batch, now=now,
                   events=[(0, to_vehicle_event(event, epoch_offset_s=now.timestamp() - 5))])


def test_security_page_works_incidents_and_a_response_needs_a_second_persons_approval(
    page: Any, console: Console, shots: Path
) -> None:
    with console.database.session() as session:
        made = create_client(session, tenant=TENANT, role=Role.SECURITY_ANALYST, actor="test")
    analyst = Client(made.client.client_id, made.client_secret)
    first, second = console.vins[0], console.vins[1]  # two EU cars of one model: a fleet incident
    _report_security_event(console, first, "ids-1")
    _report_security_event(console, second, "ids-2")
    sign_in(page, console, analyst, "#/security")
    page.get_by_text("No incident: vehicles reported no security event").wait_for()
    page.get_by_role("button", name="Correlate new events").click()
    page.get_by_text("2 events read: 2 incidents opened").wait_for()
    incidents = page.get_by_role("table", name="Incidents")
    incidents.get_by_role("row", name=first).get_by_role("button", name="Acknowledge").click()
    page.get_by_text("acknowledged.").wait_for()
    incidents.get_by_role("row", name=first).get_by_text("acknowledged").wait_for()
    fleet = page.get_by_role("table", name="Fleet incidents").get_by_role("row").nth(1)
    assert "cross_signal:0x0D0" in fleet.inner_text() and "compact-bev" in fleet.inner_text()
    # the analyst proposes disabling a function: it waits for a second person
    page.get_by_label("Playbook", exact=True).select_option("disable_function")
    page.get_by_label("Function", exact=True).fill("reverse_assist")
    page.get_by_role("button", name="Propose response").click()
    page.get_by_text("another person must approve it.").wait_for()
    responses = page.get_by_role("table", name="Responses")
    responses.get_by_role("button", name="Approve response").click()
    page.get_by_role("alert").get_by_text("Refused (two-person rule)").wait_for()
    [waiting] = api(console, analyst, "GET", "/v1/security/responses")
    assert waiting["status"] == "proposed" and waiting["job_id"] is None
    page.screenshot(path=shots / "security-refused.png", full_page=True)
    # a second person approves: one signed command per car, through the dispatcher
    page.get_by_role("button", name="Sign out").click()
    sign_in(page, console, console.admin, "#/security")
    responses.get_by_role("button", name="Approve response").click()
    page.get_by_text(f"Response {waiting['response_id']} approved: job").wait_for()
    responses.get_by_text("executed").wait_for()
    [done] = api(console, console.admin, "GET", "/v1/security/responses")
    assert done["decided_by"] == console.admin.client_id
    assert api(console, console.admin, "GET", f"/v1/jobs/{done['job_id']}")["origin"] == "security"
    summary = page.get_by_role("table", name="Detection to response")
    assert "1" in summary.get_by_role("row", name="acknowledgement").inner_text()
    assert "2" in summary.get_by_role("row", name="response sent to the vehicle").inner_text()
    page.get_by_role("table", name="Incidents by severity").wait_for()
    page.screenshot(path=shots / "security.png", full_page=True)
    # each vehicle's security events, from its incident
    incidents.get_by_role("link", name=second).click()
    events = page.get_by_role("table", name=f"Security events of {second}")
    assert "cross_signal:0x0D0" in events.get_by_role("row").nth(1).inner_text()
    # the fleet map marks both cars as under incident while their incidents are unresolved
    page.get_by_role("link", name="Fleet", exact=True).click()
    page.get_by_role("table", name="Vehicles").get_by_role("row", name=first).get_by_text(
        "under incident").wait_for()
    assert page.locator("svg.map g.state-under-incident").count() == 2


def test_read_only_sees_the_security_page_without_actions(page: Any, console: Console) -> None:
    sign_in(page, console, console.reader, "#/security")
    page.get_by_role("heading", name="Security", exact=True).wait_for()
    page.get_by_role("table", name="Incidents by severity").wait_for()
    assert page.get_by_role("button", name="Propose response").is_disabled()
    assert page.get_by_role("button", name="Correlate new events").is_disabled()


def _waiting_act(release: threading.Event) -> Act:
    def run(context: DemoContext) -> ActResult:
        while not release.wait(0.1):
            context.report("waiting for the operator to look", fraction=0.5)
            context.check_time()
        return ActResult(True, "the console followed the act")

    return Act("waits", "An act that waits", run, min_budget_s=25.0)


def _failing_act(context: DemoContext) -> ActResult:
    return ActResult(False, "the check failed on purpose")


def test_demo_page_shows_the_acts_as_they_happen(page: Any, console: Console, shots: Path) -> None:
    # The board the embedded platform hangs on its app for `drivetrain demo`, fed by the real
    # harness through the demo's observer (tests/demo/test_demo_serve.py covers the command).
    board = console.app.state.demo_board = DemoBoard(tenant=TENANT)
    release = threading.Event()
    acts = [_waiting_act(release), Act("fails", "An act that fails", _failing_act)]
    quiet = HeadlessObserver(Console_(file=io.StringIO()))
    player = threading.Thread(target=run_scenario, args=(acts,), kwargs={
        "options": ScenarioOptions(duration_s=30.0),
        "settings": console.app.state.drivetrain.settings,
        "platform": cast(PlatformHandles, object()),  # these acts never touch the platform
        "observer": BoardObserver(board, acts, quiet)})
    try:
        sign_in(page, console, console.reader, "#/demo")
        listed = page.get_by_role("table", name="Demo acts")
        listed.get_by_role("row", name="An act that fails").get_by_text("pending").wait_for()
        player.start()
        waiting = listed.get_by_role("row", name="An act that waits")
        waiting.get_by_text("running").wait_for()
        waiting.get_by_text("waiting for the operator to look").wait_for()
        page.screenshot(path=shots / "demo-running.png", full_page=True)
        release.set()
        failed = listed.get_by_role("row", name="An act that fails")
        failed.get_by_text("the check failed on purpose").wait_for()
        assert "failed" in failed.inner_text()
        assert "passed" in waiting.inner_text()
        assert "the console followed the act" in waiting.inner_text()
        page.get_by_text("The demo has played every act.").wait_for()
        page.screenshot(path=shots / "demo.png", full_page=True)
    finally:
        release.set()
        if player.ident is not None:
            player.join(30)
        del console.app.state.demo_board


def test_an_owner_sees_its_vehicle_grants_a_repairer_and_revokes(
    page: Any, console: Console, shots: Path
) -> None:
    from drivetrain.cloud.privacy.owners import add_owner

    with console.database.session() as session:
        made = {role: create_client(session, tenant=TENANT, role=role, actor="test")
                for role in (Role.OWNER, Role.THIRD_PARTY_APP)}
        add_owner(session, tenant=TENANT, vin=console.vins[0],
                  client_id=made[Role.OWNER].client.client_id, relation="owner", actor="test")
    owner = Client(made[Role.OWNER].client.client_id, made[Role.OWNER].client_secret)
    repairer = made[Role.THIRD_PARTY_APP].client.client_id
    sign_in(page, console, owner, "#/data-act")
    page.get_by_role("heading", name="My vehicle data").wait_for()
    page.get_by_role("link", name="Fleet").wait_for(state="detached")  # an owner sees no fleet
    battery = page.get_by_role("article", name="container battery")
    battery.get_by_role("table").get_by_text(SOC).wait_for()
    battery.get_by_text("withheld: per-cell voltage curves").wait_for()
    page.get_by_label("Recipient client").fill(repairer)
    page.get_by_role("checkbox", name="diagnostics").check()
    page.get_by_role("button", name="Grant", exact=True).click()
    page.get_by_text(f"Granted diagnostics to {repairer}").wait_for()
    grants = page.get_by_role("table", name="Grants")
    grants.get_by_role("button", name="Revoke").click()
    grants.get_by_text("withdrawn").wait_for()
    page.get_by_role("table", name="Access log").get_by_text("latest").first.wait_for()
    page.screenshot(path=shots / "data-act.png", full_page=True)
