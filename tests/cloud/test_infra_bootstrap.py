"""Deployment secrets and the embedded bootstrap admin."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from drivetrain.cloud.infra import (
    Database,
    ensure_embedded_bootstrap,
    list_audit,
    resolve_token_key,
)
from drivetrain.cloud.infra.service import authenticate_client, disable_client
from drivetrain.core.errors import ConfigurationError
from drivetrain.core.settings import Settings, load_settings


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_embedded_deployment_generates_its_secret_once_with_owner_only_access(
    settings: Settings,
) -> None:
    first = resolve_token_key(settings)
    path = settings.data_dir / "auth-secret"
    assert _mode(path) == 0o600
    assert resolve_token_key(settings) == first
    assert len(first.secret) >= 32


def test_secret_file_readable_by_others_is_refused(settings: Settings) -> None:
    resolve_token_key(settings)
    path = settings.data_dir / "auth-secret"
    path.chmod(0o644)
    with pytest.raises(ConfigurationError, match="chmod 600"):
        resolve_token_key(settings)


def test_configured_secret_wins_and_must_be_long_enough(tmp_path: Path) -> None:
    configured = load_settings(data_dir=tmp_path, auth_secret="c" * 32)
    assert resolve_token_key(configured).secret == b"c" * 32
    assert not (tmp_path / "auth-secret").exists()
    with pytest.raises(ConfigurationError, match="at least 32"):
        resolve_token_key(load_settings(data_dir=tmp_path, auth_secret="short"))


def test_bootstrap_admin_is_created_once_and_its_file_is_private(
    settings: Settings, database: Database
) -> None:
    creds = ensure_embedded_bootstrap(settings, database)
    assert creds.tenant == "default"
    assert creds.client_secret not in repr(creds)
    assert _mode(creds.path) == 0o600
    stored = json.loads(creds.path.read_text())
    assert stored["client_id"] == creds.client_id and stored["client_secret"] == creds.client_secret
    assert ensure_embedded_bootstrap(settings, database) == creds
    with database.session() as session:
        client = authenticate_client(session, creds.client_id, creds.client_secret)
        assert client.role.value == "admin"
        assert [e.action for e in list_audit(session, "default")] == [
            "tenant.create",
            "client.create",
        ]


def test_disabled_bootstrap_admin_is_replaced_by_a_new_one(
    settings: Settings, database: Database
) -> None:
    first = ensure_embedded_bootstrap(settings, database)
    with database.session() as session:
        disable_client(session, tenant="default", client_id=first.client_id, actor="t")
    second = ensure_embedded_bootstrap(settings, database)
    assert second.client_id != first.client_id
    assert json.loads(second.path.read_text())["client_id"] == second.client_id


def test_production_never_creates_a_bootstrap_admin(tmp_path: Path, database: Database) -> None:
    production = load_settings(
        data_dir=tmp_path, deployment="production", auth_secret="p" * 40
    )
    with pytest.raises(ConfigurationError, match="never creates a bootstrap admin"):
        ensure_embedded_bootstrap(production, database)
    assert not (tmp_path / "bootstrap-admin.json").exists()


def test_production_without_a_secret_refuses_to_start(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="DRIVETRAIN_AUTH_SECRET is required"):
        load_settings(data_dir=tmp_path, deployment="production")
