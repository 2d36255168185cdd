"""Privacy: pseudonymisation of vehicle ids in analytical data, and per-vehicle consent.

Public surface: :class:`Pseudonymiser`, :func:`pseudonymiser`, :func:`vehicle_pseudonym`,
:func:`vehicle_pseudonyms`, :func:`rotate_pseudonym_key`, :func:`pseudonym_keys`,
:class:`Consent`, :func:`set_consent`, :func:`get_consent`, :func:`consent_map`,
:func:`parse_categories`, :func:`parse_source`, :data:`DEFAULT_CONSENT`,
:data:`DEFAULT_SOURCE`; :class:`CategoryInfo` and :func:`describe_categories` (what each
category means, with example paths); purposes (:data:`PURPOSES`, :data:`PURPOSE_CATALOG`,
:class:`ReadPermit`) and the consent ledger (:class:`Grant`, :func:`give_consent`,
:func:`withdraw_consent`, :func:`consent_history`, :func:`purpose_permit`);
:func:`bind_read` (a read checked against its purpose, audited). Regions are
:mod:`drivetrain.core.regions`.
"""

from drivetrain.cloud.privacy.binding import bind_read
from drivetrain.cloud.privacy.categories import CategoryInfo, describe_categories
from drivetrain.cloud.privacy.ledger import (
    Grant,
    consent_history,
    give_consent,
    purpose_permit,
    withdraw_consent,
)
from drivetrain.cloud.privacy.purposes import (
    PURPOSE_CATALOG,
    PURPOSES,
    PurposeNotAllowedError,
    PurposeRequiredError,
    ReadPermit,
)
from drivetrain.cloud.privacy.service import (
    DEFAULT_CONSENT,
    DEFAULT_SOURCE,
    Consent,
    Pseudonymiser,
    PseudonymKey,
    consent_map,
    get_consent,
    parse_categories,
    parse_source,
    pseudonym_keys,
    pseudonymiser,
    rotate_pseudonym_key,
    set_consent,
    vehicle_pseudonym,
    vehicle_pseudonyms,
)

__all__ = [
    "DEFAULT_CONSENT",
    "DEFAULT_SOURCE",
    "PURPOSES",
    "PURPOSE_CATALOG",
    "CategoryInfo",
    "Consent",
    "Grant",
    "PseudonymKey",
    "Pseudonymiser",
    "PurposeNotAllowedError",
    "PurposeRequiredError",
    "ReadPermit",
    "bind_read",
    "consent_history",
    "consent_map",
    "describe_categories",
    "get_consent",
    "give_consent",
    "parse_categories",
    "parse_source",
    "pseudonym_keys",
    "pseudonymiser",
    "purpose_permit",
    "rotate_pseudonym_key",
    "set_consent",
    "vehicle_pseudonym",
    "vehicle_pseudonyms",
    "withdraw_consent",
]
