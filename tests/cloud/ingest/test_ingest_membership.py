"""Members of the shared subscription: workers record heartbeats and their clean stop, and
`drivetrain ingest stats` shows a member that is away while its broker session (and whatever
the broker routes into it) lives on."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from typer.testing import CliRunner

from drivetrain.cli import app
from drivetrain.cloud.infra import Database
from drivetrain.cloud.ingest import (
    IngestPipeline,
    IngestWorker,
    MemoryLake,
    MemoryReportedState,
    list_ingest_workers,
)
from drivetrain.cloud.ingest.membership import WorkerIdentity, record_heartbeat
from drivetrain.core.transport import InProcessTransport


def _identity(client_id: str, heartbeat_s: float = 10.0) -> WorkerIdentity:
    return WorkerIdentity(client_id, "ingest", "mqtt://broker:1883", 600, "node-1", 42, heartbeat_s)


def test_a_worker_beats_while_it_runs_and_says_when_it_stopped(database: Database) -> None:
    pipeline = IngestPipeline(database, MemoryLake(), MemoryReportedState())
    with InProcessTransport() as bus:
        worker = IngestWorker(bus, pipeline, identity=_identity("ingest-a", 0.05)).start()
        deadline = datetime.now(UTC) + timedelta(seconds=20)
        members = []
        while datetime.now(UTC) < deadline and not members:
            with database.session() as session:
                members = list_ingest_workers(session, now=datetime.now(UTC))
        assert [(m.client_id, m.state, m.holds_messages) for m in members] == [
            ("ingest-a", "online", False)
        ]
        worker.stop()
    with database.session() as session:
        (member,) = list_ingest_workers(session, now=datetime.now(UTC))
    assert member.state == "stopped" and member.holds_messages
    assert member.session_expires_at == member.stopped_at + timedelta(seconds=600)  # type: ignore[operator]


def test_a_member_that_stopped_beating_is_offline_until_its_session_expires(
    database: Database,
) -> None:
    then = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
    with database.session() as session:
        record_heartbeat(session, _identity("ingest-b"), now=then, started_at=then,
                         acknowledged=10, pending=3, failures=0)  # fmt: skip
    with database.session() as session:
        online = list_ingest_workers(session, now=then + timedelta(seconds=5))
        offline = list_ingest_workers(session, now=then + timedelta(seconds=31))
        expired = list_ingest_workers(session, now=then + timedelta(seconds=601))
        forgotten = list_ingest_workers(session, now=then + timedelta(days=8))
    assert [m.state for m in online] == ["online"]
    assert [(m.state, m.holds_messages) for m in offline] == [("offline", True)]
    assert [(m.state, m.holds_messages) for m in expired] == [("offline", False)]
    assert forgotten == []


def test_ingest_stats_warns_about_an_offline_member(
    database: Database, database_url: str, tmp_path: Path
) -> None:
    now = datetime.now(UTC)
    with database.session() as session:
        record_heartbeat(session, _identity("ingest-c"), now=now - timedelta(minutes=2),
                         started_at=now - timedelta(hours=1), acknowledged=5, pending=0,
                         failures=0)  # fmt: skip
    runner = CliRunner(env={
        "COLUMNS": "200", "NO_COLOR": "1", "DRIVETRAIN_DATA_DIR": str(tmp_path / "data"),
        "DRIVETRAIN_DATABASE_URL": database_url, "DRIVETRAIN_CONFIG": str(tmp_path / "x.toml"),
    })  # fmt: skip
    result = runner.invoke(app, ["ingest", "stats"])
    assert result.exit_code == 0, result.output
    assert "ingest-c" in result.output and "offline" in result.output
    assert "warning: ingest-c is offline" in " ".join(result.output.split())
