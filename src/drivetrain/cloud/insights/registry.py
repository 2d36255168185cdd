"""Models as versioned artifacts: ``<data_dir>/models/<tenant>/<name>/<version>/`` holds the serialized
model (``model.joblib``) and its model card (``card.json``).

A version is written whole or not at all: the files go into a temporary folder beside the
versions, are fsynced, and the folder is renamed to the next free version number (a rename
that loses a race to another trainer retries with the next number). The card carries the
artifact's SHA-256; loading checks it, so a truncated or swapped file is refused rather than
unpickled. The model folder is trusted like the state database: whoever can write it can
run code in the scorer (joblib is pickle), so it lives under the data directory with the keys.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

from drivetrain import __version__
from drivetrain.cloud.insights._deps import require
from drivetrain.core.errors import BadInputError, NotFoundError, StorageError

MODEL_FILE: Final = "model.joblib"
CARD_FILE: Final = "card.json"
CARD_VERSION: Final = 1
MAX_CARD_BYTES: Final = 1024 * 1024
_NAME = re.compile(r"[a-z][a-z0-9-]{0,47}")
_TENANT = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")


class ModelArtifactError(StorageError):
    """A stored model or card that cannot be used (missing, corrupt, checksum mismatch)."""


def check_model_name(name: str) -> str:
    """``name`` if it is a valid model name (1-48 of a-z, 0-9, '-', starting with a letter).

    Raises:
        BadInputError: anything else (it becomes a folder name, so no dots or slashes).
    """
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise BadInputError(
            f"model name {name!r} is not valid; expected 1-48 characters of a-z, 0-9 and '-' "
            "starting with a letter (e.g. 'maintenance')"
        )
    return name


def code_version() -> str:
    """The package version, plus the git commit when running from a checkout."""
    here = Path(__file__).resolve().parent
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short=12", "HEAD"], cwd=here, capture_output=True,
            text=True, timeout=5, check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return __version__
    return f"{__version__}+g{commit}" if re.fullmatch(r"[0-9a-f]{7,40}", commit) else __version__


@dataclass(frozen=True)
class ModelCard:
    """What a model is: what it learned from, how it scored, what it reads.

    ``training`` holds the data range (``start``, ``end`` ISO times, ``vehicles``, ``rows``,
    ``failures``, ``source``); ``metrics`` the held-out evaluation; ``parameters`` the
    settings the model was trained with (horizon, threshold...).
    """

    name: str
    version: int
    kind: str
    created_at: datetime
    code_version: str
    features: tuple[str, ...]
    training: Mapping[str, Any]
    metrics: Mapping[str, Any]
    parameters: Mapping[str, Any] = field(default_factory=dict)
    sha256: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "card_version": CARD_VERSION, "name": self.name, "version": self.version,
            "kind": self.kind, "created_at": self.created_at.isoformat(),
            "code_version": self.code_version, "features": list(self.features),
            "training": dict(self.training), "metrics": dict(self.metrics),
            "parameters": dict(self.parameters), "sha256": self.sha256,
        }  # fmt: skip

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ModelCard:
        """Raises ModelArtifactError naming the missing or mistyped field."""
        try:
            created = datetime.fromisoformat(str(data["created_at"]))
            card = cls(
                name=str(data["name"]), version=int(data["version"]), kind=str(data["kind"]),
                created_at=created if created.tzinfo else created.replace(tzinfo=UTC),
                code_version=str(data["code_version"]),
                features=tuple(str(f) for f in data["features"]),
                training=dict(data["training"]), metrics=dict(data["metrics"]),
                parameters=dict(data.get("parameters", {})), sha256=str(data["sha256"]),
            )  # fmt: skip
        except (KeyError, TypeError, ValueError, OverflowError) as e:
            raise ModelArtifactError(f"model card is malformed: {type(e).__name__}: {e}") from e
        return card


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class ModelRegistry:
    """The versioned model store under ``root`` (normally ``<data_dir>/models``)."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    @classmethod
    def for_tenant(cls, data_dir: Path, tenant: str) -> ModelRegistry:
        """A tenant's models: ``<data_dir>/models/<tenant>`` (each tenant learns from its own
        lake, and sees only its own models).

        Raises:
            BadInputError: a bad tenant id.
        """
        if not isinstance(tenant, str) or not _TENANT.fullmatch(tenant):
            raise BadInputError(f"tenant {tenant!r} is not a tenant id")
        return cls(Path(data_dir) / "models" / tenant)

    @staticmethod
    def tenants(data_dir: Path) -> list[str]:
        """Tenants with a model folder under ``data_dir``."""
        root = Path(data_dir) / "models"
        if not root.is_dir():
            return []
        return sorted(p.name for p in root.iterdir() if p.is_dir() and _TENANT.fullmatch(p.name))

    def versions(self, name: str) -> list[int]:
        """The stored versions of ``name``, ascending (empty when none)."""
        folder = self.root / check_model_name(name)
        if not folder.is_dir():
            return []
        return sorted(int(p.name) for p in folder.iterdir()
                      if p.name.isdigit() and (p / CARD_FILE).is_file())  # fmt: skip

    def names(self) -> list[str]:
        if not self.root.is_dir():
            return []
        return sorted(p.name for p in self.root.iterdir() if p.is_dir() and _NAME.fullmatch(p.name))

    def save(self, card: ModelCard, model: object) -> ModelCard:
        """Store ``model`` as the next version of ``card.name``; returns the card as stored
        (its version and checksum filled in).

        Raises:
            BadInputError: a bad model name.
            StorageError: the folder cannot be written.
        """
        joblib = require("joblib")
        folder = self.root / check_model_name(card.name)
        try:  # strict JSON (no NaN), so any reader of the card can parse it
            json.dumps(card.to_dict(), allow_nan=False)
        except ValueError as e:
            raise BadInputError(f"model card of {card.name!r} holds a non-finite number: {e}") from e
        try:
            folder.mkdir(parents=True, exist_ok=True)
            staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=folder))
            try:
                joblib.dump(model, staging / MODEL_FILE)
                _fsync(staging / MODEL_FILE)
                for _ in range(100):
                    version = max(self.versions(card.name), default=0) + 1
                    stored = ModelCard(**{**card.__dict__, "version": version,
                                          "sha256": _sha256(staging / MODEL_FILE)})  # fmt: skip
                    (staging / CARD_FILE).write_text(json.dumps(stored.to_dict(), indent=2, sort_keys=True))
                    _fsync(staging / CARD_FILE)
                    try:
                        staging.rename(folder / str(version))
                    except OSError:
                        continue  # another trainer took this number
                    _fsync(folder)
                    return stored
                raise StorageError(f"could not claim a version folder under {folder}")
            finally:
                if staging.exists():
                    shutil.rmtree(staging, ignore_errors=True)
        except OSError as e:
            raise StorageError(f"cannot write model {card.name!r} under {folder}: {e}") from e

    def card(self, name: str, version: int | None = None) -> ModelCard:
        """The card of ``name`` at ``version`` (default: the latest).

        Raises:
            NotFoundError: no such model or version.
            ModelArtifactError: the card is unreadable or malformed.
        """
        path = self._folder(name, version) / CARD_FILE
        try:
            raw = path.read_bytes()
            if len(raw) > MAX_CARD_BYTES:
                raise ModelArtifactError(f"{path}: {len(raw):,} bytes; a card is at most {MAX_CARD_BYTES:,}")
            return ModelCard.from_dict(json.loads(raw))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError) as e:
            raise ModelArtifactError(f"{path}: not a readable model card ({e})") from e

    def load(self, name: str, version: int | None = None) -> tuple[ModelCard, Any]:
        """The card and the model of ``name`` at ``version`` (default: the latest), after
        checking the artifact's SHA-256 against the card.

        Raises:
            NotFoundError: no such model or version.
            ModelArtifactError: the artifact is missing, altered or cannot be loaded.
        """
        card = self.card(name, version)
        path = self._folder(name, card.version) / MODEL_FILE
        try:
            actual = _sha256(path)
        except OSError as e:
            raise ModelArtifactError(f"{path}: cannot read the model ({e})") from e
        if actual != card.sha256:
            raise ModelArtifactError(
                f"{path}: SHA-256 {actual[:16]}… does not match the card's {card.sha256[:16]}…; "
                "refusing to load an altered model"
            )
        joblib = require("joblib")
        try:
            return card, joblib.load(path)
        except Exception as e:
            raise ModelArtifactError(f"{path}: cannot load the model: {type(e).__name__}: {e}") from e

    def _folder(self, name: str, version: int | None) -> Path:
        versions = self.versions(name)
        if not versions:
            raise NotFoundError(f"model {name!r} does not exist (none trained under {self.root})")
        if version is None:
            version = versions[-1]
        if version not in versions:
            raise NotFoundError(f"model {name!r} has no version {version}; stored: {versions}")
        return self.root / name / str(version)
