"""Text from data cannot drive the terminal: a client named with ANSI escapes, OSC title
sequences, a one-byte CSI, bidirectional overrides or Rich markup is printed escaped, in
tables, error lines and JSON alike."""

from __future__ import annotations

import io
import json
import re
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from rich.console import Console

from drivetrain.commands import campaign, jobs
from drivetrain.commands.output import format_cell, printable

HOSTILE = "\x1b]0;pwned\x07\x1b[31mRED\x1b[2J\x9b1;1H[bold]admin[/bold]\u202eevil\r"
# Anything a terminal acts on: C0 but tab/newline, DEL, C1, bidi overrides and isolates.
_ACTIVE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def test_a_client_named_with_terminal_escapes_is_listed_escaped(cli: Callable[..., str]) -> None:
    cli("db", "upgrade")
    cli("auth", "create-tenant", "acme")
    cli("auth", "create-client", "--tenant", "acme", "--role", "read_only", "--name", HOSTILE)
    listed = cli("auth", "list-clients", "--tenant", "acme")
    assert not _ACTIVE.search(listed), repr(listed)
    assert "\\x1b]0;pwned\\x07\\x1b[31mRED" in listed
    assert "[bold]admin[/bold]" in listed  # markup shown as typed, not applied
    assert "\\u202eevil\\x0d" in listed
    as_json = json.loads(cli("auth", "list-clients", "--tenant", "acme", "--json"))
    assert HOSTILE in [c["name"] for c in as_json]  # JSON keeps the value, escaped by JSON


def test_an_error_quoting_hostile_input_is_escaped() -> None:
    import typer
    from typer.testing import CliRunner

    from drivetrain.commands.db import fail

    app = typer.Typer()

    @app.command()
    def run() -> None:
        fail(f"unknown vehicle {HOSTILE}\nsecond line of our own")

    result = CliRunner().invoke(app, [])
    assert result.exit_code == 1
    assert not _ACTIVE.search(result.output), repr(result.output)
    assert "\\x1b[2J" in result.output and "\nsecond line of our own" in result.output


@settings(max_examples=300)
@given(st.text())
def test_fuzz_no_text_reaches_the_terminal_with_a_control_character(text: str) -> None:
    assert not _ACTIVE.search(format_cell(text))
    assert not _ACTIVE.search(printable(text, keep_newlines=True))
    assert "\n" not in format_cell(text)


def test_ordinary_text_is_unchanged() -> None:
    for text in ("Vehicle.Speed", "Zoë's fleet — EU", "日本語", "a b\tc"):
        assert printable(text, keep_newlines=True) == text


def _captured(monkeypatch: pytest.MonkeyPatch, module: object) -> io.StringIO:
    buffer = io.StringIO()
    monkeypatch.setattr(module, "_out", Console(file=buffer, force_terminal=True, width=400,
                                                highlight=False))
    return buffer


def _plain(rendered: str) -> str:
    """What the terminal receives minus the styling our own markup adds (SGR sequences that
    end in 'm' right after an ESC we emitted are ours; escaped data shows as '\\x1b')."""
    return re.sub("\x1b\\[[0-9;]*m", "", rendered)


