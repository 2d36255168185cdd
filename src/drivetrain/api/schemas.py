"""HTTP request and response bodies of the infra routes (Pydantic v2, at the edge only)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from drivetrain.cloud.infra import AuditEntry, Client, NewClient, Principal, Role, Scope, Tenant
from drivetrain.cloud.infra.auth import format_scopes

TENANT_ID_PATTERN = r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TokenResponse(BaseModel):
    """RFC 6749 §5.1 access-token response."""

    access_token: str
    token_type: str = "Bearer"
    expires_in: int = Field(description="Seconds until the token expires.")
    scope: str = Field(description="Granted scopes, space-separated.")


class WhoAmI(BaseModel):
    """The verified caller."""

    client_id: str
    tenant: str
    role: Role
    scopes: list[Scope]
    expires_at: datetime

    @classmethod
    def of(cls, principal: Principal) -> WhoAmI:
        return cls(
            client_id=principal.client_id,
            tenant=principal.tenant,
            role=principal.role,
            scopes=sorted(principal.scopes),
            expires_at=principal.expires_at,
        )


class TenantCreate(_Strict):
    tenant_id: str = Field(pattern=TENANT_ID_PATTERN, examples=["acme"])
    display_name: str | None = Field(None, min_length=1, max_length=200)


class TenantOut(BaseModel):
    tenant_id: str
    display_name: str
    created_at: datetime

    @classmethod
    def of(cls, tenant: Tenant) -> TenantOut:
        return cls(
            tenant_id=tenant.tenant_id,
            display_name=tenant.display_name,
            created_at=tenant.created_at,
        )


class ClientCreate(_Strict):
    role: Role
    name: str | None = Field(None, min_length=1, max_length=200)
    scopes: list[Scope] | None = Field(
        None, description="Narrow the client to these scopes (default: all of its role's)."
    )


class ClientOut(BaseModel):
    client_id: str
    tenant: str
    name: str
    role: Role
    scopes: str = Field(description="Scopes the client may request, space-separated.")
    disabled: bool
    created_at: datetime

    @classmethod
    def of(cls, client: Client) -> ClientOut:
        return cls(
            client_id=client.client_id,
            tenant=client.tenant,
            name=client.name,
            role=client.role,
            scopes=format_scopes(client.scopes),
            disabled=client.disabled,
            created_at=client.created_at,
        )


class NewClientOut(ClientOut):
    client_secret: str = Field(description="Shown once; only its hash is stored.")

    @classmethod
    def of_new(cls, new: NewClient) -> NewClientOut:
        return cls(**ClientOut.of(new.client).model_dump(), client_secret=new.client_secret)


class TenantCreated(BaseModel):
    tenant: TenantOut
    admin_client: NewClientOut


class AuditEntryOut(BaseModel):
    tenant: str
    seq: int
    occurred_at: datetime
    actor: str
    action: str
    target: str
    details: dict[str, Any]
    request_id: str | None
    prev_hash: str
    entry_hash: str
    region: str | None = Field(
        default=None,
        description="Region store holding the entry's actor, target and details (an entry "
        "about one vehicle); the hash chain covers a pointer to them. Null: all in the chain.",
    )

    @classmethod
    def of(cls, entry: AuditEntry) -> AuditEntryOut:
        return cls(
            tenant=entry.tenant,
            seq=entry.seq,
            occurred_at=entry.occurred_at,
            actor=entry.actor,
            action=entry.action,
            target=entry.target,
            details=dict(entry.details),
            request_id=entry.request_id,
            prev_hash=entry.prev_hash,
            entry_hash=entry.entry_hash,
            region=entry.region,
        )


class AuditPage(BaseModel):
    entries: list[AuditEntryOut]
    next_after_seq: int | None = Field(
        description="Pass as after_seq for the next page; null when this page is the last."
    )


class ChainReport(BaseModel):
    ok: bool
    entries_checked: int
    first_broken_seq: int | None
    reason: str | None
    #: Entries hashed without the audit key (written before keying): recomputable by anyone
    #: who can write the database.
    unkeyed_entries: int = 0
