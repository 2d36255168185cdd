"""`drivetrain demo` end to end: exit status, act lines, the summary, the data directory."""

from __future__ import annotations

import re
import threading
from pathlib import Path

import pytest
from typer.testing import CliRunner

from drivetrain.cli import app
from drivetrain.demo import SCENARIO, Act, ActResult, DemoContext

runner = CliRunner()


def test_headless_demo_passes_every_act_and_exits_zero(tmp_path: Path) -> None:
    before = set(threading.enumerate())
    result = runner.invoke(
        app,
        [
            "demo",
            "--headless",
            "--duration",
            "120",
            "--vehicles",
            "2",
            "--data-dir",
            str(tmp_path / "d"),
        ],
    )
    assert result.exit_code == 0, result.output
    for index, act in enumerate(SCENARIO, start=1):
        assert re.search(
            rf"\[act {index}/{len(SCENARIO)}\] {re.escape(act.title)} … ok: ", result.output
        )
    assert "every act passed" in result.output
    assert "API http://127.0.0.1:" in result.output
    assert (tmp_path / "d" / ".drivetrain-demo").is_file()
    assert set(threading.enumerate()) <= before


def test_failing_act_makes_the_demo_exit_one(monkeypatch: pytest.MonkeyPatch) -> None:
    def wrong(context: DemoContext) -> ActResult:
        return ActResult(False, "expected 5 twins, found 4")

    monkeypatch.setattr("drivetrain.demo.SCENARIO", (Act("wrong", "Twins converge", wrong),))
    result = runner.invoke(app, ["demo", "--headless", "--duration", "5"])
    assert result.exit_code == 1
    assert "[act 1/1] Twins converge … FAILED: expected 5 twins, found 4" in result.output
    assert "some acts FAILED" in result.output


def test_live_view_mode_ends_with_the_summary(monkeypatch: pytest.MonkeyPatch) -> None:
    def quick(context: DemoContext) -> ActResult:
        context.report("counting", fraction=0.5, figures={"count": 1})
        return ActResult(True, "counted one", {"count": 1})

    monkeypatch.setattr("drivetrain.demo.SCENARIO", (Act("quick", "Quick count", quick),))
    result = runner.invoke(app, ["demo", "--duration", "5"])
    assert result.exit_code == 0, result.output
    assert "every act passed" in result.output and "count=1" in result.output


def test_demo_refuses_a_data_dir_it_did_not_make(tmp_path: Path) -> None:
    (tmp_path / "state.db").write_text("someone's real data")
    result = runner.invoke(app, ["demo", "--headless", "--data-dir", str(tmp_path)])
    assert result.exit_code == 2
    assert "not made by `drivetrain demo`" in result.output
    assert (tmp_path / "state.db").read_text() == "someone's real data"


def test_temporary_data_dir_is_removed_after_the_demo(monkeypatch: pytest.MonkeyPatch) -> None:
    made: list[Path] = []

    def remember(context: DemoContext) -> ActResult:
        made.append(context.data_dir)
        return ActResult(True, "noted the data dir")

    monkeypatch.setattr("drivetrain.demo.SCENARIO", (Act("note", "Note", remember),))
    result = runner.invoke(app, ["demo", "--headless", "--duration", "5"])
    assert result.exit_code == 0, result.output
    assert made and not made[0].exists()
