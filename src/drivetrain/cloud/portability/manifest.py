"""The manifest of an export bundle: what it holds, and the SHA-256 of every file.

A bundle is a directory::

    manifest.json                       this manifest
    data/<table>.json                   the rows of one state table (a JSON array)
    schemas/<table>.schema.json         the JSON Schema those rows validate against
    telemetry/<REGION>/                 a telemetry bundle of the lake (Parquet per date,
                                        its own manifest.json; docs/lake.md)

Readers check the manifest first (:func:`verify`): every file it lists must be there with
its size and SHA-256, and no listed path may leave the bundle.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Final, Literal

from drivetrain.core.errors import BadInputError, VerificationError

EXPORT_FORMAT: Final = "drivetrain-export"
EXPORT_FORMAT_VERSION: Final = 1
MANIFEST_NAME: Final = "manifest.json"
#: Largest manifest read, bytes (it lists files; a bigger one is not ours).
MAX_MANIFEST_BYTES: Final = 16 * 1024 * 1024
SubjectKind = Literal["tenant", "vehicles"]


@dataclass(frozen=True, slots=True)
class FileEntry:
    """One file of the bundle: path relative to the bundle, size, SHA-256."""

    path: str
    bytes: int
    sha256: str


@dataclass(frozen=True, slots=True)
class Section:
    """The rows of one state table: data file, schema file, row count."""

    table: str
    path: str
    schema: str
    rows: int


@dataclass(frozen=True, slots=True)
class TelemetryPart:
    """The lake telemetry of one region: its bundle directory and row count."""

    region: str
    path: str
    rows: int


@dataclass(frozen=True, slots=True)
class ExportManifest:
    """``manifest.json``; :meth:`to_dict` and :meth:`from_dict` round-trip."""

    tenant: str
    subject: SubjectKind
    vins: tuple[str, ...]
    created_at: str
    vss_version: str
    sections: tuple[Section, ...]
    telemetry: tuple[TelemetryPart, ...]
    files: tuple[FileEntry, ...]
    format: str = EXPORT_FORMAT
    format_version: int = EXPORT_FORMAT_VERSION

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dictionary."""
        data = asdict(self)
        data["vins"] = list(self.vins)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ExportManifest:
        """Parse a manifest dictionary.

        Raises:
            BadInputError: another format, a newer version, or a missing or malformed field.
        """
        if data.get("format") != EXPORT_FORMAT:
            raise BadInputError(f"manifest format {data.get('format')!r:.80}; expected "
                                f"{EXPORT_FORMAT!r}")
        version = data.get("format_version")
        if not isinstance(version, int) or isinstance(version, bool) or \
                not 1 <= version <= EXPORT_FORMAT_VERSION:
            raise BadInputError(f"manifest format_version {version!r:.20}; this version reads "
                                f"1 to {EXPORT_FORMAT_VERSION}")
        try:
            subject = str(data["subject"])
            if subject not in ("tenant", "vehicles"):
                raise ValueError(f"subject {subject!r:.40}; expected tenant or vehicles")
            return cls(
                tenant=_text(data["tenant"]), subject=subject,  # type: ignore[arg-type]
                vins=tuple(_text(v) for v in data["vins"]),
                created_at=_text(data["created_at"]), vss_version=_text(data["vss_version"]),
                sections=tuple(Section(_text(s["table"]), _text(s["path"]), _text(s["schema"]),
                                       _count(s["rows"])) for s in data["sections"]),
                telemetry=tuple(TelemetryPart(_text(t["region"]), _text(t["path"]),
                                              _count(t["rows"])) for t in data["telemetry"]),
                files=tuple(FileEntry(_text(f["path"]), _count(f["bytes"]), _text(f["sha256"]))
                            for f in data["files"]),
                format=EXPORT_FORMAT, format_version=version,
            )
        except (KeyError, TypeError, ValueError, AttributeError) as e:
            raise BadInputError(f"manifest field missing or malformed: {e}") from e


def _text(value: object) -> str:
    if not isinstance(value, str) or len(value) > 4096:
        raise ValueError(f"{value!r:.60} is not a string of at most 4096 characters")
    return value


def _count(value: object) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < 2**63:
        raise ValueError(f"{value!r:.40} is not a count")
    return value


def sha256_of(path: Path) -> str:
    """SHA-256 of a file, hex."""
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def file_entries(root: Path) -> tuple[FileEntry, ...]:
    """Every file under ``root`` except the top manifest, sorted by path."""
    entries = []
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        relative = path.relative_to(root).as_posix()
        if relative != MANIFEST_NAME:
            entries.append(FileEntry(relative, path.stat().st_size, sha256_of(path)))
    return tuple(entries)


def write_manifest(root: Path, manifest: ExportManifest) -> None:
    """Write ``manifest.json`` (sorted keys, so equal content gives equal bytes)."""
    text = json.dumps(manifest.to_dict(), indent=1, sort_keys=True)
    (root / MANIFEST_NAME).write_text(text + "\n", encoding="utf-8")


def inside(root: Path, relative: str) -> Path:
    """``root / relative``, refusing a path that leaves ``root``.

    Raises:
        BadInputError: an absolute path or one that climbs out.
    """
    resolved_root = root.resolve()
    path = (resolved_root / relative).resolve()
    if Path(relative).is_absolute() or not path.is_relative_to(resolved_root):
        raise BadInputError(f"manifest names {relative!r:.80}, outside the bundle")
    return path


def verify(root: Path) -> ExportManifest:
    """Read and check the bundle in ``root``: every listed file present, same size and hash.

    Raises:
        BadInputError: no manifest, one that is not JSON or not ours, or a path outside.
        VerificationError: a listed file is missing or altered, or a section or telemetry
            part is not listed among the files.
    """
    path = root / MANIFEST_NAME
    try:
        if path.stat().st_size > MAX_MANIFEST_BYTES:
            raise BadInputError(f"{path} is larger than {MAX_MANIFEST_BYTES} bytes")
        data = json.loads(path.read_bytes())
    except FileNotFoundError as e:
        raise BadInputError(f"{root} has no {MANIFEST_NAME}; not a Drivetrain export") from e
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError,
            ValueError) as e:
        raise BadInputError(f"{path} is not readable JSON: {e}") from e
    if not isinstance(data, dict):
        raise BadInputError(f"{path} holds {type(data).__name__}; expected an object")
    manifest = ExportManifest.from_dict(data)
    listed = set()
    for entry in manifest.files:
        file = inside(root, entry.path)
        if not file.is_file():
            raise VerificationError(f"bundle file {entry.path} is missing")
        if file.stat().st_size != entry.bytes or sha256_of(file) != entry.sha256:
            raise VerificationError(f"bundle file {entry.path} does not match its SHA-256")
        listed.add(entry.path)
    for section in manifest.sections:
        for relative in (section.path, section.schema):
            if relative not in listed:
                raise VerificationError(f"section {section.table}: {relative} is not among "
                                        "the manifest's files")
    for part in manifest.telemetry:
        inside(root, part.path)
        if not any(p.startswith(part.path.rstrip("/") + "/") for p in listed):
            raise VerificationError(f"telemetry {part.region}: no file under {part.path} is "
                                    "among the manifest's files")
    return manifest
