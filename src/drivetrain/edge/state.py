"""The agent's persisted state, as typed records kept in its store-and-forward buffer.

Each record is replaced whole when it changes and written in the same transaction as the
message that reports the change (the acknowledgement of a downlink message carries the
downlink memory that remembers its id; the ``applied`` ack of a desired-state delta carries the
version it applied):

* ``DownlinkMemory`` — what the downlink guard remembers against replays;
* ``InstalledCampaigns`` — the campaigns the cloud installed and the newest version seen per id;
* ``DesiredStateVersion`` — the newest desired-state version applied;
* ``CollectionConsent`` — the privacy categories the vehicle may collect;
* ``HeldEntitlements`` — the entitlement tokens in force and the newest ``seq`` per feature;
* ``ManifestInForce`` — the decoder manifest the cloud switched the vehicle to (so a restart
  decodes with it, not with the files the agent was started with);
* ``PolicyInForce`` — the region's minimisation rules the cloud last sent (``edge.policy``).

``AgentState`` is all of them, as the agent reads them at start-up. Each record is stored under
its ``record`` name as the JSON of its ``to_dict`` (the buffers' ``agent_state`` table);
``records_from_legacy`` reads the key/value state written by agents before these records
existed, so a buffer file kept from then is migrated, not lost.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, ClassVar, Final

from drivetrain.core.errors import BadInputError, StorageError
from drivetrain.edge.consent import CollectionConsent
from drivetrain.edge.policy import PolicyInForce

log = logging.getLogger("drivetrain.edge")

#: Legacy keys of the key/value state (buffer schema version 1).
_LEGACY_DOWNLINK: Final = "downlink"
_LEGACY_CAMPAIGNS: Final = "campaigns"
_LEGACY_VERSIONS: Final = "campaign_versions"
_LEGACY_DESIRED: Final = "desired_version"


class StateFormatError(StorageError):
    """A stored state record that cannot be read back; names the record and the field."""


def _int(value: object, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise StateFormatError(f"{where}: expected an integer, got {value!r}")
    try:
        return int(value)
    except ValueError as e:
        raise StateFormatError(f"{where}: expected an integer, got {value!r}") from e


def _mapping(value: object, where: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise StateFormatError(f"{where}: expected an object, got {type(value).__name__}")
    return value


def _list(value: object, where: str) -> list[Any]:
    if not isinstance(value, list):
        raise StateFormatError(f"{where}: expected a list, got {type(value).__name__}")
    return value


@dataclass(frozen=True)
class DownlinkMemory:
    """What the downlink guard remembers between messages.

    Attributes:
        seen_ids: accepted message ids, oldest first (a bounded window).
        last_sent_ns: per message kind (``MessageKind`` value), the newest ``sent_ns`` accepted.
        last_id: per message kind, the id of the last message accepted.
    """

    record: ClassVar[str] = "downlink"

    seen_ids: tuple[str, ...] = ()
    last_sent_ns: Mapping[int, int] = field(default_factory=dict)
    last_id: Mapping[int, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "seen_ids": list(self.seen_ids),
            "last_sent_ns": {str(k): v for k, v in self.last_sent_ns.items()},
            "last_id": {str(k): v for k, v in self.last_id.items()},
        }

    @classmethod
    def from_dict(cls, data: object) -> DownlinkMemory:
        """Raises ``StateFormatError`` naming the field that does not read."""
        data = _mapping(data, cls.record)
        seen = _list(data.get("seen_ids", []), f"{cls.record}.seen_ids")
        if not all(isinstance(i, str) for i in seen):
            raise StateFormatError(f"{cls.record}.seen_ids: expected a list of strings")
        sent = _mapping(data.get("last_sent_ns", {}), f"{cls.record}.last_sent_ns")
        ids = _mapping(data.get("last_id", {}), f"{cls.record}.last_id")
        return cls(
            tuple(seen),
            {
                _int(k, f"{cls.record}.last_sent_ns"): _int(v, f"{cls.record}.last_sent_ns.{k}")
                for k, v in sent.items()
            },
            {_int(k, f"{cls.record}.last_id"): str(v) for k, v in ids.items()},
        )


@dataclass(frozen=True)
class InstalledCampaigns:
    """The campaigns installed by the cloud and the newest version seen per campaign id.

    Attributes:
        campaigns: each installed campaign as its wire document (``Campaign.to_dict``), checked
            against the vehicle's catalog again when reinstalled at start-up.
        versions: the newest version seen per campaign id, cancelled campaigns included (so an
            older version re-delivered later is refused).
    """

    record: ClassVar[str] = "campaigns"

    campaigns: tuple[Mapping[str, Any], ...] = ()
    versions: Mapping[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"campaigns": [dict(c) for c in self.campaigns], "versions": dict(self.versions)}

    @classmethod
    def from_dict(cls, data: object) -> InstalledCampaigns:
        """Raises ``StateFormatError`` naming the field that does not read."""
        data = _mapping(data, cls.record)
        documents = _list(data.get("campaigns", []), f"{cls.record}.campaigns")
        versions = _mapping(data.get("versions", {}), f"{cls.record}.versions")
        return cls(
            tuple(_mapping(d, f"{cls.record}.campaigns[{i}]") for i, d in enumerate(documents)),
            {str(k): _int(v, f"{cls.record}.versions.{k}") for k, v in versions.items()},
        )


@dataclass(frozen=True)
class DesiredStateVersion:
    """The newest desired-state version applied (``-1``: none yet)."""

    record: ClassVar[str] = "desired_state"

    version: int = -1

    def to_dict(self) -> dict[str, Any]:
        return {"version": self.version}

    @classmethod
    def from_dict(cls, data: object) -> DesiredStateVersion:
        """Raises ``StateFormatError`` naming the field that does not read."""
        data = _mapping(data, cls.record)
        return cls(_int(data.get("version", -1), f"{cls.record}.version"))


@dataclass(frozen=True)
class HeldEntitlements:
    """The entitlement tokens in force and, per feature, the newest ``seq`` taken.

    Attributes:
        tokens: the newest token taken per feature (compact JWS), verified again on restore.
        floors: per feature, the newest ``seq`` taken: an older token is refused even after
            a restart (rollback protection).
    """

    record: ClassVar[str] = "entitlements"

    tokens: tuple[str, ...] = ()
    floors: Mapping[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"tokens": list(self.tokens), "floors": dict(self.floors)}

    @classmethod
    def from_dict(cls, data: object) -> HeldEntitlements:
        """Raises ``StateFormatError`` naming the field that does not read."""
        data = _mapping(data, cls.record)
        tokens = _list(data.get("tokens", []), f"{cls.record}.tokens")
        if not all(isinstance(t, str) for t in tokens):
            raise StateFormatError(f"{cls.record}.tokens: expected a list of strings")
        floors = _mapping(data.get("floors", {}), f"{cls.record}.floors")
        return cls(
            tuple(tokens),
            {str(k): _int(v, f"{cls.record}.floors.{k}") for k, v in floors.items()},
        )


@dataclass(frozen=True)
class ManifestInForce:
    """The decoder manifest in force as its wire document (``DecoderManifest.to_dict``), or
    None while the vehicle decodes with what it was started with; checked again (parsed and
    its DBC loaded) when restored at start-up."""

    record: ClassVar[str] = "decoder_manifest"

    manifest: Mapping[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"manifest": None if self.manifest is None else dict(self.manifest)}

    @classmethod
    def from_dict(cls, data: object) -> ManifestInForce:
        """Raises ``StateFormatError`` naming the field that does not read."""
        data = _mapping(data, cls.record)
        document = data.get("manifest")
        return cls(None if document is None else _mapping(document, f"{cls.record}.manifest"))


StateRecord = (
    DownlinkMemory | InstalledCampaigns | DesiredStateVersion | CollectionConsent
    | HeldEntitlements | ManifestInForce | PolicyInForce
)
_RECORD_TYPES: Final[Mapping[str, type[StateRecord]]] = {
    t.record: t
    for t in (DownlinkMemory, InstalledCampaigns, DesiredStateVersion, CollectionConsent,
              HeldEntitlements, ManifestInForce, PolicyInForce)
}
#: The attribute of ``AgentState`` that holds each record type.
_FIELDS: Final[Mapping[str, str]] = {
    DownlinkMemory.record: "downlink",
    InstalledCampaigns.record: "campaigns",
    DesiredStateVersion.record: "desired",
    CollectionConsent.record: "consent",
    HeldEntitlements.record: "entitlements",
    ManifestInForce.record: "manifest",
    PolicyInForce.record: "policy",
}


@dataclass(frozen=True)
class AgentState:
    """Everything an agent keeps across restarts (the default: a vehicle fresh from the line)."""

    downlink: DownlinkMemory = field(default_factory=DownlinkMemory)
    campaigns: InstalledCampaigns = field(default_factory=InstalledCampaigns)
    desired: DesiredStateVersion = field(default_factory=DesiredStateVersion)
    consent: CollectionConsent = field(default_factory=CollectionConsent)
    entitlements: HeldEntitlements = field(default_factory=HeldEntitlements)
    manifest: ManifestInForce = field(default_factory=ManifestInForce)
    policy: PolicyInForce = field(default_factory=PolicyInForce)

    def updated(self, records: Iterable[StateRecord]) -> AgentState:
        """This state with ``records`` replacing the records of their types."""
        changes = {_FIELDS[r.record]: r for r in records}
        return replace(self, **changes) if changes else self  # type: ignore[arg-type]

    @classmethod
    def from_stored(cls, rows: Iterable[tuple[str, str]]) -> AgentState:
        """The state from stored ``(record, json)`` rows (see ``encode_record``).

        A record that does not read back (a damaged file) is logged and left at its default,
        as is a record name this version does not know (written by a newer agent): the
        downlink guard's freshness windows still bound replays, and the cloud re-delivers
        campaigns and desired state that are not acknowledged as applied.
        """
        records: list[StateRecord] = []
        for name, text in rows:
            record_type = _RECORD_TYPES.get(name)
            if record_type is None:
                log.warning("agent state record %r is not known to this agent; ignored", name)
                continue
            try:
                records.append(record_type.from_dict(json.loads(text)))
            except (ValueError, StateFormatError, BadInputError) as e:  # JSONDecodeError too
                log.warning("agent state record %r does not read (%s); starting it empty", name, e)
        return cls().updated(records)


def encode_record(record: StateRecord) -> tuple[str, str]:
    """The ``(record, json)`` row a buffer stores for ``record``."""
    return record.record, json.dumps(record.to_dict(), separators=(",", ":"), sort_keys=True)


def encode_records(records: Sequence[StateRecord]) -> list[tuple[str, str]]:
    """``encode_record`` of each record; a type given twice keeps the last.

    Raises:
        TypeError: something that is not a state record.
    """
    rows: dict[str, str] = {}
    for record in records:
        if type(record) not in _RECORD_TYPES.values():
            raise TypeError(f"not an agent state record: {record!r}")
        name, text = encode_record(record)
        rows[name] = text
    return list(rows.items())


def records_from_legacy(entries: Mapping[str, str]) -> list[StateRecord]:
    """The typed records for key/value state written by buffer schema version 1.

    Version 1 kept ``downlink`` (the guard's memory as JSON), ``campaigns`` (a JSON list of
    campaign documents), ``campaign_versions`` (a JSON object) and ``desired_version`` (a
    decimal string). An entry that does not read is logged and left at its default, as
    version 1 did when it read them; other keys were never written by an agent and are dropped.
    """
    records: list[StateRecord] = []

    def read(key: str, default: str) -> Any:
        try:
            return json.loads(entries.get(key) or default)
        except ValueError as e:
            log.warning("legacy agent state %r does not read (%s); starting it empty", key, e)
            return json.loads(default)

    if _LEGACY_DOWNLINK in entries:
        try:
            records.append(DownlinkMemory.from_dict(read(_LEGACY_DOWNLINK, "{}")))
        except StateFormatError as e:
            log.warning("legacy agent state 'downlink' does not read (%s); starting it empty", e)
    if _LEGACY_CAMPAIGNS in entries or _LEGACY_VERSIONS in entries:
        try:
            records.append(
                InstalledCampaigns.from_dict(
                    {
                        "campaigns": read(_LEGACY_CAMPAIGNS, "[]"),
                        "versions": read(_LEGACY_VERSIONS, "{}"),
                    }
                )
            )
        except StateFormatError as e:
            log.warning("legacy agent state 'campaigns' does not read (%s); starting it empty", e)
    desired = entries.get(_LEGACY_DESIRED, "")
    if desired.isdigit():
        records.append(DesiredStateVersion(int(desired)))
    return records
