"""Settings come from defaults, drivetrain.toml and DRIVETRAIN_* variables, and refuse unsafe production."""

from __future__ import annotations

from pathlib import Path

import pytest

from drivetrain.core.errors import ConfigurationError
from drivetrain.core.settings import load_settings


@pytest.mark.embedded_only(reason="the embedded defaults themselves (no DRIVETRAIN_* set)")
def test_defaults_work_for_the_embedded_deployment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    settings = load_settings()
    assert settings.deployment == "embedded"
    assert settings.data_dir == Path(".drivetrain")
    assert settings.state_database_url == f"sqlite:///{tmp_path / '.drivetrain' / 'state.db'}"


def test_toml_file_is_read_and_environment_overrides_it(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "drivetrain.toml").write_text('api_port = 9001\ndata_dir = "/srv/dt"\n')
    assert load_settings().api_port == 9001
    monkeypatch.setenv("DRIVETRAIN_API_PORT", "9002")
    settings = load_settings()
    assert settings.api_port == 9002
    assert settings.data_dir == Path("/srv/dt")


def test_config_file_can_be_named_by_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    config = tmp_path / "elsewhere.toml"
    config.write_text('database_url = "postgresql+psycopg://dt@db/dt"\n')
    monkeypatch.setenv("DRIVETRAIN_CONFIG", str(config))
    monkeypatch.delenv("DRIVETRAIN_DATABASE_URL", raising=False)  # it would win over the file
    assert load_settings().state_database_url == "postgresql+psycopg://dt@db/dt"


def test_production_without_auth_secret_is_refused(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigurationError, match="DRIVETRAIN_AUTH_SECRET is required"):
        load_settings(deployment="production")


def test_production_with_a_short_auth_secret_is_refused(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigurationError, match="at least 32 characters, got 6"):
        load_settings(deployment="production", auth_secret="secret")


def test_unknown_setting_in_toml_is_rejected_with_its_name(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "drivetrain.toml").write_text("api_prot = 1\n")
    with pytest.raises(ConfigurationError) as refused:
        load_settings()
    assert str(refused.value) == (
        f"{tmp_path / 'drivetrain.toml'}: unknown setting 'api_prot'; did you mean 'api_port'?")


def test_a_bad_value_names_the_file_the_setting_and_what_was_expected(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "drivetrain.toml").write_text('token_ttl_s = "soon"\n[lake_roots]\nEU = 5\n')
    with pytest.raises(ConfigurationError) as refused:
        load_settings()
    toml = tmp_path / "drivetrain.toml"
    assert str(refused.value).splitlines() == [
        f"{toml}: token_ttl_s = 'soon': expected a valid integer, unable to parse string as an "
        "integer",
        f"{toml}: lake_roots.EU = 5: expected a path",
    ]
    assert "pydantic" not in str(refused.value) and "http" not in str(refused.value)


def test_a_bad_environment_variable_is_named(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DRIVETRAIN_API_PORT", "99999")
    with pytest.raises(ConfigurationError, match="^environment variable DRIVETRAIN_API_PORT: "
                       "api_port = '99999': expected less than or equal to 65535$"):
        load_settings()


def test_a_file_that_is_not_toml_is_named_with_the_line(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "drivetrain.toml").write_text("token_ttl_s = \n")
    with pytest.raises(ConfigurationError, match=r"drivetrain.toml: not valid TOML: .*line 1"):
        load_settings()


def test_the_command_line_prints_one_line_per_problem_and_exits_2(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from typer.testing import CliRunner

    from drivetrain.cli import app

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("DRIVETRAIN_DATA_DIR", raising=False)
    (tmp_path / "drivetrain.toml").write_text('api_port = "x"\n')
    result = CliRunner(env={"COLUMNS": "300"}).invoke(app, ["lake", "counts"])
    assert result.exit_code == 2
    assert result.stderr.strip() == (
        f"error: invalid settings: {tmp_path / 'drivetrain.toml'}: api_port = 'x': expected a "
        "valid integer, unable to parse string as an integer")


def test_secret_is_never_shown_in_the_settings_repr(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    secret = "s" * 40
    settings = load_settings(deployment="production", auth_secret=secret)
    assert secret not in repr(settings)
