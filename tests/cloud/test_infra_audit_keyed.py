"""Attacks on the audit log by someone who can write the database but does not hold the
audit key: edit-and-rehash, downgrade to unkeyed entries, rolling the head back and dropping
a tenant's chain. The keyed chain catches the first two; a signed checkpoint the last two
(both engines)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import text

from drivetrain.cloud.fleet.provisioning import load_or_create_cloud_key
from drivetrain.cloud.infra import Database, record_audit, verify_chain
from drivetrain.cloud.infra.audit import GENESIS_HASH, audit_key_id, compute_entry_hash
from drivetrain.cloud.infra.audit_checkpoints import (
    AuditCheckpoint,
    chain_heads,
    check_checkpoint,
    open_signed_checkpoint,
)
from drivetrain.core.errors import SignatureError

KEY = b"k" * 32
T0 = datetime(2025, 5, 1, 8, 0, tzinfo=UTC)


@pytest.fixture
def keyed(database: Database, database_url: str) -> Iterator[Database]:
    """The migrated database, opened with an audit key."""
    opened = Database(database_url, audit_key=KEY)
    yield opened
    opened.dispose()


def _record(database: Database, count: int, tenant: str = "acme") -> None:
    with database.session() as session:
        for i in range(count):
            record_audit(session, tenant=tenant, actor="dtc_admin", action="vehicle.register",
                         target=f"vehicle:VIN{i:04d}", details={"i": i},
                         now=T0 + timedelta(seconds=i))


def _drop_append_only_triggers(database: Database) -> None:
    with database.engine.begin() as connection:
        if database.dialect == "postgresql":
            connection.execute(text("DROP TRIGGER audit_log_no_change ON audit_log"))
        else:
            connection.execute(text("DROP TRIGGER audit_log_no_update"))
            connection.execute(text("DROP TRIGGER audit_log_no_delete"))


def _rehash_from(database: Database, seq: int, *, target: str, key_id: str | None) -> None:
    """Edit entry ``seq``'s target and recompute it and every later entry with plain SHA-256
    (all an attacker without the key can do), moving the chain head along."""
    with database.session() as session:
        rows = session.execute(text("SELECT * FROM audit_log WHERE tenant_id = 'acme' "
                                    "ORDER BY seq")).mappings().all()
        prev = GENESIS_HASH
        for row in rows:
            if row["seq"] < seq:
                prev = row["entry_hash"]
                continue
            new_target = target if row["seq"] == seq else row["target"]
            occurred = row["occurred_at"]
            if isinstance(occurred, str):
                occurred = datetime.fromisoformat(occurred)
            if occurred.tzinfo is None:
                occurred = occurred.replace(tzinfo=UTC)
            digest = compute_entry_hash(
                tenant="acme", seq=row["seq"], occurred_at=occurred, actor=row["actor"],
                action=row["action"], target=new_target, details_json=row["details"],
                request_id=row["request_id"], prev_hash=prev)
            session.execute(text("UPDATE audit_log SET target = :t, prev_hash = :p, "
                                 "entry_hash = :h, key_id = :k WHERE tenant_id = 'acme' "
                                 "AND seq = :s"),
                            {"t": new_target, "p": prev, "h": digest, "k": key_id,
                             "s": row["seq"]})
            prev = digest
        session.execute(text("UPDATE audit_chains SET last_hash = :h WHERE tenant_id = 'acme'"),
                        {"h": prev})


def test_keyed_entries_carry_the_key_id_and_verify(keyed: Database) -> None:
    _record(keyed, 3)
    with keyed.session() as session:
        result = verify_chain(session, "acme")
        ids = set(session.scalars(text("SELECT key_id FROM audit_log")))
    assert result.ok and result.entries_checked == 3 and result.unkeyed_entries == 0
    assert ids == {audit_key_id(KEY)}


def test_editing_and_rehashing_without_the_key_is_detected(keyed: Database) -> None:
    _record(keyed, 4)
    _drop_append_only_triggers(keyed)
    _rehash_from(keyed, 2, target="vehicle:FORGED", key_id=audit_key_id(KEY))
    with keyed.session() as session:
        broken = verify_chain(session, "acme").first_broken
    assert broken is not None and broken.seq == 2 and "edited" in broken.reason


def test_downgrading_entries_to_unkeyed_hashes_is_detected(keyed: Database) -> None:
    _record(keyed, 4)
    _drop_append_only_triggers(keyed)
    _rehash_from(keyed, 3, target="vehicle:FORGED", key_id=None)
    with keyed.session() as session:
        broken = verify_chain(session, "acme").first_broken
    assert broken is not None and broken.seq == 3 and "unkeyed entry after keyed" in broken.reason


def test_a_chain_rewritten_whole_as_unkeyed_is_counted_and_caught_by_a_checkpoint(
    keyed: Database,
) -> None:
    _record(keyed, 3)
    with keyed.session() as session:
        anchor = AuditCheckpoint(datetime.now(UTC), tuple(chain_heads(session)))
    _drop_append_only_triggers(keyed)
    _rehash_from(keyed, 1, target="vehicle:FORGED", key_id=None)
    with keyed.session() as session:
        result = verify_chain(session, "acme")
        problems = check_checkpoint(session, anchor)
    # The chain alone cannot tell a rewrite from entries written before keying...
    assert result.ok and result.unkeyed_entries == 3
    # ...the checkpoint can.
    expected = (f"tenant 'acme': entry 3 differs from the checkpoint of "
                f"{anchor.taken_at.isoformat()} (the chain up to it was rewritten)")
    assert problems == [expected]


def test_a_verifier_with_another_key_says_so(keyed: Database, database_url: str) -> None:
    _record(keyed, 2)
    other = Database(database_url, audit_key=b"x" * 32)
    try:
        with other.session() as session:
            broken = verify_chain(session, "acme").first_broken
    finally:
        other.dispose()
    assert broken is not None and broken.seq == 1
    assert f"keyed with audit key {audit_key_id(KEY)}" in broken.reason


def test_rolling_back_the_chain_head_is_caught_by_a_checkpoint(keyed: Database) -> None:
    _record(keyed, 5)
    with keyed.session() as session:
        anchor = AuditCheckpoint(datetime.now(UTC), tuple(chain_heads(session)))
        third = session.scalar(text("SELECT entry_hash FROM audit_log WHERE seq = 3"))
    _drop_append_only_triggers(keyed)
    with keyed.session() as session:
        session.execute(text("DELETE FROM audit_log WHERE tenant_id = 'acme' AND seq > 3"))
        session.execute(text("UPDATE audit_chains SET last_seq = 3, last_hash = :h "
                             "WHERE tenant_id = 'acme'"), {"h": third})
    with keyed.session() as session:
        assert verify_chain(session, "acme").ok  # a shorter chain is still a valid chain
        problems = check_checkpoint(session, anchor)
    assert len(problems) == 1 and "entry 5" in problems[0] and "gone" in problems[0]


def test_dropping_a_tenants_chain_is_caught_by_a_checkpoint(keyed: Database) -> None:
    _record(keyed, 2, tenant="acme")
    _record(keyed, 3, tenant="globex")
    with keyed.session() as session:
        anchor = AuditCheckpoint(datetime.now(UTC), tuple(chain_heads(session)))
    assert [(h.tenant, h.seq) for h in anchor.heads] == [("acme", 2), ("globex", 3)]
    _drop_append_only_triggers(keyed)
    with keyed.session() as session:
        session.execute(text("DELETE FROM audit_log WHERE tenant_id = 'globex'"))
        session.execute(text("DELETE FROM audit_chains WHERE tenant_id = 'globex'"))
    with keyed.session() as session:
        assert verify_chain(session).ok
        problems = check_checkpoint(session, anchor)
    assert len(problems) == 1 and problems[0].startswith("tenant 'globex': entry 3")


def test_checkpoint_round_trips_and_refuses_a_foreign_document() -> None:
    anchor = AuditCheckpoint(T0, ())
    assert AuditCheckpoint.from_dict(json.loads(json.dumps(anchor.to_dict()))) == anchor
    with pytest.raises(Exception, match="not an audit checkpoint"):
        AuditCheckpoint.from_dict({"format": "x"})


def test_cli_checkpoint_is_signed_and_a_tampered_one_is_refused(
    cli: Callable[..., str], tmp_path: Path,
) -> None:
    cli("db", "upgrade")
    cli("auth", "create-tenant", "acme")
    written = cli("db", "audit-checkpoint", "--out-dir", str(tmp_path / "anchors"))
    assert "audit checkpoint signed by key" in written
    out = next((tmp_path / "anchors").glob("audit-checkpoint-*.json"))
    assert "1 checkpointed chain heads in place" in cli("db", "verify-audit",
                                                        "--checkpoint", str(out))
    document = json.loads(out.read_text())
    document["checkpoint"]["heads"][0]["seq"] = 1_000  # an attacker moving the anchor
    out.write_text(json.dumps(document))
    assert "signature does not verify" in cli("db", "verify-audit", "--checkpoint", str(out),
                                             code=1)


def test_serve_writes_signed_checkpoints_on_a_schedule(
    keyed: Database, tmp_path: Path,
) -> None:
    from drivetrain.api.background import ControlPlane
    from drivetrain.core.crypto import SigningKey
    from drivetrain.core.settings import load_settings

    _record(keyed, 2)
    anchors = tmp_path / "anchors"
    settings = load_settings(data_dir=tmp_path / "data", audit_checkpoint_dir=anchors,
                             audit_checkpoint_interval_s=0.2)
    plane = ControlPlane(settings, keyed, workers=False).start()
    try:
        deadline = time.monotonic() + 20
        while len(list(anchors.glob("*.json"))) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        plane.stop()
    files = sorted(anchors.glob("audit-checkpoint-*.json"))
    assert len(files) >= 2
    cloud_key = load_or_create_cloud_key(settings.cloud_key_path, create=False)
    anchor = open_signed_checkpoint(json.loads(files[-1].read_text()), cloud_key.verify_key)
    assert [(h.tenant, h.seq) for h in anchor.heads] == [("acme", 2)]
    with pytest.raises(SignatureError):
        open_signed_checkpoint(json.loads(files[-1].read_text()),
                               SigningKey.generate().verify_key)
