"""`drivetrain serve` really serves; `drivetrain db` and `drivetrain auth` work end to end."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from fleet_profile import FLEET
from typer.testing import CliRunner

from drivetrain.cli import app as cli_app
from drivetrain.cloud.infra import Database, Principal, Role, verify_token
from drivetrain.cloud.infra.bootstrap import resolve_token_key
from drivetrain.core.settings import load_settings


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_serve_starts_answers_health_refuses_anonymous_calls_and_stops(tmp_path: Path) -> None:
    port = _free_port()
    env = {**os.environ, "DRIVETRAIN_DATA_DIR": str(tmp_path / "data")}
    if not FLEET:  # the fleet profile's state comes from the environment
        env.pop("DRIVETRAIN_DATABASE_URL", None)
    process = subprocess.Popen(
        [sys.executable, "-m", "drivetrain", "serve", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    health = None
    try:
        # Start-up migrates a fresh database and, in the fleet profile, connects the broker and
        # the backbone: ~28 s on the loaded 2-core machine. The loop ends as soon as the server
        # answers or exits, so the long deadline costs nothing where it starts fast.
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and process.poll() is None:
            try:
                health = httpx.get(f"{base}/healthz", timeout=1.0)
                break
            except httpx.TransportError:
                time.sleep(0.1)
        assert health is not None, "server did not come up (its output below)"
        assert health.status_code == 200 and health.json()["database"]["ok"] is True
        anonymous = httpx.get(f"{base}/v1/audit", timeout=5.0)
        assert anonymous.status_code == 401
        assert anonymous.headers["www-authenticate"] == "Bearer"
        assert httpx.get(f"{base}/openapi.json", timeout=5.0).json()["openapi"].startswith("3.1")
    finally:
        exit_code = process.poll()
        process.terminate()
        output, _ = process.communicate(timeout=15)
        if health is None:
            pytest.fail(f"server did not come up in 120 s (exit {exit_code}):\n{output}")
    credentials_file = tmp_path / "data" / "bootstrap-admin.json"
    assert f"data directory: {tmp_path / 'data'} (from DRIVETRAIN_DATA_DIR)" in output
    assert f"bootstrap admin credentials: {credentials_file}" in output
    assert f"{base}/openapi.json" in output
    secret = json.loads(credentials_file.read_text())["client_secret"]
    assert secret not in output


@pytest.fixture
def cli(tmp_path: Path, database_url: str, monkeypatch: pytest.MonkeyPatch) -> Callable[..., Any]:
    """Run the CLI in-process against a fresh database on each engine."""
    monkeypatch.setenv("DRIVETRAIN_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("DRIVETRAIN_DATABASE_URL", database_url)
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()

    def run(*args: str, code: int = 0) -> str:
        result = runner.invoke(cli_app, list(args))
        assert result.exit_code == code, result.output
        return result.output

    return run


def test_db_and_auth_commands_create_a_client_that_gets_a_verifiable_token(
    cli: Callable[..., Any], tmp_path: Path
) -> None:
    assert "run `drivetrain db upgrade` first" in cli("auth", "create-tenant", "acme", code=1)
    assert "empty" in cli("db", "current")
    heads = list(Database("sqlite://").head_revisions())  # every domain's newest revision
    assert f"now at {heads}" in cli("db", "upgrade")
    assert "already up to date" in cli("db", "upgrade")
    assert "created tenant 'acme'" in cli("auth", "create-tenant", "acme")
    assert "already exists" in cli("auth", "create-tenant", "acme", code=1)
    made = json.loads(cli("auth", "create-client", "--tenant", "acme", "--role", "fleet_operator", "--json"))
    token = cli(
        "auth", "token", "--client-id", made["client_id"], "--client-secret", made["client_secret"],
        "--scope", "fleet:read",
    ).strip()
    key = resolve_token_key(load_settings(data_dir=tmp_path / "data"))
    principal = verify_token(token, key, datetime.now(UTC))
    assert principal == Principal(
        made["client_id"], "acme", Role.FLEET_OPERATOR, principal.scopes, principal.token_id,
        principal.expires_at,
    )
    assert {s.value for s in principal.scopes} == {"fleet:read"}
    assert "invalid client credentials" in cli(
        "auth", "token", "--client-id", made["client_id"], "--client-secret", "wrong", code=1
    )
    assert "unknown role 'root'" in cli("auth", "create-client", "--tenant", "acme", "--role", "root", code=1)
    assert "audit log intact: 2 entries verified" in cli("db", "verify-audit")


def test_every_command_has_help(cli: Callable[..., Any]) -> None:
    for command in (["serve"], ["db"], ["db", "upgrade"], ["auth"], ["auth", "create-client"], ["auth", "token"]):
        assert "Usage" in cli(*command, "--help")
