"""Purpose binding: why personal data is read, and which of it that reason may read (pure).

Every read of a vehicle's data through the API names a **purpose**. Each purpose has a legal
basis (GDPR Art. 6(1)) and the privacy categories it may ever use:

- ``contract`` and ``legal_obligation`` purposes read their categories of every vehicle
  (the service contract, or a law such as UN R155 security monitoring, covers them) — except
  the categories the purpose lists as ``by_consent``: those it reads only where consent for
  that purpose is given (``fleet_operations`` sees where a fleet's cars are, and whether they
  drive, only where the fleet account consented);
- ``consent`` purposes read a category of a vehicle only while a person (owner, driver or
  fleet) has given consent for *that purpose and that category* and has not withdrawn it and
  it has not expired. Data consented for insurance is therefore refused for product
  improvement: consent is bound to the purpose it was given for (GDPR Art. 5(1)(b)).

:func:`read_permit` turns a purpose and the active grants into a :class:`ReadPermit`: per
category, either every vehicle or the set of vehicles (pseudonyms in the lake) it may read.
Nothing here does I/O.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Final, Literal, TypeGuard, get_args

from drivetrain.core.errors import BadInputError, PermissionDeniedError
from drivetrain.core.vss.privacy import PRIVACY_CATEGORIES, PrivacyCategory

Purpose = Literal[
    "maintenance", "fleet_operations", "security", "product_improvement", "insurance",
    "repair", "owner_access",
]
PURPOSES: Final[tuple[Purpose, ...]] = get_args(Purpose)
LegalBasis = Literal["contract", "legal_obligation", "consent", "data_act"]
#: The purpose of EU Data Act reads: the owner's own, and what the owner shares.
DATA_ACT_PURPOSE: Final = "owner_access"


class PurposeRequiredError(BadInputError):
    """A read of personal data that names no purpose, or one that is not known."""


class PurposeNotAllowedError(PermissionDeniedError):
    """A read whose purpose does not cover the data asked for (no basis, no consent)."""


@dataclass(frozen=True, slots=True)
class PurposeInfo:
    """One purpose: its legal basis, the categories it may use, and what it is for."""

    name: Purpose
    basis: LegalBasis
    categories: frozenset[PrivacyCategory]
    meaning: str
    #: Of ``categories``, those a contract or legal purpose reads only under consent.
    by_consent: frozenset[PrivacyCategory] = frozenset()

    @property
    def consent_categories(self) -> frozenset[PrivacyCategory]:
        """The categories read only where a grant for this purpose covers the vehicle."""
        return self.categories if self.basis == "consent" else self.by_consent

    def to_dict(self) -> dict[str, object]:
        """JSON-ready form (categories sorted)."""
        return {"name": self.name, "basis": self.basis,
                "categories": sorted(self.categories), "meaning": self.meaning,
                "by_consent": sorted(self.consent_categories)}


_ALL: Final = frozenset(PRIVACY_CATEGORIES)

#: The closed catalog of purposes. Contract purposes stay within what the service contract
#: covers (technical, diagnostics); anything about people needs consent for its purpose.
PURPOSE_CATALOG: Final[Mapping[Purpose, PurposeInfo]] = {
    "maintenance": PurposeInfo(
        "maintenance", "contract", frozenset({"technical", "diagnostics"}),
        "Keep the vehicle working: faults, wear, service planning."),
    "fleet_operations": PurposeInfo(
        "fleet_operations", "contract",
        frozenset({"technical", "diagnostics", "location", "driving_behaviour"}),
        "Run the fleet: battery and charging state, availability, software state; where the "
        "fleet account consents, where its vehicles are and whether they drive.",
        by_consent=frozenset({"location", "driving_behaviour"})),
    "security": PurposeInfo(
        "security", "legal_obligation", frozenset({"technical", "diagnostics"}),
        "Detect and answer cyber attacks (UN R155 7.2.2.2 monitoring)."),
    "product_improvement": PurposeInfo(
        "product_improvement", "consent", _ALL,
        "Improve vehicles and services from how they are used."),
    "insurance": PurposeInfo(
        "insurance", "consent", frozenset({"driving_behaviour", "location", "technical"}),
        "Usage-based insurance chosen by the owner or driver."),
    "repair": PurposeInfo(
        "repair", "consent", frozenset({"diagnostics", "technical"}),
        "A repairer of the owner's choice reads the vehicle's data (EU Data Act Art. 5)."),
    # Read only through /v1/data-act: by the vehicle's bound owner, or by a third party under
    # the owner's container grant (the ledger holds those grants, with recipient and period).
    "owner_access": PurposeInfo(
        "owner_access", "data_act", _ALL,
        "The owner (or lessee, or fleet account) reads the vehicle's data and shares chosen "
        "containers with a third party (EU Data Act Art. 4-5); only through /v1/data-act.",
        by_consent=_ALL),
}


def is_purpose(name: object) -> TypeGuard[Purpose]:
    """Whether ``name`` is one of :data:`PURPOSES`."""
    return isinstance(name, str) and name in PURPOSES


def parse_purpose(name: str | None) -> Purpose:
    """The purpose named ``name``.

    Raises:
        PurposeRequiredError: none given, or not one of :data:`PURPOSES`.
    """
    if name is None or name == "":
        raise PurposeRequiredError(
            "a read of vehicle data must name its purpose (query parameter 'purpose'); "
            f"expected one of {', '.join(PURPOSES)}")
    if not is_purpose(name):
        raise PurposeRequiredError(
            f"purpose {name!r} is not known; expected one of {', '.join(PURPOSES)}")
    return name


@dataclass(frozen=True, slots=True)
class ReadPermit:
    """What one purpose may read: per category, ``None`` (every vehicle) or the vehicles
    (lake pseudonyms) whose consent covers it. Categories not present are refused."""

    purpose: Purpose
    # Keyed by category name (a plain str, so the lake can take it as its row filter).
    allowed: Mapping[str, frozenset[str] | None]

    @property
    def categories(self) -> frozenset[str]:
        """Categories readable for at least one vehicle."""
        return frozenset(c for c, v in self.allowed.items() if v is None or v)

    def allows(self, vehicle: str, category: str) -> bool:
        """Whether ``vehicle``'s data of ``category`` may be read."""
        if category not in self.allowed:
            return False
        vehicles = self.allowed[category]
        return vehicles is None or vehicle in vehicles

    def require_categories(self, wanted: Iterable[str]) -> None:
        """Refuse when any of ``wanted`` is not readable for this purpose at all.

        Raises:
            PurposeNotAllowedError: naming the categories refused and the purpose's basis.
        """
        refused = sorted(set(wanted) - self.categories)
        if refused:
            info = PURPOSE_CATALOG[self.purpose]
            why = ("it is outside what the purpose may use"
                   if not set(refused) <= info.categories
                   else "no vehicle has consent for it under this purpose")
            raise PurposeNotAllowedError(
                f"purpose {self.purpose!r} ({info.basis}) may not read {', '.join(refused)}: "
                f"{why}; it may read {', '.join(sorted(self.categories)) or 'nothing'}")

    def require_vehicles(self, vehicles: Mapping[str, str], wanted: Iterable[str]) -> None:
        """Refuse when a named vehicle may be read in none of ``wanted`` categories.

        ``vehicles`` maps each pseudonym to how the caller named it (a VIN or the pseudonym).

        Raises:
            PurposeNotAllowedError: naming the first such vehicle.
        """
        wanted = list(wanted)
        for pseudonym, shown in vehicles.items():
            if not any(self.allows(pseudonym, c) for c in wanted):
                raise PurposeNotAllowedError(
                    f"vehicle {shown}: no consent covers purpose {self.purpose!r} for "
                    f"{', '.join(sorted(wanted))}")


