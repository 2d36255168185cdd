"""Authentication and authorization: scopes, roles, principals and access tokens (pure).

Nothing here touches the network, the disk or the database: tokens are issued and verified
from values (claims, a key, the current time) and decisions raise typed errors. The HTTP layer
(``drivetrain.cloud.infra.http.security``) is a thin shell around :func:`verify_token` and :func:`authorize`.

Access tokens are JWTs (RFC 7519) signed with HMAC-SHA256 under the platform's auth secret,
with ``iss``/``aud`` pinned to this platform, and carry the OAuth2 ``scope`` claim (RFC 8693
§4.2: space-separated). Only ``HS256`` is accepted on verification, so ``alg: none`` or an
algorithm swap is refused before any claim is read.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

import jwt

from drivetrain.core.errors import AuthenticationError, BadInputError, PermissionDeniedError

TOKEN_ALGORITHM = "HS256"
MIN_KEY_BYTES = 32
# Tolerated clock difference between token issuer and verifier for "issued in the future".
CLOCK_SKEW_S = 60


class Scope(StrEnum):
    """The closed set of OAuth2 scopes: ``<domain>:<read|write>``, plus ``telemetry:sql``,
    ``audit:read``, ``admin``."""

    FLEET_READ = "fleet:read"
    FLEET_WRITE = "fleet:write"
    TELEMETRY_READ = "telemetry:read"
    TELEMETRY_WRITE = "telemetry:write"
    TELEMETRY_SQL = "telemetry:sql"
    SECURITY_READ = "security:read"
    SECURITY_WRITE = "security:write"
    OTA_READ = "ota:read"
    OTA_WRITE = "ota:write"
    COMMERCE_READ = "commerce:read"
    COMMERCE_WRITE = "commerce:write"
    PRIVACY_READ = "privacy:read"
    PRIVACY_WRITE = "privacy:write"
    AUDIT_READ = "audit:read"
    CAMPAIGNS_READ = "campaigns:read"
    CAMPAIGNS_WRITE = "campaigns:write"
    INSIGHTS_READ = "insights:read"
    INSIGHTS_WRITE = "insights:write"
    DATA_ACT = "data_act"
    ADMIN = "admin"


SCOPE_DESCRIPTIONS: Mapping[Scope, str] = {
    Scope.FLEET_READ: "Read vehicles, twins and fleet state",
    Scope.FLEET_WRITE: "Change vehicles, desired state and commands",
    Scope.TELEMETRY_READ: "Query telemetry",
    Scope.TELEMETRY_WRITE: "Ingest telemetry",
    Scope.TELEMETRY_SQL: "Run raw SQL over the tenant's telemetry (power users)",
    Scope.SECURITY_READ: "Read security events and incidents",
    Scope.SECURITY_WRITE: "Triage incidents and run response playbooks",
    Scope.OTA_READ: "Read images, campaigns and update records",
    Scope.OTA_WRITE: "Publish images and run OTA campaigns",
    Scope.COMMERCE_READ: "Read the feature catalog, subscriptions and billing",
    Scope.COMMERCE_WRITE: "Sell features and change subscriptions",
    Scope.PRIVACY_READ: "Read consent and data-subject requests",
    Scope.PRIVACY_WRITE: "Change consent and handle data-subject requests",
    Scope.AUDIT_READ: "Read the tenant's audit log",
    Scope.CAMPAIGNS_READ: "Read data-collection campaigns, vehicle models, decoder manifests "
    "and signal catalogs",
    Scope.CAMPAIGNS_WRITE: "Write, approve and run data-collection campaigns; manage vehicle "
    "models, decoder manifests and signal catalogs",
    Scope.INSIGHTS_READ: "Read trained models, predictions, maintenance alerts, appointments "
    "and charging plans",
    Scope.INSIGHTS_WRITE: "Score the fleet, manage service centres, book appointments and plan "
    "charging (sending to cars also needs fleet:write)",
    Scope.DATA_ACT: "EU Data Act access: an owner's own vehicles, or what an owner granted a "
    "third party (with container:<name> scopes)",
    Scope.ADMIN: "Manage the tenant's clients (and, in the operator tenant, tenants)",
}


class Role(StrEnum):
    """What kind of principal a client is; each role maps to its default scope set."""

    ADMIN = "admin"
    FLEET_OPERATOR = "fleet_operator"
    SECURITY_ANALYST = "security_analyst"
    SERVICE = "service"
    THIRD_PARTY_APP = "third_party_app"
    READ_ONLY = "read_only"
    OWNER = "owner"


_READS = frozenset(s for s in Scope if s.value.endswith(":read") and s is not Scope.AUDIT_READ)

ROLE_SCOPES: Mapping[Role, frozenset[Scope]] = {
    Role.ADMIN: frozenset(Scope),
    Role.FLEET_OPERATOR: frozenset(
        {
            Scope.FLEET_READ,
            Scope.FLEET_WRITE,
            Scope.TELEMETRY_READ,
            Scope.OTA_READ,
            Scope.OTA_WRITE,
            Scope.COMMERCE_READ,
            Scope.SECURITY_READ,
            Scope.CAMPAIGNS_READ,
            Scope.CAMPAIGNS_WRITE,
            Scope.INSIGHTS_READ,
            Scope.INSIGHTS_WRITE,
        }
    ),
    Role.SECURITY_ANALYST: frozenset(
        {
            Scope.SECURITY_READ,
            Scope.SECURITY_WRITE,
            Scope.FLEET_READ,
            Scope.TELEMETRY_READ,
            Scope.TELEMETRY_SQL,
            Scope.OTA_READ,
            Scope.AUDIT_READ,
            Scope.CAMPAIGNS_READ,
        }
    ),
    Role.SERVICE: frozenset(
        {
            Scope.FLEET_READ,
            Scope.FLEET_WRITE,
            Scope.TELEMETRY_READ,
            Scope.TELEMETRY_WRITE,
            Scope.SECURITY_WRITE,
            Scope.OTA_READ,
            Scope.COMMERCE_READ,
        }
    ),
    Role.THIRD_PARTY_APP: frozenset(
        {Scope.FLEET_READ, Scope.TELEMETRY_READ, Scope.COMMERCE_READ, Scope.DATA_ACT}
    ),
    Role.READ_ONLY: _READS,
    # A vehicle's owner (or lessee, or fleet account): only the Data Act routes, only the
    # vehicles bound to it (see drivetrain.cloud.privacy.owners).
    Role.OWNER: frozenset({Scope.DATA_ACT}),
}

#: A scope naming one Data Act container (``container:diagnostics``): a third party's token
#: carries one per container it reads; the owner's grant must cover it too.
CONTAINER_SCOPE = re.compile(r"container:([a-z][a-z0-9_-]{0,31})")
#: Most container scopes one token may carry.
MAX_CONTAINER_SCOPES = 64


def split_container_scopes(text: str | None) -> tuple[str, frozenset[str]]:
    """``text`` (an OAuth2 scope string) without its ``container:<name>`` scopes, and the
    container names. Raises :class:`BadInputError` for a malformed ``container:`` scope or
    more than :data:`MAX_CONTAINER_SCOPES` of them."""
    rest, containers = [], set()
    for name in (text or "").split():
        if name.startswith("container:"):
            match = CONTAINER_SCOPE.fullmatch(name)
            if match is None:
                raise BadInputError(f"scope {name!r} is malformed; expected container:<name> "
                                    "(1-32 lowercase letters, digits, '_' or '-')")
            containers.add(match.group(1))
        else:
            rest.append(name)
    if len(containers) > MAX_CONTAINER_SCOPES:
        raise BadInputError(f"{len(containers)} container scopes; at most "
                            f"{MAX_CONTAINER_SCOPES}")
    return " ".join(rest), frozenset(containers)


def format_containers(containers: Iterable[str]) -> str:
    """Container names as scopes: ``container:<name>``, sorted, space-separated."""
    return " ".join(f"container:{c}" for c in sorted(containers))

# The tenant whose admins run the platform itself: only they may create tenants.
OPERATOR_TENANT = "default"


def format_scopes(scopes: Iterable[Scope]) -> str:
    """Scopes as the OAuth2 wire string: sorted, space-separated."""
    return " ".join(sorted(s.value for s in scopes))


def parse_role(text: str) -> Role:
    """The :class:`Role` named ``text``; raises :class:`BadInputError` naming the valid roles."""
    try:
        return Role(text)
    except ValueError:
        valid = ", ".join(r.value for r in Role)
        raise BadInputError(f"unknown role {text!r}; expected one of: {valid}") from None


def parse_scopes(text: str | Iterable[str] | None) -> frozenset[Scope]:
    """Scopes from an OAuth2 scope string (space-separated) or an iterable of names.

    ``None`` or blank gives the empty set. Raises :class:`BadInputError` for an unknown name.
    """
    if text is None:
        return frozenset()
    names = text.split() if isinstance(text, str) else list(text)
    scopes: set[Scope] = set()
    for name in names:
        try:
            scopes.add(Scope(name))
        except ValueError:
            valid = ", ".join(s.value for s in Scope)
            raise BadInputError(f"unknown scope {name!r}; expected any of: {valid}") from None
    return frozenset(scopes)


def grant_scopes(
    requested: frozenset[Scope], allowed: frozenset[Scope], client_id: str
) -> frozenset[Scope]:
    """The scopes a token gets: all ``allowed`` when nothing is requested, else ``requested``.

    Escalation is refused, not trimmed: asking for any scope beyond ``allowed`` raises
    :class:`PermissionDeniedError` naming the scopes refused (RFC 6749 §3.3 lets the server
    choose; refusing makes a misconfigured client fail loudly instead of failing later).
    """
    if not requested:
        return allowed
    excess = requested - allowed
    if excess:
        raise PermissionDeniedError(
            f"client {client_id!r} may not request scope(s) {format_scopes(excess)!r}; "
            f"it may request: {format_scopes(allowed)!r}"
        )
    return requested


@dataclass(frozen=True, slots=True)
class TokenKey:
    """What signs and verifies access tokens: the secret plus the issuer/audience pinned in them.

    Raises ``ValueError`` for a secret shorter than 32 bytes (RFC 7518 §3.2: an HS256 key must
    be at least as long as the hash output).
    """

    secret: bytes = field(repr=False)
    issuer: str = "drivetrain"
    audience: str = "drivetrain-api"

    def __post_init__(self) -> None:
        if len(self.secret) < MIN_KEY_BYTES:
            raise ValueError(
                f"token key of {len(self.secret)} bytes; expected at least {MIN_KEY_BYTES}"
            )


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: a verified token's client, tenant, role and granted scopes."""

    client_id: str
    tenant: str
    role: Role
    scopes: frozenset[Scope]
    token_id: str
    expires_at: datetime
    #: Data Act containers the token is bound to (``container:<name>`` scopes).
    containers: frozenset[str] = frozenset()

    def has_scope(self, scope: Scope) -> bool:
        """True when the token grants ``scope``."""
        return scope in self.scopes


