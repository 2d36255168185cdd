"""Collection consent on the vehicle: the privacy categories it may collect at all.

When a driver withdraws consent (in the car or in an app), the cloud sends the vehicle the
command :data:`CONSENT_COMMAND` — signed, through the same downlink guard as every command —
with the categories still allowed and a version. From the next tick on, the agent drops
samples of every other category *before* they are collected, buffered or sent: the car stops
collecting, not only the cloud storing. Samples already collected but not yet sealed are
dropped too. An older version than the one in force is refused (re-deliveries, reordering).

Until the cloud has sent a consent (version ``-1``) the vehicle collects its region's default:
every category except the region's ``default_off`` ones (``core.privacy_policy``), so a new EU
car collects no location before its driver consents. A vehicle of a region the policy does not
name filters nothing; the cloud's ingestion filter still applies to what arrives.

The driver may also withdraw a category on the car's own screen (:meth:`CollectionConsent.
withdrawn`): it stops at once, and the agent reports the change to the cloud as the signed
vehicle event :data:`WITHDRAWN_EVENT`. Pure: no I/O, no clock.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, ClassVar, Final

import numpy as np

from drivetrain.core.errors import BadInputError
from drivetrain.core.vss.privacy import PRIVACY_CATEGORIES, privacy_category_for
from drivetrain.edge.samples import Samples

#: The command that sets the categories a vehicle may collect.
CONSENT_COMMAND: Final = "privacy.collection"
#: The vehicle event reporting a withdrawal made in the car:
#: ``{"withdrawn": [...], "categories": [...], "version": N}``.
WITHDRAWN_EVENT: Final = "privacy.consent.withdrawn"
#: The vehicle event an agent reports once per start, after applying what was waiting for it:
#: what it holds, so the cloud re-sends what it missed (``cloud.privacy.vehicle_sync``):
#: ``{"consent_version": N, "policy_region": "EU", "policy_version": M}`` (-1: none yet).
SYNC_EVENT: Final = "privacy.sync"


@lru_cache(maxsize=4096)
def _category(path: str) -> str:
    return privacy_category_for(path)


@dataclass(frozen=True)
class CollectionConsent:
    """The categories the vehicle may collect, and the version of that consent (``-1``: the
    cloud has sent none; the categories are then the region's default)."""

    record: ClassVar[str] = "consent"

    categories: frozenset[str] = field(default_factory=lambda: frozenset(PRIVACY_CATEGORIES))
    version: int = -1

    def allows(self, path: str) -> bool:
        """Whether samples of ``path`` may be collected."""
        return _category(path) in self.categories

    def filter(self, samples: Samples) -> tuple[Samples, int]:
        """``samples`` without the rows of categories not allowed, and how many were dropped."""
        kept, dropped = self.filter_by_category(samples)
        return kept, sum(dropped.values())

    def filter_by_category(self, samples: Samples) -> tuple[Samples, Counter[str]]:
        """``samples`` without the rows of categories not allowed, and the rows dropped per
        category."""
        dropped: Counter[str] = Counter()
        if not len(samples) or self.categories >= _ALL:
            return samples, dropped
        keep_path = np.array([self.allows(p) for p in samples.paths], dtype=bool)
        if keep_path.all():
            return samples, dropped
        rows = np.bincount(samples.path_index, minlength=len(samples.paths))
        for i in np.flatnonzero(~keep_path & (rows > 0)):
            dropped[_category(samples.paths[int(i)])] += int(rows[i])
        return samples.take(keep_path[samples.path_index]), dropped

    def to_dict(self) -> dict[str, Any]:
        return {"categories": sorted(self.categories), "version": self.version}

    @classmethod
    def from_dict(cls, data: object) -> CollectionConsent:
        """Read a stored record or the command's ``args``.

        Raises:
            BadInputError: not an object; ``categories`` not a list of known category names;
                ``version`` not a whole number >= 0 (stored records may hold -1).
        """
        if not isinstance(data, Mapping):
            raise BadInputError(f"consent is {type(data).__name__}; expected an object")
        unknown = sorted(set(data) - {"categories", "version"})
        if unknown:
            raise BadInputError(f"consent: unknown field(s) {', '.join(map(str, unknown))}; "
                                "expected categories and version")
        names = data.get("categories")
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise BadInputError("consent.categories must be a list of category names")
        bad = sorted({n for n in names if n not in PRIVACY_CATEGORIES})
        if bad:
            raise BadInputError(f"consent.categories: {', '.join(bad)} not known; expected "
                                f"any of {', '.join(PRIVACY_CATEGORIES)}")
        version = data.get("version")
        if isinstance(version, bool) or not isinstance(version, int) or not -1 <= version < 2**63:
            raise BadInputError(f"consent.version is {version!r:.40}; expected a whole number")
        return cls(frozenset(names), version)

    def updated(self, args: Mapping[str, Any]) -> CollectionConsent:
        """The consent the command ``args`` set, if newer than this one.

        Raises:
            BadInputError: malformed args, or a version not newer than the one in force.
        """
        new = CollectionConsent.from_dict(args)
        if new.version <= self.version:
            raise BadInputError(f"consent version {new.version} is not newer than version "
                                f"{self.version} in force")
        return new


    def withdrawn(self, categories: Iterable[str], version: int) -> CollectionConsent:
        """This consent without ``categories`` (withdrawn in the car), as ``version`` or, if
        the vehicle clock is behind the version in force, the next version after it.

        Raises:
            BadInputError: an unknown category, none named, or one not collected now.
        """
        names = sorted(set(categories))
        bad = [n for n in names if n not in PRIVACY_CATEGORIES]
        if bad or not names:
            raise BadInputError(f"withdraw: {', '.join(bad) or 'no category'} given; expected "
                                f"one or more of {', '.join(PRIVACY_CATEGORIES)}")
        idle = [n for n in names if n not in self.categories]
        if idle:
            raise BadInputError(f"withdraw: {', '.join(idle)} not collected now (collecting "
                                f"{', '.join(sorted(self.categories)) or 'nothing'})")
        return CollectionConsent(self.categories - set(names), max(version, self.version + 1))


_ALL: Final = frozenset(PRIVACY_CATEGORIES)


def region_default(default_off: Iterable[str]) -> CollectionConsent:
    """What a vehicle collects before the cloud sent it a consent: all but ``default_off``."""
    return CollectionConsent(_ALL - frozenset(default_off), -1)


def describe(consent: CollectionConsent, dropped: Iterable[str] = ()) -> str:
    """One line for the acknowledgement: what is collected now."""
    allowed = ", ".join(sorted(consent.categories)) or "nothing"
    stopped = sorted(set(dropped))
    suffix = f"; stopped: {', '.join(stopped)}" if stopped else ""
    return f"collecting {allowed} (consent version {consent.version}){suffix}"
