"""Data Act containers (ISO 20078 style): named groups of signals an owner shares (pure).

A container names VSS signals by glob (``*`` matches any run of characters, dots included),
optionally minus ``exclude`` globs, and is resolved against a signal catalog to concrete
paths. **Trade secrets** are signals the operator withholds from Data Act access, each with
the reason recorded (EU Data Act Art. 4(6)-(8)); they stay in a container's definition but
are never read for it, and the owner is shown them as withheld with the reason.

The shipped definition is ``data_act_containers.json`` beside this module; the setting
``data_act_containers_file`` replaces it. Nothing here does I/O except :func:`load_containers`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from fnmatch import translate
from functools import lru_cache
from pathlib import Path
from typing import Final

from drivetrain.core.errors import BadInputError, ConfigurationError
from drivetrain.core.vss import Catalog, SignalSpec

FORMAT: Final = "drivetrain.data-act-containers"
SHIPPED: Final = Path(__file__).with_name("data_act_containers.json")
#: A container's name: also its OAuth2 scope ``container:<name>``.
NAME_PATTERN: Final = re.compile(r"[a-z][a-z0-9_-]{0,31}")
MAX_CONTAINERS: Final = 64
MAX_GLOBS: Final = 256
MAX_FILE_BYTES: Final = 1 << 20


def _glob(pattern: str) -> re.Pattern[str]:
    return re.compile(translate(pattern))


@dataclass(frozen=True, slots=True)
class TradeSecret:
    """Signals withheld from Data Act access, and why."""

    signals: tuple[str, ...]
    reason: str

    def matches(self, path: str) -> bool:
        return any(_glob(g).match(path) for g in self.signals)


@dataclass(frozen=True, slots=True)
class Container:
    """One named group of signals."""

    name: str
    description: str
    signals: tuple[str, ...]
    exclude: tuple[str, ...] = ()

    def matches(self, path: str) -> bool:
        """Whether ``path`` belongs to this container (trade secrets included)."""
        return (any(_glob(g).match(path) for g in self.signals)
                and not any(_glob(g).match(path) for g in self.exclude))


@dataclass(frozen=True, slots=True)
class ContainerSet:
    """Every container and trade secret of one definition."""

    containers: Mapping[str, Container]
    trade_secrets: tuple[TradeSecret, ...] = ()

    def get(self, name: str) -> Container:
        """The container ``name``.

        Raises:
            BadInputError: no such container (naming the known ones).
        """
        if name not in self.containers:
            raise BadInputError(f"container {name!r} is not known; expected one of "
                                f"{', '.join(sorted(self.containers))}")
        return self.containers[name]

    def secret_reason(self, path: str) -> str | None:
        """Why ``path`` is withheld as a trade secret; None when it is not one."""
        for secret in self.trade_secrets:
            if secret.matches(path):
                return secret.reason
        return None

    def signals(self, name: str, catalog: Catalog) -> list[SignalSpec]:
        """The catalog's signals in container ``name`` (trade secrets included), by path."""
        container = self.get(name)
        return [s for s in catalog if container.matches(s.path)]

    def readable_paths(self, names: list[str] | frozenset[str], catalog: Catalog) -> list[str]:
        """The paths of containers ``names`` that may be read: trade secrets left out."""
        paths = {s.path for n in names for s in self.signals(n, catalog)}
        return sorted(p for p in paths if self.secret_reason(p) is None)

    def withheld(self, names: list[str] | frozenset[str], catalog: Catalog) -> dict[str, str]:
        """Per trade-secret path of containers ``names``, the reason it is withheld."""
        out: dict[str, str] = {}
        for name in names:
            for spec in self.signals(name, catalog):
                reason = self.secret_reason(spec.path)
                if reason is not None:
                    out[spec.path] = reason
        return dict(sorted(out.items()))


def _strings(value: object, where: str, *, empty: bool = False) -> tuple[str, ...]:
    if (not isinstance(value, list) or not (empty or value) or len(value) > MAX_GLOBS
            or not all(isinstance(v, str) and 0 < len(v) <= 256 for v in value)):
        raise BadInputError(f"{where}: expected a {'' if empty else 'non-empty '}list of at "
                            f"most {MAX_GLOBS} VSS paths or globs")
    return tuple(value)


def _only(body: Mapping[str, object], where: str, allowed: set[str]) -> None:
    extra = sorted(set(body) - allowed)
    if extra:
        raise BadInputError(f"{where}: unknown field(s) {', '.join(extra)}; expected "
                            f"{', '.join(sorted(allowed))}")


def parse_containers(data: object, source: str = "containers") -> ContainerSet:
    """A :class:`ContainerSet` from a parsed definition.

    Raises:
        BadInputError: naming the field and what was expected.
    """
    if not isinstance(data, dict):
        raise BadInputError(f"{source}: expected a JSON object")
    _only(data, source, {"format", "version", "containers", "trade_secrets"})
    if data.get("format") != FORMAT or data.get("version") != 1:
        raise BadInputError(f"{source}: format must be {FORMAT!r} and version 1")
    raw = data.get("containers")
    if not isinstance(raw, dict) or not raw or len(raw) > MAX_CONTAINERS:
        raise BadInputError(f"{source}.containers: expected an object of 1-{MAX_CONTAINERS} "
                            "containers")
    containers: dict[str, Container] = {}
    for name, body in raw.items():
        where = f"{source}.containers.{name}"
        if not NAME_PATTERN.fullmatch(name):
            raise BadInputError(f"{where}: a name is 1-32 lowercase letters, digits, '_' or "
                                "'-', starting with a letter")
        if not isinstance(body, dict):
            raise BadInputError(f"{where}: expected an object")
        _only(body, where, {"description", "signals", "exclude"})
        description = body.get("description")
        if not isinstance(description, str) or not 0 < len(description) <= 500:
            raise BadInputError(f"{where}.description: expected 1-500 characters")
        containers[name] = Container(
            name, description, _strings(body.get("signals"), f"{where}.signals"),
            _strings(body.get("exclude", []), f"{where}.exclude", empty=True))
    secrets_raw = data.get("trade_secrets", [])
    if not isinstance(secrets_raw, list) or len(secrets_raw) > MAX_GLOBS:
        raise BadInputError(f"{source}.trade_secrets: expected a list")
    secrets: list[TradeSecret] = []
    for i, body in enumerate(secrets_raw):
        where = f"{source}.trade_secrets[{i}]"
        if not isinstance(body, dict):
            raise BadInputError(f"{where}: expected an object")
        _only(body, where, {"signals", "reason"})
        reason = body.get("reason")
        if not isinstance(reason, str) or not 0 < len(reason) <= 500:
            raise BadInputError(f"{where}.reason: expected 1-500 characters (a trade secret "
                                "is withheld only with its reason recorded)")
        secrets.append(TradeSecret(_strings(body.get("signals"), f"{where}.signals"), reason))
    return ContainerSet(containers, tuple(secrets))


@lru_cache(maxsize=8)
def load_containers(path: str | None = None) -> ContainerSet:
    """The definition at ``path`` (None: the shipped one).

    Raises:
        ConfigurationError: the file is missing, too large, not JSON or not valid.
    """
    file = Path(path) if path else SHIPPED
    try:
        if file.stat().st_size > MAX_FILE_BYTES:
            raise ConfigurationError(f"{file}: over {MAX_FILE_BYTES} bytes")
        data = json.loads(file.read_text(encoding="utf-8"))
        return parse_containers(data, file.name)
    except (OSError, ValueError) as e:
        raise ConfigurationError(f"data act containers {file}: {e}") from e