def read_permit(
    purpose: Purpose,
    grants: Mapping[str, Iterable[str]] = {},
) -> ReadPermit:
    """What ``purpose`` may read, given ``grants``: per vehicle (pseudonym or VIN, as the
    caller keys them), the categories consented for this purpose (active ones only; see the
    ledger).

    A contract or legal-obligation purpose reads its categories of every vehicle, except its
    ``by_consent`` ones; a consent purpose — and a contract one for its ``by_consent``
    categories — reads a category of exactly the vehicles granted it.
    """
    info = PURPOSE_CATALOG[purpose]
    allowed: dict[str, frozenset[str] | None] = dict.fromkeys(
        info.categories - info.consent_categories)
    per_category: dict[str, set[str]] = {c: set() for c in info.consent_categories}
    for vehicle, granted in grants.items():
        for name in granted:
            if name in per_category:
                per_category[name].add(vehicle)
    for name, vehicles in per_category.items():
        allowed[name] = frozenset(vehicles)
    return ReadPermit(purpose, allowed)


def refuse_data_act_purpose(purpose: Purpose) -> None:
    """Refuse ``owner_access`` outside the Data Act routes, which check owner and containers.

    Raises:
        PurposeNotAllowedError: ``purpose`` is ``owner_access``.
    """
    if purpose == DATA_ACT_PURPOSE:
        raise PurposeNotAllowedError(
            f"purpose {DATA_ACT_PURPOSE!r} is read only through /v1/data-act, by the "
            "vehicle's owner or a third party under the owner's container grant")
