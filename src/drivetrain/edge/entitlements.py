"""The entitlement gate: which paid features this vehicle may use, decided offline. Pure (no
I/O, no clock: the vehicle's time is an argument).

A token (``drivetrain.core.entitlement``) is taken only when all of these hold, in order:

1. it reads as an entitlement token, at most ``MAX_TOKEN_BYTES``;
2. it is signed by the cloud key installed at provisioning (its ``kid``, then the signature);
3. it is bound to this VIN (a token bought for another car is not ours);
4. its ``seq`` is newer than the newest taken for its feature (an older token replayed — to
   bring back a cancelled feature, say — is ``rolled_back``; the same one again is a
   ``duplicate``);
5. a grant is not already past its ``exp`` plus grace (``expired``) nor valid only later
   than the clock skew allows (``not_yet_valid``). A revocation is always taken: it can only
   take a feature away.

A feature is **on** while its newest taken token is a grant and the vehicle's clock is before
``exp`` + ``grace``: a lapsed payment turns it off once the grace period ends, even with no
link to the cloud. Everything refused changes nothing and says why.

Tokens also reach the gate through the twin's desired state (``Entitlement.<feature>.Token``,
see ``drivetrain.core.entitlement_twin``): the same checks apply, and a token placed under
another feature's path is ``misplaced``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Final, Literal

from drivetrain.core.crypto import VerifyKey
from drivetrain.core.entitlement import EntitlementClaims, read_token, token_key_id
from drivetrain.core.entitlement_twin import FeatureReport, TwinFeatureState
from drivetrain.core.errors import SignatureError, WireFormatError
from drivetrain.edge.state import HeldEntitlements

EntitlementRefusal = Literal[
    "malformed",
    "unknown_key",
    "bad_signature",
    "other_vehicle",
    "rolled_back",
    "duplicate",
    "expired",
    "not_yet_valid",
    "misplaced",
]
FeatureState = Literal["active", "grace", "lapsed", "revoked"]
#: Refusals that are not an attack: the same token delivered twice.
BENIGN_REFUSALS: Final = frozenset({"duplicate"})
_NS: Final = 1_000_000_000


@dataclass(frozen=True, slots=True)
class TokenRefused:
    """A token not taken; ``detail`` says exactly why."""

    reason: EntitlementRefusal
    detail: str
    feature: str | None = None


@dataclass(frozen=True, slots=True)
class FeatureStatus:
    """One feature as the vehicle sees it now."""

    feature: str
    state: FeatureState
    expires_s: int
    honoured_until_s: int
    seq: int

    @property
    def enabled(self) -> bool:
        return self.state in ("active", "grace")


class EntitlementGate:
    """Takes or refuses entitlement tokens for one vehicle (see the module docstring).

    Args:
        vin: this vehicle's VIN.
        cloud_key: the cloud's public key (from the vehicle's credentials).
        held: the tokens taken before (persisted by the agent), or None for a new vehicle.
        max_skew_s: how far a token's ``nbf`` may be ahead of the vehicle clock, seconds.
    """

    def __init__(
        self,
        vin: str,
        cloud_key: VerifyKey,
        held: HeldEntitlements | None = None,
        *,
        max_skew_s: float = 300.0,
    ) -> None:
        self.vin = vin
        self.cloud_key = cloud_key
        self.max_skew_s = max_skew_s
        self._tokens: dict[str, tuple[str, EntitlementClaims]] = {}
        self._floor: dict[str, int] = {}
        self.refused: Counter[str] = Counter()
        if held is not None:
            self._restore(held)

    def _restore(self, held: HeldEntitlements) -> None:
        """Re-verify the stored tokens (a stored file is not trusted more than the link)."""
        self._floor = dict(held.floors)
        for token in held.tokens:
            try:
                claims = read_token(token, self.cloud_key)
            except (WireFormatError, SignatureError):
                continue
            if claims.vin == self.vin and claims.seq >= self._floor.get(claims.feature, 0):
                self._tokens[claims.feature] = (token, claims)
                self._floor[claims.feature] = claims.seq

    def offer(self, token: str, now_ns: int) -> EntitlementClaims | TokenRefused:
        """Take ``token`` if it passes every check (then it is in force), else say why."""
        outcome = self._check(token, now_ns)
        if isinstance(outcome, TokenRefused):
            self.refused[outcome.reason] += 1
            return outcome
        self._tokens[outcome.feature] = (token, outcome)
        self._floor[outcome.feature] = outcome.seq
        return outcome

    def check(self, token: str, now_ns: int) -> EntitlementClaims | TokenRefused:
        """What :meth:`offer` would decide for ``token``, changing nothing (a message that
        carries several is checked whole before any of it is taken)."""
        return self._check(token, now_ns)

    def _check(self, token: str, now_ns: int) -> EntitlementClaims | TokenRefused:
        try:
            kid = token_key_id(token)
        except WireFormatError as e:
            return TokenRefused("malformed", str(e))
        if kid != self.cloud_key.key_id:
            return TokenRefused(
                "unknown_key",
                f"signed by key {kid}; this vehicle trusts only the cloud key "
                f"{self.cloud_key.key_id}",
            )
        try:
            claims = read_token(token, self.cloud_key)
        except SignatureError as e:
            return TokenRefused("bad_signature", str(e))
        except WireFormatError as e:
            return TokenRefused("malformed", str(e))
        feature = claims.feature
        if claims.vin != self.vin:
            return TokenRefused(
                "other_vehicle", f"token for {feature} is bound to {claims.vin}, not {self.vin}",
                feature,
            )
        floor = self._floor.get(feature, 0)
        if claims.seq <= floor:
            held = self._tokens.get(feature)
            if held is not None and held[1].token_id == claims.token_id:
                return TokenRefused("duplicate", f"token {claims.token_id} is already in force",
                                    feature)
            return TokenRefused(
                "rolled_back",
                f"token for {feature} has seq {claims.seq}; seq {floor} is in force and only a "
                "newer one is taken",
                feature,
            )
        now_s = now_ns // _NS
        if claims.status == "grant":
            if claims.honoured_until_s <= now_s:
                return TokenRefused(
                    "expired",
                    f"token for {feature} expired at {claims.expires_s} (grace until "
                    f"{claims.honoured_until_s}); the vehicle clock is {now_s}",
                    feature,
                )
            if claims.not_before_s > now_s + self.max_skew_s:
                return TokenRefused(
                    "not_yet_valid",
                    f"token for {feature} is valid from {claims.not_before_s}; the vehicle "
                    f"clock is {now_s}",
                    feature,
                )
        return claims

    def status(self, now_ns: int) -> list[FeatureStatus]:
        """Every feature the vehicle holds a token for, by name, with its state now."""
        now_s = now_ns // _NS
        out = []
        for feature in sorted(self._tokens):
            claims = self._tokens[feature][1]
            state: FeatureState
            if claims.status == "revoke":
                state = "revoked"
            elif now_s < claims.expires_s:
                state = "active"
            elif now_s < claims.honoured_until_s:
                state = "grace"
            else:
                state = "lapsed"
            out.append(FeatureStatus(feature, state, claims.expires_s, claims.honoured_until_s,
                                     claims.seq))
        return out

    def twin_reports(self, now_ns: int) -> list[FeatureReport]:
        """Every feature held, as the vehicle reports it to its twin: the token in force, its
        seq and expiry, and ``enabled``, ``grace`` or ``disabled`` (lapsed or revoked)."""
        out = []
        for status in self.status(now_ns):
            state: TwinFeatureState = (
                "enabled" if status.state == "active"
                else "grace" if status.state == "grace" else "disabled")
            out.append(FeatureReport(status.feature, self._tokens[status.feature][0],
                                     status.seq, status.expires_s, state))
        return out

    def enabled(self, now_ns: int) -> frozenset[str]:
        """The features the vehicle may use now."""
        return frozenset(s.feature for s in self.status(now_ns) if s.enabled)

    def is_enabled(self, feature: str, now_ns: int) -> bool:
        """True when ``feature`` may be used now."""
        return feature in self.enabled(now_ns)

    def to_record(self) -> HeldEntitlements:
        """A snapshot to persist (with the acknowledgement it goes with)."""
        return HeldEntitlements(
            tuple(token for token, _ in self._tokens.values()), dict(self._floor)
        )

    def offer_all(
        self, tokens: Iterable[str], now_ns: int
    ) -> list[EntitlementClaims | TokenRefused]:
        """``offer`` each token in turn."""
        return [self.offer(t, now_ns) for t in tokens]


def describe(outcomes: Iterable[EntitlementClaims | TokenRefused]) -> str:
    """One line for an acknowledgement: what was taken and what was refused, and why."""
    parts = []
    for o in outcomes:
        if isinstance(o, TokenRefused):
            parts.append(f"{o.feature or 'token'}: refused ({o.reason}: {o.detail})")
        else:
            parts.append(f"{o.feature}: {o.status} seq {o.seq} until {o.expires_s}")
    return "; ".join(parts) or "no tokens"


def refusal_counts(outcomes: Iterable[EntitlementClaims | TokenRefused]) -> Mapping[str, int]:
    """How many tokens were refused, by reason."""
    return Counter(o.reason for o in outcomes if isinstance(o, TokenRefused))
