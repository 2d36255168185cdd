"""The embedded platform: database, bus and API start in-process and stop without leftovers."""

from __future__ import annotations

import threading
from pathlib import Path

import httpx
import pytest

from drivetrain.core.errors import ConfigurationError
from drivetrain.core.settings import load_settings
from drivetrain.demo import EmbeddedPlatform, demo_settings


def test_platform_serves_the_api_and_stops_leaving_no_thread(tmp_path: Path) -> None:
    before = set(threading.enumerate())
    platform = EmbeddedPlatform(demo_settings(tmp_path / "demo"))
    handles = platform.start()
    try:
        assert handles.api_url.startswith("http://127.0.0.1:")
        with httpx.Client(base_url=handles.api_url, timeout=5) as http:
            assert http.get("/healthz").json()["database"]["ok"] is True
            assert http.get("/v1/auth/whoami").status_code == 401
            me = http.get(
                "/v1/auth/whoami", headers={"Authorization": f"Bearer {handles.admin_token}"}
            )
            assert me.status_code == 200 and me.json()["role"] == "admin"
        got: list[bytes] = []
        handles.transport.subscribe("demo/#", lambda m: got.append(m.payload))
        handles.transport.publish("demo/ping", b"pong")
        handles.transport.drain(timeout_s=5)
        assert got == [b"pong"]
        assert (tmp_path / "demo" / "state.db").is_file()
        assert handles.admin_token not in repr(handles)
    finally:
        platform.stop()
        platform.stop()
    assert set(threading.enumerate()) <= before
    with pytest.raises(RuntimeError, match="not started"):
        _ = platform.handles


def test_demo_settings_ignore_a_real_deployment_configured_in_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DRIVETRAIN_DATABASE_URL", "postgresql+psycopg://ops@prod-db/drivetrain")
    monkeypatch.setenv("DRIVETRAIN_API_PORT", "443")
    settings = demo_settings(tmp_path)
    assert settings.state_database_url == f"sqlite:///{(tmp_path / 'state.db').resolve()}"
    assert (settings.api_host, settings.api_port, settings.deployment) == (
        "127.0.0.1",
        0,
        "embedded",
    )


def test_platform_refuses_production_settings(tmp_path: Path) -> None:
    production = load_settings(deployment="production", data_dir=tmp_path, auth_secret="x" * 40)
    with pytest.raises(ConfigurationError, match="'production'"):
        EmbeddedPlatform(production)
