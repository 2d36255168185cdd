"""`drivetrain demo --serve`: after the acts the platform stays up — API, console and the
twins act's cars still driving — until Ctrl-C, and the demo says where the console is and how
to sign in (the secret's file, never the secret)."""

from __future__ import annotations

import json
import re
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from drivetrain.cli import app
from drivetrain.demo import Act, ActResult, DemoContext, PlatformHandles, ScenarioOptions
from drivetrain.demo.serve import serve_until

runner = CliRunner()


def test_serve_keeps_the_console_up_after_the_acts_until_ctrl_c(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    seen: dict[str, object] = {}

    def quick(context: DemoContext) -> ActResult:
        return ActResult(True, "done")

    def interrupted(stop: threading.Event, *, settings: object, handles: PlatformHandles,
                    options: ScenarioOptions) -> None:
        # What a reader would open while the platform runs; then Ctrl-C.
        page = httpx.get(f"{handles.api_url}/")
        seen["status"], seen["html"] = page.status_code, page.text
        # the console's Demo page reads the acts the demo just played
        seen["demo"] = httpx.get(f"{handles.api_url}/v1/demo", headers={
            "Authorization": f"Bearer {handles.admin_token}"}).json()
        raise KeyboardInterrupt

    monkeypatch.setattr("drivetrain.demo.SCENARIO", (Act("quick", "Quick", quick),))
    monkeypatch.setattr("drivetrain.demo.serve.serve_until", interrupted)
    result = runner.invoke(app, ["demo", "--headless", "--duration", "5", "--serve",
                                 "--data-dir", str(tmp_path / "d")])
    assert result.exit_code == 0, result.output
    assert seen["status"] == 200 and "<html" in str(seen["html"])
    demo = seen["demo"]
    assert isinstance(demo, dict) and demo["state"] == "serving"
    assert [(a["name"], a["state"], a["line"]) for a in demo["acts"]] == [("quick", "passed", "done")]
    assert re.search(r"console: http://127\.0\.0\.1:\d+/", result.output)
    credentials = tmp_path / "d" / "bootstrap-admin.json"
    assert f"the client_secret in {credentials}" in result.output.replace("\n", "")
    secret = json.loads(credentials.read_text())["client_secret"]
    assert secret not in result.output
    assert result.output.index("every act passed") < result.output.index("console: http")


def test_the_fleet_keeps_driving_while_the_demo_serves(platform: PlatformHandles) -> None:
    options = ScenarioOptions(seed=7, vehicles=2, duration_s=10)
    stop = threading.Event()
    started = datetime.now(UTC)
    worker = threading.Thread(target=serve_until, args=(stop,), kwargs={
        "settings": platform.settings, "handles": platform, "options": options})
    worker.start()
    headers = {"Authorization": f"Bearer {platform.admin_token}"}
    try:
        deadline = time.monotonic() + 30
        fresh: set[str] = set()
        while len(fresh) < 2 and time.monotonic() < deadline:
            page = httpx.get(f"{platform.api_url}/v1/twins", headers=headers,
                             params={"query": 'owner == "desired-state demo"'}).json()
            for twin in page["twins"]:
                reported = httpx.get(f"{platform.api_url}/v1/twins/{twin['vin']}",
                                     headers=headers).json()["reported"]
                stored = [datetime.fromisoformat(r["updated_at"]) for r in reported.values()]
                if any(at > started for at in stored):
                    fresh.add(twin["vin"])
            time.sleep(0.5)
        assert len(fresh) == 2, "the served fleet's cars did not report"
    finally:
        stop.set()
        worker.join(30)
    assert not worker.is_alive()