@dataclass(frozen=True, slots=True)
class IssuedToken:
    """An access token as the token endpoint returns it (RFC 6749 §5.1)."""

    access_token: str = field(repr=False)
    expires_in_s: int
    scopes: frozenset[Scope]
    token_type: str = "Bearer"
    containers: frozenset[str] = frozenset()


def issue_token(
    *,
    client_id: str,
    tenant: str,
    role: Role,
    scopes: frozenset[Scope],
    key: TokenKey,
    now: datetime,
    ttl_s: int,
    containers: frozenset[str] = frozenset(),
) -> IssuedToken:
    """Sign an access token for ``client_id`` valid ``ttl_s`` seconds from ``now`` (aware).

    Raises ``ValueError`` for a naive ``now`` or a non-positive ``ttl_s``.
    """
    if now.tzinfo is None:
        raise ValueError(f"naive datetime {now!r}; expected a timezone-aware value")
    if ttl_s <= 0:
        raise ValueError(f"ttl_s={ttl_s}; expected a positive number of seconds")
    issued_at = int(now.timestamp())
    claims: dict[str, Any] = {
        "iss": key.issuer,
        "aud": key.audience,
        "sub": client_id,
        "tenant": tenant,
        "role": role.value,
        "scope": " ".join(s for s in (format_scopes(scopes), format_containers(containers)) if s),
        "iat": issued_at,
        "exp": issued_at + ttl_s,
        "jti": uuid.uuid4().hex,
    }
    token = jwt.encode(claims, key.secret, algorithm=TOKEN_ALGORITHM)
    return IssuedToken(access_token=token, expires_in_s=ttl_s, scopes=scopes,
                       containers=containers)


