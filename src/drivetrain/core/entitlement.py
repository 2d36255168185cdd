"""Entitlement tokens: the signed statement that one vehicle may use one feature until a time.

A token is a compact JWS (RFC 7515) signed with Ed25519 (``alg: EdDSA``, RFC 8037) by the
cloud key every vehicle holds from provisioning, so the vehicle checks it offline. Its header
names the key (``kid``) and the token type (``typ: dt-entitlement+jwt``, so no other signed
JWT of the platform can pass for one); its claims (RFC 7519 names where one exists):

| claim | meaning |
|---|---|
| ``iss``, ``aud`` | ``drivetrain`` and ``drivetrain-vehicle``, pinned |
| ``sub`` | the VIN the token is bound to |
| ``jti`` | the token's id (32 hex digits) |
| ``iat``, ``nbf``, ``exp`` | issued, valid from, valid until (Unix seconds) |
| ``grace`` | seconds after ``exp`` the vehicle still honours it (a payment being retried) |
| ``feat`` | the feature code, e.g. ``performance_boost`` |
| ``seq`` | issuance number per (vehicle, feature), increasing: an older token is refused |
| ``st`` | ``grant`` (use the feature) or ``revoke`` (stop using it, whatever came before) |
| ``ten``, ``sid`` | the tenant and the subscription behind it (``sid`` null for a revocation) |

Pure: no clock and no I/O; the vehicle's clock is an argument where time matters.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Final, Literal

import jwt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from drivetrain.core.crypto import SigningKey, VerifyKey
from drivetrain.core.errors import SignatureError, WireFormatError
from drivetrain.core.vin import is_vin

ISSUER: Final = "drivetrain"
AUDIENCE: Final = "drivetrain-vehicle"
TOKEN_TYPE: Final = "dt-entitlement+jwt"
ALGORITHM: Final = "EdDSA"
#: Largest token a vehicle reads, bytes (a real one is about 500).
MAX_TOKEN_BYTES: Final = 4096
#: Feature codes: lower-case words, digits and ``_``, 2 to 48 characters.
FEATURE_CODE: Final = re.compile(r"[a-z][a-z0-9_]{1,47}")
_TOKEN_ID: Final = re.compile(r"[0-9a-f]{32}")
_MAX_SECONDS: Final = 2**40  # far beyond any real date, small enough for every clock
_MAX_SEQ: Final = 2**53
TokenStatus = Literal["grant", "revoke"]
_REQUIRED: Final = ("iss", "aud", "sub", "jti", "iat", "nbf", "exp", "grace", "feat", "seq",
                    "st", "ten")


class EntitlementFormatError(WireFormatError):
    """Bytes that are not an entitlement token of this format; names what is wrong."""


@dataclass(frozen=True, slots=True)
class EntitlementClaims:
    """What a token says (see the module docstring). Times are Unix seconds."""

    vin: str
    feature: str
    token_id: str
    issued_s: int
    not_before_s: int
    expires_s: int
    grace_s: int
    seq: int
    status: TokenStatus
    tenant: str
    subscription_id: str | None

    def __post_init__(self) -> None:
        if not is_vin(self.vin):
            raise ValueError(f"sub {self.vin!r} is not a VIN")
        if not FEATURE_CODE.fullmatch(self.feature):
            raise ValueError(f"feat {self.feature!r} is not a feature code")
        if not _TOKEN_ID.fullmatch(self.token_id):
            raise ValueError(f"jti {self.token_id!r} is not 32 hex digits")
        for name in ("issued_s", "not_before_s", "expires_s", "grace_s"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < _MAX_SECONDS:
                raise ValueError(f"{name} {value!r} is not a time in seconds")
        if isinstance(self.seq, bool) or not isinstance(self.seq, int) or not 0 < self.seq < _MAX_SEQ:
            raise ValueError(f"seq {self.seq!r} is not a positive integer below 2**53")
        if self.status not in ("grant", "revoke"):
            raise ValueError(f"st {self.status!r}; expected 'grant' or 'revoke'")
        if self.expires_s < self.not_before_s:
            raise ValueError(f"exp {self.expires_s} is before nbf {self.not_before_s}")

    @property
    def honoured_until_s(self) -> int:
        """The last second the vehicle uses the feature: ``exp`` plus the grace period."""
        return self.expires_s + self.grace_s

    def to_claims(self) -> dict[str, Any]:
        """The JWT claims set."""
        return {
            "iss": ISSUER, "aud": AUDIENCE, "sub": self.vin, "jti": self.token_id,
            "iat": self.issued_s, "nbf": self.not_before_s, "exp": self.expires_s,
            "grace": self.grace_s, "feat": self.feature, "seq": self.seq, "st": self.status,
            "ten": self.tenant, "sid": self.subscription_id,
        }

    @classmethod
    def from_claims(cls, claims: dict[str, Any]) -> EntitlementClaims:
        """Read a verified claims set.

        Raises:
            EntitlementFormatError: a missing claim or one of the wrong type or range.
        """
        missing = [c for c in _REQUIRED if c not in claims]
        if missing:
            raise EntitlementFormatError(f"entitlement token: missing claims {missing}")
        for name in ("sub", "jti", "feat", "st", "ten"):
            if not isinstance(claims[name], str):
                raise EntitlementFormatError(
                    f"entitlement token: claim {name!r} is {type(claims[name]).__name__}; "
                    "expected a string"
                )
        sid = claims.get("sid")
        if sid is not None and not isinstance(sid, str):
            raise EntitlementFormatError("entitlement token: claim 'sid' must be a string or null")
        try:
            return cls(
                vin=claims["sub"], feature=claims["feat"], token_id=claims["jti"],
                issued_s=claims["iat"], not_before_s=claims["nbf"], expires_s=claims["exp"],
                grace_s=claims["grace"], seq=claims["seq"], status=claims["st"],
                tenant=claims["ten"], subscription_id=sid,
            )
        except ValueError as e:
            raise EntitlementFormatError(f"entitlement token: {e}") from e


def issue_token(claims: EntitlementClaims, key: SigningKey) -> str:
    """The compact JWS of ``claims`` signed with ``key`` (the cloud key)."""
    return jwt.encode(
        claims.to_claims(), _private(key), algorithm=ALGORITHM,
        headers={"kid": key.key_id, "typ": TOKEN_TYPE},
    )


def _private(key: SigningKey) -> Any:
    # SigningKey keeps its cryptography key private; PyJWT needs that object to sign.
    return key._key


def token_key_id(token: str) -> str:
    """The ``kid`` a token's header names (not verified: to pick the key, nothing more).

    Raises:
        EntitlementFormatError: not a compact JWS of this type, or too large.
    """
    _check_size(token)
    try:
        header = jwt.get_unverified_header(token)
    except (jwt.PyJWTError, ValueError, RecursionError, TypeError) as e:
        raise EntitlementFormatError(f"entitlement token: header does not read: {e}") from e
    if header.get("typ") != TOKEN_TYPE:
        raise EntitlementFormatError(
            f"entitlement token: typ {header.get('typ')!r}; expected {TOKEN_TYPE!r}"
        )
    if header.get("alg") != ALGORITHM:
        raise EntitlementFormatError(
            f"entitlement token: alg {header.get('alg')!r}; expected {ALGORITHM!r}"
        )
    kid = header.get("kid")
    if not isinstance(kid, str):
        raise EntitlementFormatError("entitlement token: header has no 'kid'")
    return kid


def _check_size(token: object) -> None:
    if not isinstance(token, str):
        raise EntitlementFormatError(
            f"entitlement token is {type(token).__name__}; expected a string"
        )
    if len(token) > MAX_TOKEN_BYTES:
        raise EntitlementFormatError(
            f"entitlement token is {len(token):,} characters; at most {MAX_TOKEN_BYTES:,}"
        )
    if not token.isascii():
        raise EntitlementFormatError("entitlement token: expected ASCII (base64url and dots)")


def read_token(token: str, key: VerifyKey) -> EntitlementClaims:
    """Verify ``token``'s signature with ``key`` and read its claims. Time is not checked
    here: validity is the caller's decision against its own clock.

    Raises:
        EntitlementFormatError: not a token of this format (size, header, claims).
        SignatureError: signed by another key, or the signature does not verify.
    """
    kid = token_key_id(token)
    if kid != key.key_id:
        raise SignatureError(f"entitlement token signed by key {kid}; expected {key.key_id}")
    try:
        claims = jwt.decode(
            token, Ed25519PublicKey.from_public_bytes(key.raw), algorithms=[ALGORITHM],
            audience=AUDIENCE, issuer=ISSUER,
            options={"verify_exp": False, "verify_nbf": False, "verify_iat": False,
                     "require": list(_REQUIRED)},
        )
    except jwt.InvalidSignatureError as e:
        raise SignatureError(f"entitlement token: signature does not verify with key {kid}") from e
    except (jwt.PyJWTError, ValueError, RecursionError, TypeError) as e:
        raise EntitlementFormatError(f"entitlement token: {e}") from e
    return EntitlementClaims.from_claims(claims)
