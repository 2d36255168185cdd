"""The broker password comes from the settings (a secret), reaches the broker, and is never
shown: not in the settings' text, not in a command's output when the broker refuses it."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from mqtt_helpers import BROKER_PASSWORD, BROKER_USER, authenticated_broker
from pydantic import SecretStr

from drivetrain.core.errors import TransportError
from drivetrain.core.settings import load_settings
from drivetrain.core.transport.factory import open_transport
from drivetrain.core.transport.testing import unique_name

WRONG = "not-the-password-7f3a"


def test_broker_password_is_a_secret_setting_never_shown(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DRIVETRAIN_BROKER_PASSWORD", BROKER_PASSWORD)
    settings = load_settings()
    assert isinstance(settings.broker_password, SecretStr)
    assert settings.broker_password.get_secret_value() == BROKER_PASSWORD
    for shown in (repr(settings), str(settings), settings.model_dump_json()):
        assert BROKER_PASSWORD not in shown
    monkeypatch.delenv("DRIVETRAIN_BROKER_PASSWORD")
    (tmp_path / "drivetrain.toml").write_text(f'broker_password = "{WRONG}"\n')
    assert load_settings().broker_password == SecretStr(WRONG)


def test_the_settings_password_opens_the_broker_and_a_wrong_one_is_refused_unshown(
    tmp_path: Path,
) -> None:
    with authenticated_broker(tmp_path) as broker:
        with open_transport(
            broker.url, client_id=unique_name("c"), username=BROKER_USER,
            password=SecretStr(BROKER_PASSWORD),
        ) as transport:  # fmt: skip
            transport.publish(f"dt/v1/{BROKER_USER}/telemetry", b"ok")
        with pytest.raises(TransportError, match="Not authorized") as refused:
            open_transport(
                broker.url, client_id=unique_name("c"), username=BROKER_USER,
                password=SecretStr(WRONG),
            )  # fmt: skip
        assert WRONG not in str(refused.value)


def test_the_reconcile_command_logs_in_with_the_broker_password_setting(
    cli: Callable[..., str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    cli("db", "upgrade")
    with authenticated_broker(tmp_path) as broker:
        args = ("twin", "reconcile", "--broker", broker.url, "--username", BROKER_USER, "--once")
        monkeypatch.setenv("DRIVETRAIN_BROKER_PASSWORD", WRONG)
        refused = cli(*args, "--client-id", unique_name("reconcile"), code=1)
        assert "Not authorized" in refused and WRONG not in refused
        monkeypatch.setenv("DRIVETRAIN_BROKER_PASSWORD", BROKER_PASSWORD)
        published = cli(*args, "--client-id", unique_name("reconcile"))
        assert "published 0 delta(s)" in published and BROKER_PASSWORD not in published
