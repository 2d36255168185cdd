"""The platform's spine: state database, authn/authz, audit log.

Public surface (everything else in this package is internal):

- :class:`Database`, :func:`open_database` — engine, transactional sessions, migrations;
  :class:`PoolOptions` (connection pools, PgBouncer), :data:`READ_ONLY_INFO` (marks a
  read-replica session: see ``Database.read_session``).
- :class:`Base`, :class:`UTCDateTime` — declarative base and timestamp type for every domain's
  tables (one metadata, one constraint naming convention).
- :func:`record_audit`, :func:`list_audit`, :func:`verify_chain`, :class:`AuditEntry` — the
  append-only, hash-chained audit log.
- :class:`Principal`, :class:`Role`, :class:`Scope`, :data:`ROLE_SCOPES`, :func:`authorize`,
  :func:`verify_token`, :class:`TokenKey` — pure token and scope logic.
- :func:`resolve_token_key`, :func:`ensure_embedded_bootstrap`,
  :class:`BootstrapCredentials` — deployment secrets and the embedded bootstrap admin.
- the tenant/client/token functions of :mod:`drivetrain.cloud.infra.service`.
"""

from drivetrain.cloud.infra.audit import (
    AuditEntry,
    BrokenEntry,
    ChainVerification,
    list_audit,
    record_audit,
    verify_chain,
)
from drivetrain.cloud.infra.auth import (
    OPERATOR_TENANT,
    ROLE_SCOPES,
    IssuedToken,
    Principal,
    Role,
    Scope,
    TokenKey,
    authorize,
    issue_token,
    parse_role,
    parse_scopes,
    verify_token,
)
from drivetrain.cloud.infra.bootstrap import (
    BootstrapCredentials,
    ensure_embedded_bootstrap,
    resolve_token_key,
)
from drivetrain.cloud.infra.database import (
    Database,
    DatabaseHealth,
    open_database,
    translate_errors,
)
from drivetrain.cloud.infra.database_pool import READ_ONLY_INFO, PoolOptions
from drivetrain.cloud.infra.models import Base, UTCDateTime
from drivetrain.cloud.infra.service import (
    Client,
    NewClient,
    Tenant,
    authenticate_client,
    create_client,
    create_tenant,
    disable_client,
    ensure_principal_active,
    get_client,
    get_tenant,
    issue_access_token,
    list_clients,
    list_tenants,
)

__all__ = [
    "OPERATOR_TENANT",
    "READ_ONLY_INFO",
    "ROLE_SCOPES",
    "AuditEntry",
    "Base",
    "BootstrapCredentials",
    "BrokenEntry",
    "ChainVerification",
    "Client",
    "Database",
    "DatabaseHealth",
    "IssuedToken",
    "NewClient",
    "PoolOptions",
    "Principal",
    "Role",
    "Scope",
    "Tenant",
    "TokenKey",
    "UTCDateTime",
    "authenticate_client",
    "authorize",
    "create_client",
    "create_tenant",
    "disable_client",
    "ensure_embedded_bootstrap",
    "ensure_principal_active",
    "get_client",
    "get_tenant",
    "issue_access_token",
    "issue_token",
    "list_audit",
    "list_clients",
    "list_tenants",
    "open_database",
    "parse_role",
    "parse_scopes",
    "record_audit",
    "resolve_token_key",
    "translate_errors",
    "verify_chain",
    "verify_token",
]
