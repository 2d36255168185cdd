"""The audit log: append-only for real, hash-chained, tampering evident, on both engines."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text

from drivetrain.cloud.infra import Database, list_audit, record_audit, verify_chain
from drivetrain.cloud.infra.audit import GENESIS_HASH, compute_entry_hash
from drivetrain.core.errors import BadInputError, DrivetrainError

T0 = datetime(2025, 5, 1, 8, 0, tzinfo=UTC)


def _record(database: Database, count: int, tenant: str = "acme") -> None:
    with database.session() as session:
        for i in range(count):
            record_audit(
                session,
                tenant=tenant,
                actor="dtc_admin",
                action="vehicle.register",
                target=f"vehicle:VIN{i:04d}",
                details={"i": i, "model": "e-208", "tags": ["a", "b"]},
                request_id=f"req-{i}",
                now=T0 + timedelta(seconds=i),
            )


def _drop_append_only_triggers(database: Database) -> None:
    # What an attacker with owner rights on the database could do; the chain must still tell.
    with database.engine.begin() as connection:
        if database.dialect == "postgresql":
            connection.execute(text("DROP TRIGGER audit_log_no_change ON audit_log"))
        else:
            connection.execute(text("DROP TRIGGER audit_log_no_update"))
            connection.execute(text("DROP TRIGGER audit_log_no_delete"))


def test_entries_chain_from_the_genesis_hash_and_list_in_order(database: Database) -> None:
    _record(database, 3)
    with database.session() as session:
        entries = list_audit(session, "acme")
    assert [e.seq for e in entries] == [1, 2, 3]
    assert entries[0].prev_hash == GENESIS_HASH
    assert entries[1].prev_hash == entries[0].entry_hash
    assert entries[2].details == {"i": 2, "model": "e-208", "tags": ["a", "b"]}
    assert entries[2].occurred_at == T0 + timedelta(seconds=2)
    assert entries[2].request_id == "req-2"


def test_each_tenant_has_its_own_chain_and_sees_only_its_entries(database: Database) -> None:
    _record(database, 2, "acme")
    _record(database, 1, "globex")
    with database.session() as session:
        assert [e.target for e in list_audit(session, "globex")] == ["vehicle:VIN0000"]
        assert [e.seq for e in list_audit(session, "acme")] == [1, 2]
        assert verify_chain(session).entries_checked == 3


def test_listing_pages_by_sequence_number_and_filters_by_action(database: Database) -> None:
    _record(database, 5)
    with database.session() as session:
        record_audit(session, tenant="acme", actor="a", action="client.create", target="c")
        page = list_audit(session, "acme", after_seq=2, limit=2)
        assert [e.seq for e in page] == [3, 4]
        assert [e.seq for e in list_audit(session, "acme", action="client.create")] == [6]
        with pytest.raises(BadInputError, match="limit=0"):
            list_audit(session, "acme", limit=0)


def test_intact_chain_verifies(database: Database) -> None:
    _record(database, 4)
    with database.session() as session:
        result = verify_chain(session, "acme")
    assert result.ok and result.entries_checked == 4


def test_database_refuses_to_edit_or_delete_audit_rows(database: Database) -> None:
    _record(database, 2)
    for statement in ("UPDATE audit_log SET actor = 'x'", "DELETE FROM audit_log"):
        with pytest.raises(DrivetrainError, match="append-only"):
            with database.session() as session:
                session.execute(text(statement))
    with database.session() as session:
        assert len(list_audit(session, "acme")) == 2


def test_edited_row_is_detected_at_that_entry(database: Database) -> None:
    _record(database, 5)
    _drop_append_only_triggers(database)
    with database.session() as session:
        session.execute(text("UPDATE audit_log SET target = 'vehicle:FORGED' WHERE seq = 3"))
    with database.session() as session:
        result = verify_chain(session)
    assert not result.ok
    assert result.first_broken is not None
    assert (result.first_broken.tenant, result.first_broken.seq) == ("acme", 3)
    assert "edited" in result.first_broken.reason


def test_edited_row_with_recomputed_hash_breaks_the_next_link(database: Database) -> None:
    _record(database, 4)
    _drop_append_only_triggers(database)
    with database.session() as session:
        row = session.execute(text("SELECT * FROM audit_log WHERE seq = 2")).mappings().one()
        forged = compute_entry_hash(
            tenant=row["tenant_id"],
            seq=2,
            occurred_at=T0 + timedelta(seconds=1),
            actor="dtc_admin",
            action="vehicle.register",
            target="vehicle:FORGED",
            details_json=row["details"],
            request_id=row["request_id"],
            prev_hash=row["prev_hash"],
        )
        session.execute(
            text("UPDATE audit_log SET target = 'vehicle:FORGED', entry_hash = :h WHERE seq = 2"),
            {"h": forged},
        )
    with database.session() as session:
        broken = verify_chain(session, "acme").first_broken
    assert broken is not None and broken.seq == 3
    assert "prev_hash" in broken.reason


def test_deleted_rows_are_detected(database: Database) -> None:
    _record(database, 5)
    _drop_append_only_triggers(database)
    with database.session() as session:
        session.execute(text("DELETE FROM audit_log WHERE seq = 2"))
    with database.session() as session:
        broken = verify_chain(session, "acme").first_broken
    assert broken is not None and broken.seq == 3 and "gap" in broken.reason
    with database.session() as session:
        session.execute(text("DELETE FROM audit_log WHERE seq >= 2"))
    with database.session() as session:
        broken = verify_chain(session, "acme").first_broken
    assert broken is not None and broken.seq == 2 and "removed" in broken.reason


def test_entry_is_rolled_back_with_the_change_it_records(database: Database) -> None:
    _record(database, 1)
    with pytest.raises(RuntimeError), database.session() as session:
        record_audit(session, tenant="acme", actor="a", action="tenant.delete", target="t")
        raise RuntimeError("the change failed")
    _record(database, 1)
    with database.session() as session:
        assert [e.seq for e in list_audit(session, "acme")] == [1, 2]
        assert verify_chain(session).ok


def test_concurrent_appenders_never_fork_the_chain(database: Database) -> None:
    errors: list[BaseException] = []

    def append(worker: int) -> None:
        try:
            for i in range(8):
                with database.session() as session:
                    record_audit(
                        session, tenant="acme", actor=f"w{worker}", action="x.y", target=str(i)
                    )
        except BaseException as e:  # collected and asserted on below
            errors.append(e)

    _record(database, 1)  # the chain head exists before the race
    threads = [threading.Thread(target=append, args=(w,)) for w in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    with database.session() as session:
        entries = list_audit(session, "acme", limit=1000)
        assert [e.seq for e in entries] == list(range(1, 34))
        assert verify_chain(session).ok


def test_malformed_action_name_is_refused(database: Database) -> None:
    with database.session() as session, pytest.raises(BadInputError, match="'Create Tenant'"):
        record_audit(session, tenant="acme", actor="a", action="Create Tenant", target="t")