_REQUIRED_CLAIMS = ["iss", "aud", "sub", "tenant", "role", "scope", "iat", "exp", "jti"]


def verify_token(token: str, key: TokenKey, now: datetime) -> Principal:
    """Verify ``token``'s signature, algorithm, issuer, audience and lifetime at ``now``.

    Returns the :class:`Principal` it names. Raises :class:`AuthenticationError` for anything
    wrong: malformed, signed with another key or algorithm (``none`` included), another
    issuer or audience, expired, issued in the future, missing claims, unknown role or
    scopes beyond the role.
    """
    try:
        claims = jwt.decode(
            token,
            key.secret,
            algorithms=[TOKEN_ALGORITHM],
            issuer=key.issuer,
            audience=key.audience,
            # Time is checked below against the given ``now``, keeping this function pure.
            options={
                "require": _REQUIRED_CLAIMS,
                "verify_exp": False,
                "verify_iat": False,
                "verify_nbf": False,
            },
        )
    except jwt.PyJWTError as e:
        raise AuthenticationError(f"invalid access token: {e}") from e
    try:
        expires_at = datetime.fromtimestamp(int(claims["exp"]), UTC)
        issued_at = datetime.fromtimestamp(int(claims["iat"]), UTC)
    except (TypeError, ValueError, OverflowError) as e:
        raise AuthenticationError(f"invalid access token: bad exp/iat claim ({e})") from e
    if now >= expires_at:
        raise AuthenticationError(f"access token expired at {expires_at.isoformat()}")
    if issued_at > now + timedelta(seconds=CLOCK_SKEW_S):
        raise AuthenticationError(f"access token issued in the future ({issued_at.isoformat()})")
    try:
        role = parse_role(str(claims["role"]))
        plain, containers = split_container_scopes(str(claims["scope"]))
        scopes = parse_scopes(plain)
    except BadInputError as e:
        raise AuthenticationError(f"invalid access token: {e}") from e
    if containers and role is not Role.THIRD_PARTY_APP:
        raise AuthenticationError(
            f"invalid access token: container scopes on role {role.value!r}; only "
            "third-party apps carry them")
    beyond = scopes - ROLE_SCOPES[role]
    if beyond:
        raise AuthenticationError(
            f"invalid access token: scopes {format_scopes(beyond)!r} exceed role {role.value!r}"
        )
    subject, tenant = claims["sub"], claims["tenant"]
    if not isinstance(subject, str) or not isinstance(tenant, str):
        raise AuthenticationError("invalid access token: 'sub' and 'tenant' must be strings")
    return Principal(
        client_id=subject,
        tenant=tenant,
        role=role,
        scopes=scopes,
        token_id=str(claims["jti"]),
        expires_at=expires_at,
        containers=containers,
    )


def authorize(
    principal: Principal, required: Iterable[Scope], tenant: str | None = None
) -> None:
    """Allow the call only with every ``required`` scope and, if given, on its own ``tenant``.

    Raises :class:`PermissionDeniedError` naming the missing scopes or the foreign tenant.
    """
    missing = frozenset(required) - principal.scopes
    if missing:
        raise PermissionDeniedError(
            f"client {principal.client_id!r} lacks scope(s) {format_scopes(missing)!r} "
            "for this operation"
        )
    if tenant is not None and tenant != principal.tenant:
        raise PermissionDeniedError(
            f"client {principal.client_id!r} of tenant {principal.tenant!r} may not act on "
            f"tenant {tenant!r}"
        )
