"""Decoder manifests: how the vehicles of one model turn their CAN traffic into VSS signals.

A manifest carries a vehicle model's DBC file(s) — the ``main`` one and the files it
``IMPORT``s — and its DBC→VSS map (TOML, docs/can-codec.md), with the version of the tenant's
signal catalog the map decodes into and, under ``catalog``, the entries of that catalog the
standard VSS catalog lacks or defines otherwise (a VSS JSON tree of the decoded custom
signals), so a vehicle checks the map — and campaigns naming those signals — against the same
definitions the cloud does. It is versioned per model; the cloud sends it to the
model's vehicles as the JSON body of a signed ``DECODER_MANIFEST`` envelope, and the agent
switches to it without a restart (``drivetrain.edge.can_input.CanDecoding.from_manifest``).
Both sides read it with :meth:`DecoderManifest.from_dict`, which names the bad field; its
``digest`` (SHA-256 over the canonical JSON) identifies it.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from drivetrain.core.errors import CatalogFormatError, WireFormatError
from drivetrain.core.vss import Catalog, parse_vss_tree

MANIFEST_FORMAT: Final = 1
#: The ECU-inventory entry in which a vehicle reports the manifest in force: hardware id the
#: model, software version the manifest version (so twins show it and queries select by it).
MANIFEST_ECU: Final = "DecoderManifest"
#: Largest manifest, bytes of JSON (every DBC and the map together).
MAX_MANIFEST_BYTES: Final = 4 * 1024 * 1024
MAX_DBC_FILES: Final = 16
_MODEL: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,79}")
_FILE: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}\.dbc")
_KNOWN: Final = frozenset({"format", "model", "version", "main", "dbc", "signal_map",
                           "catalog_version", "catalog"})


@dataclass(frozen=True)
class DecoderManifest:
    """One version of a model's decoding (see the module docstring)."""

    model: str
    version: int
    main: str
    dbc: Mapping[str, str]
    signal_map: str
    catalog_version: int | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)
    #: VSS JSON tree of the decoded signals the standard catalog lacks or defines otherwise.
    catalog: Mapping[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        out = dict(self.extra)
        out.update({
            "format": MANIFEST_FORMAT, "model": self.model, "version": self.version,
            "main": self.main, "dbc": dict(self.dbc), "signal_map": self.signal_map,
            "catalog_version": self.catalog_version,
        })
        if self.catalog is not None:
            out["catalog"] = dict(self.catalog)
        return out

    def catalog_over(self, base: Catalog) -> Catalog:
        """``base`` with the manifest's ``catalog`` entries laid over it (``base`` itself when
        it carries none).

        Raises:
            CatalogFormatError: the entries are not a VSS JSON tree, or clash with ``base``
                (a signal where ``base`` has a branch, or the other way round).
        """
        if self.catalog is None:
            return base
        source = "decoder manifest: field 'catalog'"
        overlay = parse_vss_tree(dict(self.catalog), source)
        try:
            return base.overlaid(overlay)
        except ValueError as e:
            raise CatalogFormatError(f"{source}: {e}") from e

    def canonical_json(self) -> bytes:
        """The manifest as canonical JSON (sorted keys, no spaces): what is hashed and signed."""
        return json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":")).encode()

    @property
    def digest(self) -> str:
        """SHA-256 of the canonical JSON, hex."""
        return hashlib.sha256(self.canonical_json()).hexdigest()

    @classmethod
    def from_dict(cls, data: Any) -> DecoderManifest:
        """Read a manifest body.

        Raises:
            WireFormatError: a field missing, of the wrong type or too large (named).
        """
        where = "decoder manifest"
        if not isinstance(data, Mapping):
            raise WireFormatError(f"{where}: expected a JSON object")
        if data.get("format", MANIFEST_FORMAT) != MANIFEST_FORMAT:
            raise WireFormatError(f"{where}: field 'format' is {data.get('format')!r}; this "
                                  f"reader reads {MANIFEST_FORMAT}")
        model = data.get("model")
        if not isinstance(model, str) or not _MODEL.fullmatch(model):
            raise WireFormatError(f"{where}: field 'model' is {model!r}; expected a model id")
        version = data.get("version")
        if isinstance(version, bool) or not isinstance(version, int) or version < 1:
            raise WireFormatError(f"{where}: field 'version' is {version!r}; expected an "
                                  "integer >= 1")
        dbc = data.get("dbc")
        if (not isinstance(dbc, Mapping) or not dbc or len(dbc) > MAX_DBC_FILES
                or not all(isinstance(k, str) and _FILE.fullmatch(k) and isinstance(v, str)
                           for k, v in dbc.items())):
            raise WireFormatError(f"{where}: field 'dbc' must map 1 to {MAX_DBC_FILES} file "
                                  "names ('name.dbc') to DBC texts")
        main = data.get("main")
        if main not in dbc:
            raise WireFormatError(f"{where}: field 'main' is {main!r}; expected one of "
                                  f"{sorted(dbc)}")
        signal_map = data.get("signal_map")
        if not isinstance(signal_map, str) or not signal_map.strip():
            raise WireFormatError(f"{where}: field 'signal_map' must be the DBC→VSS map (TOML)")
        catalog_version = data.get("catalog_version")
        if catalog_version is not None and (isinstance(catalog_version, bool)
                                            or not isinstance(catalog_version, int)
                                            or catalog_version < 1):
            raise WireFormatError(f"{where}: field 'catalog_version' is {catalog_version!r}; "
                                  "expected null or an integer >= 1")
        catalog = data.get("catalog")
        if catalog is not None and (not isinstance(catalog, Mapping) or not catalog):
            raise WireFormatError(f"{where}: field 'catalog' must be null or a VSS JSON tree "
                                  '(e.g. {"Vehicle": {"type": "branch", "children": {...}}})')
        manifest = cls(model, version, str(main), dict(dbc), signal_map, catalog_version,
                       {k: v for k, v in data.items() if k not in _KNOWN},
                       None if catalog is None else dict(catalog))
        size = len(manifest.canonical_json())
        if size > MAX_MANIFEST_BYTES:
            raise WireFormatError(f"{where}: {size:,} bytes; at most {MAX_MANIFEST_BYTES:,}")
        return manifest
