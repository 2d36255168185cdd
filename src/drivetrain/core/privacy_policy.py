"""Minimisation policy per region: how precise each signal may be, and which privacy categories
are off until consent is given.

One policy serves the vehicle and the cloud (pure, no I/O but reading the policy file): the
edge agent coarsens values before they are collected (from the region it was provisioned in),
and ingestion coarsens again whatever arrives more precise than its vehicle's region allows,
so a raw value is never stored even from an agent that does not apply the policy.

The shipped policy is ``privacy_policy.json`` next to this module; an operator replaces it with
the file named by ``DRIVETRAIN_PRIVACY_POLICY``. The format (version 1)::

    {"format": "drivetrain.privacy-policy", "version": 1,
     "regions": {"EU": {"law": "...", "default_off": ["location", ...],
                        "precision": [{"signals": ["Vehicle.CurrentLocation.Latitude"],
                                       "decimals": 2},
                                      {"signals": ["Vehicle.Speed"], "step": 5}]}}}

A precision rule names signals by glob (``*`` matches any run of characters, dots included;
the first rule that matches a path wins) and either ``decimals`` (rounded to that many decimal
places, 0–9) or ``step`` (snapped to the nearest multiple of that positive step). A region
absent from the policy has no precision rules and nothing off by default.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from fnmatch import translate
from functools import lru_cache
from pathlib import Path
from typing import Final

import numpy as np
import numpy.typing as npt

from drivetrain.core.errors import BadInputError, ConfigurationError
from drivetrain.core.regions import REGIONS
from drivetrain.core.vss.privacy import PRIVACY_CATEGORIES, PrivacyCategory, is_privacy_category

POLICY_FORMAT: Final = "drivetrain.privacy-policy"
POLICY_VERSION: Final = 1
#: The environment variable naming an operator's policy file (replaces the shipped one).
POLICY_ENV: Final = "DRIVETRAIN_PRIVACY_POLICY"
DEFAULT_POLICY_FILE: Final = Path(__file__).with_name("privacy_policy.json")
MAX_DECIMALS: Final = 9


@dataclass(frozen=True)
class PrecisionRule:
    """Signals (globs) and the precision they are kept at: ``decimals`` or ``step``."""

    signals: tuple[str, ...]
    decimals: int | None = None
    step: float | None = None
    _pattern: re.Pattern[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        pattern = re.compile("|".join(f"(?:{translate(g)})" for g in self.signals))
        object.__setattr__(self, "_pattern", pattern)

    def matches(self, path: str) -> bool:
        return self._pattern.match(path) is not None

    def apply(self, values: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        """``values`` at this rule's precision (NaN stays NaN)."""
        if self.step is not None:
            # rounded again so that a grid point reads as written (0.05 * 625 = 31.25, not
            # 31.250000000000004)
            return np.round(np.round(values / self.step) * self.step, MAX_DECIMALS)
        return np.round(values, self.decimals or 0)

    def describe(self) -> str:
        return (f"{self.decimals} decimal(s)" if self.step is None
                else f"multiples of {self.step:g}")

    def to_dict(self) -> dict[str, object]:
        """The rule as the policy format writes it."""
        precision = {"decimals": self.decimals} if self.step is None else {"step": self.step}
        return {"signals": list(self.signals), **precision}


