"""Purpose binding for reads of vehicles' *current* state (twins, their change stream).

A twin holds the latest reported value of every signal — the vehicle's position among them.
Reading it is reading personal data, so it follows the same rule as a lake read, with one
difference: a state read that names no purpose is not refused, it is *narrowed*. What a read
may show is a :class:`StateView`:

- the **personal** categories (:data:`PERSONAL_CATEGORIES`: location, driving behaviour,
  cabin) of a vehicle are shown only when the request names a purpose that covers that
  category for that vehicle (its legal basis, or an active grant in the consent ledger);
  otherwise they are *withheld* and the answer says so and why, per category;
- the non-personal categories (technical, diagnostics) stay visible to the tenant's own
  clients, purpose or not — they are what the service contract is about;
- a third-party app sees nothing by default: it must name a consent-based purpose, and sees
  each category of a vehicle only under an active grant that names it (as for the lake).

A fleet query that *filters* on a personal signal (``reported."Vehicle.CurrentLocation.
Latitude" > 48``) reads that signal too: :func:`bind_state_read` refuses it without a purpose
that covers the category, and the caller restricts the matches to the vehicles it covers
(:meth:`StateView.vehicles_for`).

Every state read that releases personal data (a purpose was named) is audited as
``privacy.read``; every refusal as ``privacy.read.refused`` — exactly like lake reads.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from sqlalchemy.orm import Session

from drivetrain.cloud.infra import Database, Principal, Role, record_audit
from drivetrain.cloud.privacy.binding import record_refusal
from drivetrain.cloud.privacy.ledger import active_grants
from drivetrain.cloud.privacy.purposes import (
    PURPOSE_CATALOG,
    PURPOSES,
    Purpose,
    PurposeNotAllowedError,
    PurposeRequiredError,
    ReadPermit,
    parse_purpose,
    read_permit,
    refuse_data_act_purpose,
)
from drivetrain.cloud.privacy.regional import audit_vehicle
from drivetrain.core.errors import DrivetrainError
from drivetrain.core.vss.privacy import (
    PERSONAL_CATEGORIES,
    PRIVACY_CATEGORIES,
    privacy_category_for,
)


@dataclass(frozen=True, slots=True)
class StateView:
    """What one read of twins' state may show, per vehicle (VIN) and category.

    ``permit`` is None when no purpose was named (the tenant's own clients then see only the
    non-personal categories). ``governed`` are the categories the view decides about: the
    personal ones for the tenant's clients, every category for a third party.
    """

    purpose: Purpose | None
    permit: ReadPermit | None  # keyed by VIN
    governed: frozenset[str]

    def shows(self, vin: str, category: str) -> bool:
        """Whether ``vin``'s values of ``category`` may be shown."""
        if category not in self.governed:
            return True
        return self.permit is not None and self.permit.allows(vin, category)

    def visible_categories(self, vin: str) -> frozenset[str]:
        """The governed categories of ``vin`` this view shows."""
        return frozenset(c for c in self.governed if self.shows(vin, c))

    def withheld(self, vin: str) -> dict[str, str]:
        """Per category withheld from ``vin``'s state, the reason (sorted by category)."""
        return {c: self._reason(vin, c) for c in sorted(self.governed) if not self.shows(vin, c)}

    def _reason(self, vin: str, category: str) -> str:
        if self.purpose is None:
            return (f"{category} is personal data: name a purpose (query parameter 'purpose', "
                    f"one of {', '.join(PURPOSES)}) whose basis or consent covers it")
        info = PURPOSE_CATALOG[self.purpose]
        if category not in info.categories:
            return f"purpose {self.purpose!r} ({info.basis}) may not use {category}"
        return (f"no active consent of vehicle {vin} covers purpose {self.purpose!r} for "
                f"{category}")

    def visible_paths(self, vin: str, paths: Iterable[str]) -> list[str]:
        """Those of ``paths`` whose category may be shown for ``vin`` (order kept)."""
        return [p for p in paths if self.shows(vin, privacy_category_for(p))]

    def vehicles_for(self, categories: Iterable[str]) -> frozenset[str] | None:
        """The VINs whose every one of ``categories`` may be shown; None: no restriction."""
        restricted = [c for c in set(categories) if c in self.governed]
        if not restricted:
            return None
        if self.permit is None:
            return frozenset()
        sets = [self.permit.allowed.get(c, frozenset()) for c in restricted]
        if all(s is None for s in sets):
            return None
        chosen = [s for s in sets if s is not None]
        return frozenset.intersection(*chosen)

    def vehicles(self) -> frozenset[str] | None:
        """For a third party: the VINs it may see anything of; None: no restriction."""
        if self.governed != frozenset(PRIVACY_CATEGORIES):
            return None
        if self.permit is None:
            return frozenset()
        found: set[str] = set()
        for vins in self.permit.allowed.values():
            if vins is None:  # a third party never reads under contract (refused earlier)
                return None
            found |= vins
        return frozenset(found)


