"""Tenants, clients and the client-credentials grant against a real database (both engines)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import text

from drivetrain.cloud.infra import (
    ROLE_SCOPES,
    Database,
    Role,
    Scope,
    TokenKey,
    authenticate_client,
    create_client,
    create_tenant,
    disable_client,
    get_client,
    issue_access_token,
    list_audit,
    list_clients,
    verify_token,
)
from drivetrain.core.errors import (
    AuthenticationError,
    BadInputError,
    ConflictError,
    NotFoundError,
    PermissionDeniedError,
)

KEY = TokenKey(secret=b"s" * 40)


def _tenant(database: Database, tenant_id: str = "acme") -> None:
    with database.session() as session:
        create_tenant(session, tenant_id, actor="test")


def test_new_tenant_records_its_creation_in_its_own_audit_chain(database: Database) -> None:
    with database.session() as session:
        tenant = create_tenant(session, "acme", display_name="ACME Mobility", actor="op", request_id="r1")
    assert tenant.display_name == "ACME Mobility"
    with database.session() as session:
        [entry] = list_audit(session, "acme")
    assert (entry.action, entry.actor, entry.target, entry.request_id) == (
        "tenant.create", "op", "tenant:acme", "r1"
    )


def test_duplicate_tenant_is_a_conflict(database: Database) -> None:
    _tenant(database)
    with pytest.raises(ConflictError, match="tenant 'acme' already exists"):
        _tenant(database)


@pytest.mark.parametrize("bad", ["", "ACME", "-acme", "acme-", "a_b", "x" * 64, "acme corp"])
def test_malformed_tenant_id_is_refused_quoting_it(database: Database, bad: str) -> None:
    with database.session() as session:
        with pytest.raises(BadInputError, match=f"tenant id {bad!r} is invalid"):
            create_tenant(session, bad, actor="test")


def test_client_gets_its_roles_scopes_and_a_secret_stored_only_hashed(database: Database) -> None:
    _tenant(database)
    with database.session() as session:
        new = create_client(session, tenant="acme", role=Role.SECURITY_ANALYST, actor="test")
    assert new.client.scopes == ROLE_SCOPES[Role.SECURITY_ANALYST]
    assert new.client_secret not in repr(new)
    with database.session() as session:
        stored = session.execute(
            text("SELECT secret_hash FROM clients")
        ).scalar_one()
        assert new.client_secret not in stored
        assert authenticate_client(session, new.client.client_id, new.client_secret) == new.client
        assert [e.action for e in list_audit(session, "acme")] == ["tenant.create", "client.create"]


def test_client_may_be_narrowed_but_not_widened_beyond_its_role(database: Database) -> None:
    _tenant(database)
    with database.session() as session:
        narrow = create_client(
            session, tenant="acme", role=Role.SERVICE, scopes=frozenset({Scope.FLEET_READ}), actor="t"
        )
        assert narrow.client.scopes == {Scope.FLEET_READ}
        with pytest.raises(BadInputError, match="'admin'"):
            create_client(
                session, tenant="acme", role=Role.SERVICE, scopes=frozenset({Scope.ADMIN}), actor="t"
            )


def test_client_in_unknown_tenant_is_not_found(database: Database) -> None:
    with database.session() as session:
        with pytest.raises(NotFoundError, match="tenant 'ghost' does not exist"):
            create_client(session, tenant="ghost", role=Role.READ_ONLY, actor="t")


def test_wrong_secret_unknown_client_and_disabled_client_fail_alike(database: Database) -> None:
    _tenant(database)
    with database.session() as session:
        new = create_client(session, tenant="acme", role=Role.READ_ONLY, actor="t")
    client_id = new.client.client_id
    with database.session() as session:
        with pytest.raises(AuthenticationError, match="invalid client credentials"):
            authenticate_client(session, client_id, new.client_secret + "x")
        with pytest.raises(AuthenticationError, match="invalid client credentials"):
            authenticate_client(session, "dtc_nobody", new.client_secret)
        disable_client(session, tenant="acme", client_id=client_id, actor="t")
    with database.session() as session:
        with pytest.raises(AuthenticationError, match="invalid client credentials"):
            authenticate_client(session, client_id, new.client_secret)
        with pytest.raises(ConflictError, match="already disabled"):
            disable_client(session, tenant="acme", client_id=client_id, actor="t")


def test_clients_of_another_tenant_are_invisible(database: Database) -> None:
    _tenant(database, "acme")
    _tenant(database, "globex")
    with database.session() as session:
        new = create_client(session, tenant="acme", role=Role.READ_ONLY, actor="t")
        with pytest.raises(NotFoundError):
            get_client(session, "globex", new.client.client_id)
        with pytest.raises(NotFoundError):
            disable_client(session, tenant="globex", client_id=new.client.client_id, actor="t")
        assert list_clients(session, "globex") == []
        assert [c.client_id for c in list_clients(session, "acme")] == [new.client.client_id]


def test_client_credentials_grant_issues_a_token_limited_to_the_request(database: Database) -> None:
    _tenant(database)
    with database.session() as session:
        new = create_client(session, tenant="acme", role=Role.FLEET_OPERATOR, actor="t")
        issued = issue_access_token(
            session,
            client_id=new.client.client_id,
            client_secret=new.client_secret,
            requested_scopes="fleet:read",
            key=KEY,
            ttl_s=300,
        )
        principal = verify_token(issued.access_token, KEY, datetime.now(UTC))
        assert principal.scopes == {Scope.FLEET_READ}
        assert (principal.tenant, principal.role) == ("acme", Role.FLEET_OPERATOR)
        with pytest.raises(PermissionDeniedError, match="'admin'"):
            issue_access_token(
                session,
                client_id=new.client.client_id,
                client_secret=new.client_secret,
                requested_scopes="fleet:read admin",
                key=KEY,
                ttl_s=300,
            )


def test_unknown_client_id_costs_a_full_secret_check_like_a_wrong_secret(
    database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    from drivetrain.cloud.infra import service
    from drivetrain.cloud.infra.credentials import DUMMY_HASH

    checked: list[str] = []
    real_verify = service.verify_secret

    def spy(secret: str, stored_hash: str) -> bool:
        checked.append(stored_hash)
        return real_verify(secret, stored_hash)

    monkeypatch.setattr(service, "verify_secret", spy)
    with database.session() as session, pytest.raises(AuthenticationError):
        authenticate_client(session, "dtc_nobody", "guess")
    assert checked == [DUMMY_HASH]