@dataclass(frozen=True)
class RegionPolicy:
    """One region's rules."""

    region: str
    law: str = ""
    default_off: frozenset[PrivacyCategory] = frozenset()
    precision: tuple[PrecisionRule, ...] = ()

    def rule_for(self, path: str) -> PrecisionRule | None:
        """The first precision rule matching ``path``, or None (kept as measured)."""
        return _rule_for(self, path)

    def to_dict(self) -> dict[str, object]:
        """The region's entry as the policy format writes it (:func:`region_from_dict` reads
        it back)."""
        return {"law": self.law, "default_off": sorted(self.default_off),
                "precision": [r.to_dict() for r in self.precision]}

    @property
    def default_consent(self) -> frozenset[PrivacyCategory]:
        """The categories collected for a vehicle of this region without a consent record."""
        return frozenset(c for c in PRIVACY_CATEGORIES if c not in self.default_off)

    def coarsen(
        self, paths: Sequence[str], path_index: npt.NDArray[np.integer],
        values: npt.NDArray[np.float64],
    ) -> tuple[npt.NDArray[np.float64], int]:
        """``values`` (row i of path ``paths[path_index[i]]``) at the region's precision, and
        how many of them changed. Returns ``values`` itself when no rule applies."""
        if not self.precision or not len(values):
            return values, 0
        used = np.flatnonzero(np.bincount(path_index, minlength=len(paths)))  # no sort
        rules = [(int(p), self.rule_for(paths[int(p)])) for p in used]
        rules = [(p, r) for p, r in rules if r is not None]
        if not rules:
            return values, 0
        out = values.copy()
        for p, rule in rules:
            assert rule is not None
            rows = path_index == p
            out[rows] = rule.apply(values[rows])
        changed = int(np.count_nonzero((out != values) & ~np.isnan(values)))
        return out, changed


@lru_cache(maxsize=8192)
def _rule_for(policy: RegionPolicy, path: str) -> PrecisionRule | None:
    for rule in policy.precision:
        if rule.matches(path):
            return rule
    return None


@dataclass(frozen=True)
class MinimisationPolicy:
    """The policy of every region (see the module docstring)."""

    regions: Mapping[str, RegionPolicy]
    source: str = "built-in"

    def __hash__(self) -> int:
        return hash((self.source, tuple(self.regions.values())))

    def for_region(self, region: str) -> RegionPolicy:
        """The region's policy (an empty one for a region the policy does not name)."""
        return self.regions.get(region) or RegionPolicy(region)

    @classmethod
    def from_dict(cls, data: object, source: str = "policy") -> MinimisationPolicy:
        """Validate a policy document.

        Raises:
            BadInputError: a wrong format or version, an unknown region or category, a rule
                with neither or both of ``decimals`` and ``step``, a bad value; the message
                names the field (``regions.EU.precision[0].decimals``) and what was expected.
        """
        if not isinstance(data, Mapping):
            raise BadInputError(f"{source}: expected a JSON object, got {type(data).__name__}")
        _fields(data, source, {"format", "version", "regions"})
        if data.get("format") != POLICY_FORMAT:
            raise BadInputError(f"{source}: format is {data.get('format')!r}; expected "
                                f"{POLICY_FORMAT!r}")
        if data.get("version") != POLICY_VERSION:
            raise BadInputError(f"{source}: version is {data.get('version')!r}; expected "
                                f"{POLICY_VERSION}")
        regions = data.get("regions")
        if not isinstance(regions, Mapping):
            raise BadInputError(f"{source}: regions must be an object keyed by region code")
        parsed = {}
        for code, body in regions.items():
            where = f"{source}: regions.{code}"
            if code not in REGIONS:
                raise BadInputError(f"{where}: region not known; expected one of "
                                    f"{', '.join(REGIONS)}")
            parsed[code] = _region(code, body, where)
        return cls(parsed, source)

    @classmethod
    def read(cls, path: str | Path) -> MinimisationPolicy:
        """Read and validate a policy file.

        Raises:
            ConfigurationError: the file cannot be read or is not JSON.
            BadInputError: the document is not a valid policy (see :meth:`from_dict`).
        """
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as e:
            raise ConfigurationError(f"privacy policy {path}: {e.strerror or e}") from e
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            raise ConfigurationError(f"privacy policy {path}: not JSON: {e.msg} at line "
                                     f"{e.lineno} column {e.colno}") from e
        return cls.from_dict(data, str(path))


