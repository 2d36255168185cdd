"""Privacy: pseudonymisation of vehicle ids in analytical data, and per-vehicle consent.

Public surface: :class:`Pseudonymiser`, :func:`pseudonymiser`, :func:`vehicle_pseudonym`,
:class:`Consent`, :func:`set_consent`, :func:`get_consent`, :func:`consent_map`,
:func:`parse_categories`, :func:`parse_source`, :data:`DEFAULT_CONSENT`,
:data:`DEFAULT_SOURCE`; :class:`CategoryInfo` and :func:`describe_categories` (what each
category means, with example paths). Regions are :mod:`drivetrain.core.regions`.
"""

from drivetrain.cloud.privacy.categories import CategoryInfo, describe_categories
from drivetrain.cloud.privacy.service import (
    DEFAULT_CONSENT,
    DEFAULT_SOURCE,
    Consent,
    Pseudonymiser,
    consent_map,
    get_consent,
    parse_categories,
    parse_source,
    pseudonymiser,
    set_consent,
    vehicle_pseudonym,
)

__all__ = [
    "DEFAULT_CONSENT",
    "DEFAULT_SOURCE",
    "CategoryInfo",
    "Consent",
    "Pseudonymiser",
    "consent_map",
    "describe_categories",
    "get_consent",
    "parse_categories",
    "parse_source",
    "pseudonymiser",
    "set_consent",
    "vehicle_pseudonym",
]