def query_categories(paths: Iterable[str]) -> frozenset[str]:
    """The privacy categories of the reported paths a fleet query filters on."""
    return frozenset(privacy_category_for(p) for p in paths)


def bind_state_read(
    database: Database,
    principal: Principal,
    purpose: str | None,
    *,
    target: str,
    request_id: str | None,
    vins: Sequence[str] = (),
    filtered: Iterable[str] = (),
) -> StateView:
    """Decide what a read of twins' state may show, and audit it.

    ``vins`` are the vehicles the request names (one for ``GET /v1/twins/{vin}``); ``filtered``
    the categories its fleet query filters on. No purpose from the tenant's own client: the
    personal categories are withheld, nothing is audited (nothing personal is read) — unless
    the query filters on a personal category, which is refused.

    Raises:
        PurposeRequiredError: an unknown purpose; none where the query filters on a personal
            category, or from a third-party app.
        PurposeNotAllowedError: the purpose covers a category the query filters on for no
            vehicle; a third party reading for a contract or legal purpose, or a named
            vehicle no grant to it covers.
    """
    third_party = principal.client_id if principal.role is Role.THIRD_PARTY_APP else None
    governed = frozenset(PRIVACY_CATEGORIES) if third_party else PERSONAL_CATEGORIES
    needed = sorted(set(filtered) & governed)
    if purpose is None and third_party is None and not needed:
        return StateView(None, None, governed)
    details: dict[str, object] = {"purpose": purpose, "categories": needed,
                                  "vehicles": sorted(vins)}
    try:
        with database.session() as session:
            if purpose is None and third_party is not None:
                raise PurposeRequiredError(
                    "a third-party app reads vehicle state only for a consent-based purpose it "
                    "was granted: name it (query parameter 'purpose')")
            chosen = parse_purpose(purpose)
            permit = _vin_permit(session, principal.tenant, chosen, third_party)
            permit.require_categories(needed)
            view = StateView(chosen, permit, governed)
            if third_party is not None:
                for vin in vins:
                    if not view.visible_categories(vin):
                        raise PurposeNotAllowedError(
                            f"vehicle {vin}: no active grant to {third_party} covers purpose "
                            f"{chosen!r}")
            shown = sorted({c for vin in vins for c in view.visible_categories(vin)}
                           if vins else permit.categories & governed)
            record_audit(session, tenant=principal.tenant, actor=principal.client_id,
                         action="privacy.read", target=target, request_id=request_id,
                         details={**details, "allowed": shown},
                         vehicle=audit_vehicle(session, vins[0]) if len(vins) == 1 else None)
        return view
    except DrivetrainError as refusal:
        record_refusal(database, principal, target=target, request_id=request_id,
                       details=details, error=refusal, vin=vins[0] if len(vins) == 1 else None)
        raise


def _vin_permit(
    session: Session, tenant: str, purpose: Purpose, third_party: str | None
) -> ReadPermit:
    """The permit of ``purpose`` over VINs (twins hold VINs, the lake pseudonyms)."""
    refuse_data_act_purpose(purpose)
    info = PURPOSE_CATALOG[purpose]
    if third_party is not None and info.basis != "consent":
        raise PurposeNotAllowedError(
            f"a third-party app may not read for {purpose!r} ({info.basis}); it reads only "
            "what an owner or driver granted it")
    return read_permit(purpose, active_grants(session, tenant, purpose, recipient=third_party))
