"""The feature catalog: features, the offers that sell them, and tax rates per region (pure).

A tenant's catalog is one JSON document, versioned (each change writes a new version; a
subscription keeps the offer terms it was bought under)::

    {
      "features": [
        {"code": "performance_boost", "name": "Performance boost", "binding": "vehicle",
         "requires": "model == \\"DT-Sedan\\" and software.\\"VCU\\" >= \\"2.0.0\\"",
         "provider": null, "revenue_share": null}
      ],
      "offers": [
        {"id": "boost-monthly", "features": ["performance_boost"], "billing": "monthly",
         "prices": {"EU": {"amount": "9.99", "currency": "EUR"}}, "trial_days": 7,
         "grace_s": 259200}
      ],
      "tax_rates": {"EU": "0.19"}
    }

- a feature's ``requires`` is a fleet query (docs/twins.md): the vehicle must match it
  (model, hardware, minimum software) to buy the feature; ``binding`` says whether the
  feature stays with the car on resale (``vehicle``) or follows the person (``account``);
  ``provider`` and ``revenue_share`` (a fraction) name a third party paid a share;
- an offer sells one feature or a bundle, billed ``one_off`` (optionally for ``term_days``),
  ``monthly``, ``yearly`` or ``usage`` (pay per use: ``prices`` are per ``unit``), with an
  optional free trial and the grace period a vehicle honours after a lapsed payment;
- prices are per region, decimal strings in the region's currency (never floats).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from importlib import resources
from typing import Any, Final, Literal, get_args

from drivetrain.cloud.commerce.money import (
    check_currency,
    format_amount,
    parse_amount,
    parse_rate,
)
from drivetrain.cloud.twins import parse_query
from drivetrain.core.entitlement import FEATURE_CODE
from drivetrain.core.errors import BadInputError

Billing = Literal["one_off", "monthly", "yearly", "usage"]
BILLINGS: Final[tuple[Billing, ...]] = get_args(Billing)
Binding = Literal["vehicle", "account"]
OFFER_ID: Final = re.compile(r"[a-z0-9][a-z0-9_.-]{0,63}")
REGION: Final = re.compile(r"[A-Z]{2,8}")
MAX_FEATURES: Final = 500
MAX_OFFERS: Final = 2000
#: Longest grace period an offer may give, seconds (90 days).
MAX_GRACE_S: Final = 90 * 86_400


def _field(data: Mapping[str, Any], name: str, kind: type | tuple[type, ...], where: str,
           default: Any = ...) -> Any:
    if name not in data:
        if default is ...:
            raise BadInputError(f"{where}: field {name!r} is missing")
        return default
    value = data[name]
    if isinstance(value, bool) and bool not in (kind if isinstance(kind, tuple) else (kind,)):
        raise BadInputError(f"{where}: field {name!r} is {value!r}; expected {kind}")
    if not isinstance(value, kind):
        expected = kind.__name__ if isinstance(kind, type) else " or ".join(
            k.__name__ for k in kind)
        raise BadInputError(f"{where}: field {name!r} is {type(value).__name__}; "
                            f"expected {expected}")
    return value


def _unknown(data: Mapping[str, Any], known: set[str], where: str) -> None:
    extra = sorted(set(data) - known)
    if extra:
        raise BadInputError(f"{where}: unknown fields {extra}; expected {sorted(known)}")


@dataclass(frozen=True, slots=True)
class Feature:
    """A feature sold after the sale."""

    code: str
    name: str
    binding: Binding = "vehicle"
    requires: str = ""
    provider: str | None = None
    revenue_share: Decimal | None = None

    @classmethod
    def from_dict(cls, data: object, where: str) -> Feature:
        if not isinstance(data, Mapping):
            raise BadInputError(f"{where}: expected an object")
        _unknown(data, {"code", "name", "binding", "requires", "provider", "revenue_share"},
                 where)
        code = _field(data, "code", str, where)
        if not FEATURE_CODE.fullmatch(code):
            raise BadInputError(f"{where}: code {code!r}; expected 2-48 characters of a-z, 0-9 "
                                "and '_' starting with a letter (e.g. 'heated_seats')")
        name = _field(data, "name", str, where)
        if not 0 < len(name) <= 120:
            raise BadInputError(f"{where}: name must be 1-120 characters")
        binding = _field(data, "binding", str, where, "vehicle")
        if binding not in ("vehicle", "account"):
            raise BadInputError(f"{where}: binding {binding!r}; expected 'vehicle' or 'account'")
        requires = _field(data, "requires", str, where, "")
        parse_query(requires)  # QuerySyntaxError (a BadInputError) names the token
        provider = _field(data, "provider", (str, type(None)), where, None)
        share = data.get("revenue_share")
        rate = None if share is None else parse_rate(share, f"{where}.revenue_share")
        if (provider is None) != (rate is None):
            raise BadInputError(f"{where}: a third-party feature needs both 'provider' and "
                                "'revenue_share'; an own feature neither")
        return cls(code, name, binding, requires, provider, rate)

    def to_dict(self) -> dict[str, Any]:
        return {"code": self.code, "name": self.name, "binding": self.binding,
                "requires": self.requires, "provider": self.provider,
                "revenue_share": None if self.revenue_share is None else str(self.revenue_share)}


@dataclass(frozen=True, slots=True)
class Price:
    """A price in one region: minor units of a currency."""

    amount_minor: int
    currency: str

    def to_dict(self) -> dict[str, Any]:
        return {"amount": format_amount(self.amount_minor, self.currency),
                "currency": self.currency}


@dataclass(frozen=True, slots=True)
class Offer:
    """How one feature or a bundle is sold."""

    offer_id: str
    features: tuple[str, ...]
    billing: Billing
    prices: Mapping[str, Price]
    trial_days: int = 0
    grace_s: int = 3 * 86_400
    term_days: int | None = None
    unit: str | None = None

    @property
    def recurring(self) -> bool:
        return self.billing in ("monthly", "yearly")

    def price_in(self, region: str) -> Price:
        """The price in ``region``.

        Raises:
            BadInputError: the offer is not sold there.
        """
        price = self.prices.get(region)
        if price is None:
            raise BadInputError(f"offer {self.offer_id!r} is not sold in region {region!r}; "
                                f"it is sold in {', '.join(sorted(self.prices))}")
        return price

    @classmethod
    def from_dict(cls, data: object, where: str, features: Mapping[str, Feature]) -> Offer:
        if not isinstance(data, Mapping):
            raise BadInputError(f"{where}: expected an object")
        _unknown(data, {"id", "features", "billing", "prices", "trial_days", "grace_s",
                        "term_days", "unit"}, where)
        offer_id = _field(data, "id", str, where)
        if not OFFER_ID.fullmatch(offer_id):
            raise BadInputError(f"{where}: id {offer_id!r}; expected 1-64 characters of a-z, "
                                "0-9, '_', '.', '-'")
        codes = _field(data, "features", list, where)
        if not codes or len(codes) > 20 or len(set(map(str, codes))) != len(codes):
            raise BadInputError(f"{where}: features must list 1-20 distinct feature codes")
        for code in codes:
            if code not in features:
                raise BadInputError(f"{where}: feature {code!r} is not in the catalog")
        billing = _field(data, "billing", str, where)
        if billing not in BILLINGS:
            raise BadInputError(f"{where}: billing {billing!r}; expected one of {BILLINGS}")
        raw_prices = _field(data, "prices", dict, where)
        if not raw_prices:
            raise BadInputError(f"{where}: prices must name at least one region")
        prices = {}
        for region, p in raw_prices.items():
            at = f"{where}.prices.{region}"
            if not REGION.fullmatch(region):
                raise BadInputError(f"{at}: region {region!r}; expected 2-8 capital letters")
            if not isinstance(p, Mapping):
                raise BadInputError(f"{at}: expected {{'amount': '9.99', 'currency': 'EUR'}}")
            _unknown(p, {"amount", "currency"}, at)
            currency = check_currency(_field(p, "currency", str, at))
            amount = _field(p, "amount", object, at)  # parse_amount says what it must be
            prices[region] = Price(parse_amount(amount, currency, f"{at}.amount"), currency)
        trial = _field(data, "trial_days", int, where, 0)
        grace = _field(data, "grace_s", int, where, 3 * 86_400)
        term = _field(data, "term_days", (int, type(None)), where, None)
        unit = _field(data, "unit", (str, type(None)), where, None)
        if not 0 <= trial <= 365:
            raise BadInputError(f"{where}: trial_days {trial}; expected 0 to 365")
        if not 0 <= grace <= MAX_GRACE_S:
            raise BadInputError(f"{where}: grace_s {grace}; expected 0 to {MAX_GRACE_S}")
        if term is not None and (billing != "one_off" or not 1 <= term <= 3650):
            raise BadInputError(f"{where}: term_days is for one_off offers, 1 to 3650 days")
        if (billing == "usage") != (unit is not None):
            raise BadInputError(f"{where}: a usage offer names its 'unit' (e.g. 'km'); "
                                "other offers do not")
        if trial and billing not in ("monthly", "yearly"):
            raise BadInputError(f"{where}: trials are for monthly or yearly offers")
        return cls(offer_id, tuple(codes), billing, prices, trial, grace,
                   term, unit)

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.offer_id, "features": list(self.features), "billing": self.billing,
                "prices": {r: p.to_dict() for r, p in sorted(self.prices.items())},
                "trial_days": self.trial_days, "grace_s": self.grace_s,
                "term_days": self.term_days, "unit": self.unit}


@dataclass(frozen=True, slots=True)
class FeatureCatalog:
    """A tenant's catalog (see the module docstring)."""

    features: Mapping[str, Feature]
    offers: Mapping[str, Offer]
    tax_rates: Mapping[str, Decimal]

    def offer(self, offer_id: str) -> Offer:
        """Raises ``BadInputError`` naming the offers there are."""
        offer = self.offers.get(offer_id)
        if offer is None:
            known = ", ".join(sorted(self.offers)) or "none"
            raise BadInputError(f"offer {offer_id!r} is not in the catalog; offers: {known}")
        return offer

    def tax_rate(self, region: str) -> Decimal:
        """The region's tax rate (0 where none is set)."""
        return self.tax_rates.get(region, Decimal(0))

    @classmethod
    def from_dict(cls, data: object) -> FeatureCatalog:
        """Read and check a catalog document.

        Raises:
            BadInputError: the first problem, naming the field (``offers[2].prices.EU``).
        """
        where = "catalog"
        if not isinstance(data, Mapping):
            raise BadInputError(f"{where}: expected an object with features, offers, tax_rates")
        _unknown(data, {"features", "offers", "tax_rates"}, where)
        raw_features = _field(data, "features", list, where)
        raw_offers = _field(data, "offers", list, where)
        if len(raw_features) > MAX_FEATURES or len(raw_offers) > MAX_OFFERS:
            raise BadInputError(f"{where}: at most {MAX_FEATURES} features and {MAX_OFFERS} "
                                "offers")
        features: dict[str, Feature] = {}
        for i, f in enumerate(raw_features):
            feature = Feature.from_dict(f, f"features[{i}]")
            if feature.code in features:
                raise BadInputError(f"features[{i}]: code {feature.code!r} appears twice")
            features[feature.code] = feature
        offers: dict[str, Offer] = {}
        for i, o in enumerate(raw_offers):
            offer = Offer.from_dict(o, f"offers[{i}]", features)
            if offer.offer_id in offers:
                raise BadInputError(f"offers[{i}]: id {offer.offer_id!r} appears twice")
            offers[offer.offer_id] = offer
        raw_tax = _field(data, "tax_rates", dict, where, {})
        taxes = {}
        for region, rate in raw_tax.items():
            if not REGION.fullmatch(region):
                raise BadInputError(f"tax_rates: region {region!r}; expected 2-8 capital letters")
            taxes[region] = parse_rate(rate, f"tax_rates.{region}")
        return cls(features, offers, taxes)

    def to_dict(self) -> dict[str, Any]:
        return {"features": [f.to_dict() for f in self.features.values()],
                "offers": [o.to_dict() for o in self.offers.values()],
                "tax_rates": {r: str(t) for r, t in sorted(self.tax_rates.items())}}


def example_catalog() -> dict[str, Any]:
    """The example catalog shipped with the package (docs/commerce.md, the demo): a
    performance boost by the month, heated seats by the year with a trial or by the hour, an
    AI range assistant from a partner, a one-off track mode for roadsters."""
    text = resources.files("drivetrain.cloud.commerce").joinpath("example_catalog.json")
    document: dict[str, Any] = json.loads(text.read_text(encoding="utf-8"))
    return document