def test_a_vehicles_answer_with_escapes_is_shown_escaped_in_job_output(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    buffer = _captured(monkeypatch, jobs)
    counts = {k: 1 for k in ("total", "queued", "delivered", "succeeded", "failed",
                              "timed_out", "cancelled")}
    jobs._show_job({"job_id": "j1", "name": HOSTILE, "status": "running", "origin": "api",
                    "created_at": "2026-01-01T00:00:00Z", "created_by": HOSTILE,
                    "query": HOSTILE, "counts": counts, "reason": HOSTILE,
                    "waiting_reason": HOSTILE})
    shown = _plain(buffer.getvalue())
    assert not _ACTIVE.search(shown), repr(shown)
    assert "[bold]admin[/bold]" in shown and "\\x1b]0;pwned" in shown


def test_a_campaign_reason_with_markup_is_shown_as_typed(monkeypatch: pytest.MonkeyPatch) -> None:
    buffer = _captured(monkeypatch, campaign)
    definition = {"campaign": {"signals": ["Vehicle.Speed"],
                               "triggers": [{"name": HOSTILE, "expression": HOSTILE}]},
                  "targeting": {"query": HOSTILE, "vins": [], "max_vehicles": None},
                  "start_at": None, "end_at": None}
    campaign._show({"campaign_id": "c1", "status": "draft", "version": None,
                    "latest_version": 1, "current": {"definition": definition,
                                                     "status": "draft"},
                    "vehicles": {}, "reason": HOSTILE})
    shown = _plain(buffer.getvalue())
    assert not _ACTIVE.search(shown), repr(shown)
    assert shown.count("[bold]admin[/bold]") >= 3


# --- `drivetrain edge`: what the cloud installed and the vehicle reported --------------------
def _edge(*args: str) -> str:
    from typer.testing import CliRunner

    from drivetrain.cli import app

    result = CliRunner().invoke(app, ["edge", *args])
    assert result.exit_code == 0, result.output
    return result.output


def test_an_edge_buffer_holding_hostile_campaigns_is_shown_escaped(tmp_path: Path) -> None:
    from drivetrain.edge import SqliteBuffer
    from drivetrain.edge.state import InstalledCampaigns

    path = tmp_path / "[bold]admin[/bold].db"
    store = SqliteBuffer(path)
    store.save_state([InstalledCampaigns(campaigns=({
        "id": HOSTILE, "version": HOSTILE, "priority": HOSTILE, "signals": [HOSTILE],
        "period_ms": HOSTILE, "triggers": [{"name": HOSTILE}],
    },), versions={})])
    store.close()
    shown = _edge("buffer", str(path))
    assert "installed campaigns" in shown
    assert not _ACTIVE.search(shown), repr(shown)
    assert shown.count("[bold]admin[/bold]") >= 7  # the file name and six cells, as typed
    assert "\\x1b]0;pwned" in shown


def test_the_edge_agent_summary_shows_cloud_supplied_names_escaped() -> None:
    from drivetrain.commands import edge
    from drivetrain.edge.agent.config import AgentStats
    from drivetrain.edge.uplink import UplinkStats

    uplink = UplinkStats(published=1, confirmed=1, resent=0, refused_by_transport=0,
                         in_flight=0, backing_off=False, last_error=HOSTILE)
    stats = AgentStats(ticks=1, samples_in=1, samples_collected=1, batches_sealed=1,
                       bytes_sealed=1, events_sent=0, triggers_fired=0, evicted_messages=0,
                       buffered_messages=0, buffered_bytes=0,
                       downlink_accepted={HOSTILE: 1}, downlink_refused={HOSTILE: 2},
                       acks_sent={}, uplink=uplink, campaigns=(HOSTILE,))
    buffer = io.StringIO()
    Console(file=buffer, force_terminal=True, width=400, highlight=False).print(
        edge._summary(stats))
    shown = _plain(buffer.getvalue())
    assert not _ACTIVE.search(shown), repr(shown)
    assert shown.count("[bold]admin[/bold]") == 3


def test_commerce_tables_and_lines_show_account_and_vehicle_text_escaped(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from rich.table import Table

    from drivetrain.commands import commerce

    buffer = _captured(monkeypatch, commerce)
    table = Table("feature", "vehicle's answer")
    commerce._row(table, HOSTILE, HOSTILE)
    commerce._out.print(table)
    commerce._out.print(commerce._sub_line({
        "subscription_id": "sub-1", "offer_id": HOSTILE, "vin": HOSTILE,
        "account_id": HOSTILE, "status": "active", "cancel_at_period_end": False,
        "end_reason": HOSTILE, "price": "9.99", "currency": "EUR", "billing": "monthly",
        "period_end": None}))
    shown = _plain(buffer.getvalue())
    assert not _ACTIVE.search(shown), repr(shown)
    assert shown.count("[bold]admin[/bold]") == 6
