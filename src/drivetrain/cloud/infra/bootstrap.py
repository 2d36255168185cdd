"""Secrets and first credentials of a deployment.

Embedded deployment: when no ``auth_secret`` is configured, a random one is generated once per
data directory (``data_dir/auth-secret``, mode 0600), and a bootstrap admin client (tenant
``default``, role ``admin``) is created with its credentials in
``data_dir/bootstrap-admin.json`` (mode 0600). Only the file's path is ever printed.

Production: the secret must come from ``DRIVETRAIN_AUTH_SECRET`` (Settings refuses to load
otherwise) and no admin is created automatically (``drivetrain auth create-client`` does it).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
import stat
from dataclasses import dataclass, field
from pathlib import Path

from drivetrain.cloud.infra.auth import OPERATOR_TENANT, Role, TokenKey
from drivetrain.cloud.infra.credentials import verify_secret
from drivetrain.cloud.infra.database import Database
from drivetrain.cloud.infra.models import ClientRow, TenantRow
from drivetrain.cloud.infra.service import create_client, create_tenant
from drivetrain.core.errors import ConfigurationError
from drivetrain.core.settings import Settings

AUTH_SECRET_FILE = "auth-secret"
BOOTSTRAP_FILE = "bootstrap-admin.json"
BOOTSTRAP_ACTOR = "system:bootstrap"
_PRIVATE = 0o600


@dataclass(frozen=True, slots=True)
class BootstrapCredentials:
    """The embedded deployment's first admin client and where its credentials are stored."""

    client_id: str
    client_secret: str = field(repr=False)
    tenant: str
    path: Path


def write_private_file(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically, readable by the owner only (0600).

    Raises :class:`ConfigurationError` when the directory is not writable.
    """
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, _PRIVATE)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(tmp, path)
    except OSError as e:
        raise ConfigurationError(f"cannot write {path}: {e.strerror}") from e


def _read_private_file(path: Path) -> str:
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        raise ConfigurationError(
            f"{path} is readable by other users (mode {mode:o}); expected 600 "
            f"(fix with: chmod 600 {path})"
        )
    return path.read_text(encoding="utf-8")


def resolve_token_key(settings: Settings) -> TokenKey:
    """The key that signs access tokens for this deployment.

    Uses ``settings.auth_secret`` when set; in embedded mode otherwise reads (or generates
    once) ``data_dir/auth-secret``. Raises :class:`ConfigurationError` for a secret shorter
    than 32 bytes, a secret file readable by others, or production without a secret.
    """
    if settings.auth_secret is not None:
        secret = settings.auth_secret.get_secret_value().encode("utf-8")
        try:
            return TokenKey(secret=secret)
        except ValueError as e:
            raise ConfigurationError(f"DRIVETRAIN_AUTH_SECRET is too short: {e}") from e
    if settings.deployment != "embedded":
        raise ConfigurationError(
            "DRIVETRAIN_AUTH_SECRET is required when deployment is "
            f"{settings.deployment!r}; only the embedded deployment generates one"
        )
    path = settings.data_dir / AUTH_SECRET_FILE
    if not path.exists():
        write_private_file(path, secrets.token_urlsafe(48) + "\n")
    secret_text = _read_private_file(path).strip()
    try:
        return TokenKey(secret=secret_text.encode("utf-8"))
    except ValueError as e:
        raise ConfigurationError(f"{path} holds an unusable key: {e}") from e


def resolve_audit_key(settings: Settings) -> bytes | None:
    """The key that authenticates audit entries (HMAC-SHA256): ``settings.audit_key`` when
    set, else one derived from the auth secret (so it lives wherever that secret lives, never
    in the database). None only where neither is available (a fleet deployment without
    ``DRIVETRAIN_AUTH_SECRET``, which cannot serve the API either): its entries are unkeyed.

    Raises :class:`ConfigurationError` for an audit key shorter than 32 bytes or an auth
    secret file readable by others.
    """
    if settings.audit_key is not None:
        key = settings.audit_key.get_secret_value().encode("utf-8")
        if len(key) < 32:
            raise ConfigurationError(
                f"DRIVETRAIN_AUDIT_KEY is {len(key)} bytes; expected at least 32")
        return key
    if settings.auth_secret is None and settings.deployment != "embedded":
        return None
    token_secret = resolve_token_key(settings).secret
    return hmac.new(token_secret, b"drivetrain audit chain key v1", hashlib.sha256).digest()


def _load_existing(path: Path, database: Database) -> BootstrapCredentials | None:
    if not path.exists():
        return None
    try:
        stored = json.loads(_read_private_file(path))
        client_id, client_secret = str(stored["client_id"]), str(stored["client_secret"])
    except (ValueError, KeyError, TypeError):
        return None  # unreadable: a fresh admin replaces it
    with database.session() as session:
        row = session.get(ClientRow, client_id)
        valid = (
            row is not None
            and not row.disabled
            and row.role == Role.ADMIN.value
            and verify_secret(client_secret, row.secret_hash)
        )
        tenant = row.tenant_id if row is not None else OPERATOR_TENANT
    if not valid:
        return None
    return BootstrapCredentials(
        client_id=client_id, client_secret=client_secret, tenant=tenant, path=path
    )


def ensure_embedded_bootstrap(settings: Settings, database: Database) -> BootstrapCredentials:
    """Make sure the embedded deployment has its bootstrap admin; return its credentials.

    Idempotent: an existing valid ``data_dir/bootstrap-admin.json`` is reused; otherwise the
    ``default`` tenant (if missing) and a new admin client are created and the file is
    (re)written with mode 0600. The database must be migrated. Raises
    :class:`ConfigurationError` outside the embedded deployment (production creates admins
    only explicitly) and :class:`StorageError` when the database fails.
    """
    if settings.deployment != "embedded":
        raise ConfigurationError(
            f"deployment {settings.deployment!r} never creates a bootstrap admin; create one "
            "with: drivetrain auth create-client --tenant default --role admin"
        )
    path = settings.data_dir / BOOTSTRAP_FILE
    existing = _load_existing(path, database)
    if existing is not None:
        return existing
    with database.session() as session:
        if session.get(TenantRow, OPERATOR_TENANT) is None:
            create_tenant(
                session,
                OPERATOR_TENANT,
                display_name="Platform operator",
                actor=BOOTSTRAP_ACTOR,
            )
        new = create_client(
            session,
            tenant=OPERATOR_TENANT,
            role=Role.ADMIN,
            name="bootstrap admin",
            actor=BOOTSTRAP_ACTOR,
        )
    document = {
        "client_id": new.client.client_id,
        "client_secret": new.client_secret,
        "tenant": OPERATOR_TENANT,
        "role": Role.ADMIN.value,
        "token_endpoint": "/v1/auth/token",
        "grant_type": "client_credentials",
    }
    write_private_file(path, json.dumps(document, indent=2) + "\n")
    return BootstrapCredentials(
        client_id=new.client.client_id,
        client_secret=new.client_secret,
        tenant=OPERATOR_TENANT,
        path=path,
    )