def region_from_dict(code: str, body: object, where: str = "policy") -> RegionPolicy:
    """One region's rules (the format of an entry of ``regions``), validated.

    Raises:
        BadInputError: an unknown region, field or category, a bad rule; names the field.
    """
    if code not in REGIONS:
        raise BadInputError(f"{where}: region {code!r} not known; expected one of "
                            f"{', '.join(REGIONS)}")
    return _region(code, body, where)


def _fields(data: Mapping[str, object], where: str, allowed: set[str]) -> None:
    unknown = sorted(set(map(str, data)) - allowed)
    if unknown:
        raise BadInputError(f"{where}: unknown field(s) {', '.join(unknown)}; expected "
                            f"{', '.join(sorted(allowed))}")


def _region(code: str, body: object, where: str) -> RegionPolicy:
    if not isinstance(body, Mapping):
        raise BadInputError(f"{where}: expected an object")
    _fields(body, where, {"law", "default_off", "precision"})
    law = body.get("law", "")
    if not isinstance(law, str):
        raise BadInputError(f"{where}.law: expected a string")
    off = body.get("default_off", [])
    if not isinstance(off, list):
        raise BadInputError(f"{where}.default_off: expected a list of privacy categories")
    for name in off:
        if not is_privacy_category(name):
            raise BadInputError(f"{where}.default_off: {name!r} is not a privacy category; "
                                f"expected any of {', '.join(PRIVACY_CATEGORIES)}")
    rules = body.get("precision", [])
    if not isinstance(rules, list):
        raise BadInputError(f"{where}.precision: expected a list of rules")
    return RegionPolicy(code, law, frozenset(off),
                        tuple(_rule(r, f"{where}.precision[{i}]") for i, r in enumerate(rules)))


def _rule(body: object, where: str) -> PrecisionRule:
    if not isinstance(body, Mapping):
        raise BadInputError(f"{where}: expected an object")
    _fields(body, where, {"signals", "decimals", "step"})
    signals = body.get("signals")
    if (not isinstance(signals, list) or not signals
            or not all(isinstance(s, str) and s.startswith("Vehicle") for s in signals)):
        raise BadInputError(f"{where}.signals: expected a non-empty list of VSS paths or globs "
                            "starting with 'Vehicle'")
    has_decimals, has_step = "decimals" in body, "step" in body
    if has_decimals == has_step:
        raise BadInputError(f"{where}: expected exactly one of 'decimals' or 'step'")
    if has_decimals:
        decimals = body["decimals"]
        if isinstance(decimals, bool) or not isinstance(decimals, int) or not (
                0 <= decimals <= MAX_DECIMALS):
            raise BadInputError(f"{where}.decimals is {decimals!r:.40}; expected a whole "
                                f"number from 0 to {MAX_DECIMALS}")
        return PrecisionRule(tuple(signals), decimals=decimals)
    step = body["step"]
    if isinstance(step, bool) or not isinstance(step, int | float) or not 0 < step < 1e9:
        raise BadInputError(f"{where}.step is {step!r:.40}; expected a positive number")
    return PrecisionRule(tuple(signals), step=float(step))


@lru_cache(maxsize=8)
def _read_cached(path: str, mtime_ns: int) -> MinimisationPolicy:
    return MinimisationPolicy.read(path)


def active_policy(environ: Mapping[str, str] | None = None) -> MinimisationPolicy:
    """The policy in force: the file ``$DRIVETRAIN_PRIVACY_POLICY`` names, else the shipped
    one (re-read when the file changes).

    Raises:
        ConfigurationError, BadInputError: the file is missing, unreadable or invalid — an
            operator's bad policy stops the service rather than silently minimising nothing.
    """
    env = os.environ if environ is None else environ
    path = env.get(POLICY_ENV) or str(DEFAULT_POLICY_FILE)
    try:
        mtime = os.stat(path).st_mtime_ns
    except OSError as e:
        raise ConfigurationError(f"privacy policy {path} ({POLICY_ENV}): "
                                 f"{e.strerror or e}") from e
    return _read_cached(path, mtime)
