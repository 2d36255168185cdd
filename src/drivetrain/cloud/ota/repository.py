"""A TUF repository on disk, built and signed with python-tuf's Metadata API.

Layout (consistent snapshots, TUF spec §5.x "consistent_snapshot"): ``metadata/`` holds
``N.root.json`` for every root version, ``N.targets.json`` and ``N.snapshot.json`` for every
published version, and ``timestamp.json``; ``targets/`` holds each image as
``<dir>/<sha256>.<name>``, so a client never sees a half-published set. Every file is written
to a temporary name and renamed into place, timestamp last: the commit point of a publication.

Both Uptane repositories are this class: the Image repository (one repository) and the
Director (one repository per vehicle, sharing the director's root).
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final, TypeVar

from securesystemslib.signer import Key, Signer
from tuf.api.metadata import (
    DelegatedRole,
    Delegations,
    Metadata,
    MetaFile,
    Root,
    Signed,
    Snapshot,
    TargetFile,
    Targets,
    Timestamp,
)
from tuf.api.serialization import DeserializationError
from tuf.api.serialization.json import JSONSerializer

from drivetrain.cloud.ota.keys import ROLES, KeyStore
from drivetrain.core.errors import BadInputError, ConfigurationError, NotFoundError, StorageError

T = TypeVar("T", bound=Signed)
#: Target names: relative POSIX paths of safe characters, no '..' (they become file paths).
TARGET_NAME: Final = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.+-]{0,127}(/[A-Za-z0-9_][A-Za-z0-9_.+-]{0,127}){0,7}")
MAX_IMAGE_BYTES: Final = 512 * 1024 * 1024
_SERIALIZER: Final = JSONSerializer(compact=True)


@dataclass(frozen=True, slots=True)
class Expiry:
    """How long each role's metadata stays valid after it is signed."""

    root: timedelta = timedelta(days=365)
    targets: timedelta = timedelta(days=90)
    snapshot: timedelta = timedelta(days=7)
    timestamp: timedelta = timedelta(days=1)

    def of(self, role: str) -> timedelta:
        value: timedelta = getattr(self, role)
        return value


def _utc(now: datetime | None) -> datetime:
    return (now or datetime.now(UTC)).replace(microsecond=0)


def _atomic_write(path: Path, data: bytes, *, sync: bool = True) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        if sync:
            f.flush()
            os.fsync(f.fileno())
    os.replace(tmp, path)


def _meta_of(version: int, data: bytes) -> MetaFile:
    return MetaFile(version, len(data), {"sha256": hashlib.sha256(data).hexdigest()})


def sign_with_threshold(md: Metadata[Any], signers: Iterable[Signer], threshold: int) -> None:
    """Sign ``md`` with every signer; refuse if fewer than ``threshold`` are present.

    Raises:
        ConfigurationError: not enough private keys for the role's threshold.
    """
    md.signatures.clear()
    count = 0
    for signer in signers:
        md.sign(signer, append=True)
        count += 1
    if count < threshold:
        raise ConfigurationError(
            f"{md.signed.type} needs {threshold} signatures; only {count} private key(s) "
            "present (offline root keys must be brought back to sign root)"
        )


@dataclass
class TufRepository:
    """One TUF repository under ``path``, signed with the keys of ``keys``."""

    path: Path
    keys: KeyStore
    expiry: Expiry = field(default_factory=Expiry)
    #: fsync every file as it is written; a batch writer (the Director signing a wave) turns
    #: this off and syncs once at the end of the batch (group commit)
    sync_each: bool = True

    @property
    def metadata_dir(self) -> Path:
        return self.path / "metadata"

    @property
    def targets_dir(self) -> Path:
        return self.path / "targets"

    # --- creation ------------------------------------------------------------------------
    @classmethod
    def create(
        cls, path: Path, keys: KeyStore, *, expiry: Expiry | None = None,
        root_bytes: bytes | None = None, now: datetime | None = None,
        initial: Mapping[str, TargetFile] | None = None, sync_each: bool = True,
    ) -> TufRepository:
        """Create a repository: root v1 (or the given signed root, shared by director
        repositories), empty targets, snapshot and timestamp.

        Raises:
            BadInputError: a repository already exists at ``path``.
            ConfigurationError: too few root keys to sign root.
        """
        repo = cls(Path(path), keys, expiry or Expiry(), sync_each)
        if (repo.metadata_dir / "timestamp.json").exists():
            raise BadInputError(f"a TUF repository already exists in {path}")
        now = _utc(now)
        if root_bytes is None:
            root_bytes = repo._new_root(now)
        root = Metadata[Root].from_bytes(root_bytes)
        _atomic_write(repo.metadata_dir / f"{root.signed.version}.root.json", root_bytes,
                      sync=sync_each)
        repo.publish(initial or {}, now=now, replace=True)
        return repo

    def _new_root(self, now: datetime) -> bytes:
        roles = self.keys.roles()
        root = Root(expires=now + self.expiry.root, consistent_snapshot=True)
        for role in ROLES:
            for key in roles[role].keys:
                root.add_key(key, role)
            root.roles[role].threshold = roles[role].threshold
        md = Metadata(root)
        sign_with_threshold(md, self.keys.signers("root"), roles["root"].threshold)
        return md.to_bytes(_SERIALIZER)

    # --- reading -------------------------------------------------------------------------
    def root_version(self) -> int:
        versions = [int(p.name.split(".")[0]) for p in self.metadata_dir.glob("*.root.json")
                    if p.name.split(".")[0].isdigit()]
        if not versions:
            raise NotFoundError(f"no TUF repository in {self.path} (no root metadata)")
        return max(versions)

    def root_bytes(self, version: int | None = None) -> bytes:
        """The signed root metadata (latest, or ``version``)."""
        v = self.root_version() if version is None else version
        return (self.metadata_dir / f"{v}.root.json").read_bytes()

    def _load(self, name: str, kind: type[T]) -> Metadata[T]:  # type: ignore[type-var]
        try:
            data = (self.metadata_dir / name).read_bytes()
        except FileNotFoundError as e:
            raise NotFoundError(f"no TUF repository in {self.path} ({name} missing)") from e
        try:
            md: Metadata[T] = Metadata.from_bytes(data)  # type: ignore[type-var,assignment]
        except DeserializationError as e:
            raise StorageError(f"TUF metadata {self.metadata_dir / name} is unreadable: {e}") from e
        if not isinstance(md.signed, kind):
            raise StorageError(f"TUF metadata {self.metadata_dir / name} is not {kind.type}")
        return md

    def timestamp(self) -> Metadata[Timestamp]:
        return self._load("timestamp.json", Timestamp)

    def snapshot(self) -> Metadata[Snapshot]:
        return self._load(f"{self.timestamp().signed.snapshot_meta.version}.snapshot.json",
                          Snapshot)

    def targets(self) -> Metadata[Targets]:
        return self._load(f"{self.snapshot().signed.meta['targets.json'].version}.targets.json",
                          Targets)

    def delegation(self, role: str) -> DelegatedRole:
        """The top-level targets' delegation to ``role``.

        Raises:
            NotFoundError: the top-level targets delegate to no role of that name.
        """
        delegations = self.targets().signed.delegations
        found = None if delegations is None or delegations.roles is None else \
            delegations.roles.get(role)
        if found is None:
            raise NotFoundError(f"the repository in {self.path} delegates to no role {role!r}")
        return found

    def delegations(self) -> list[DelegatedRole]:
        """The roles the top-level targets delegate to, in their order of precedence."""
        delegations = self.targets().signed.delegations
        return [] if delegations is None or delegations.roles is None else \
            list(delegations.roles.values())

    def delegated(self, role: str) -> Metadata[Targets]:
        """The published metadata of delegated role ``role``.

        Raises:
            NotFoundError: the snapshot lists no such role.
        """
        meta = self.snapshot().signed.meta.get(f"{role}.json")
        if meta is None:
            raise NotFoundError(f"the repository in {self.path} has no role {role!r}")
        return self._load(f"{meta.version}.{role}.json", Targets)

    def find(self, name: str) -> tuple[TargetFile, str] | None:
        """The published target ``name`` and the role that signs it, or None: the top-level
        targets first, then each delegated role whose paths cover ``name``, in order, as a
        TUF client searches (TUF spec §5.6.7, one level of delegation)."""
        top = self.targets().signed
        if name in top.targets:
            return top.targets[name], "targets"
        for role in self.delegations():
            if not role.is_delegated_path(name):
                continue
            entry = self.delegated(role.name).signed.targets.get(name)
            if entry is not None:
                return entry, role.name
            if role.terminating:
                break
        return None

    def target(self, name: str) -> TargetFile | None:
        """The published target ``name`` (top-level or delegated), or None."""
        found = self.find(name)
        return None if found is None else found[0]

    def all_targets(self) -> dict[str, tuple[TargetFile, str]]:
        """Every target a client can resolve, by name, with the role that signs it."""
        out: dict[str, tuple[TargetFile, str]] = {}
        for role in reversed(self.delegations()):  # earlier roles take precedence
            for name, entry in self.delegated(role.name).signed.targets.items():
                if role.is_delegated_path(name):
                    out[name] = (entry, role.name)
        out.update((n, (t, "targets")) for n, t in self.targets().signed.targets.items())
        return out

    def image_bytes(self, target: TargetFile) -> bytes:
        """The stored bytes of a published target."""
        return self._target_path(target).read_bytes()

    def _target_path(self, target: TargetFile) -> Path:
        head, _, base = target.path.rpartition("/")
        folder = self.targets_dir / head if head else self.targets_dir
        return folder / f"{target.hashes['sha256']}.{base}"

    # --- writing -------------------------------------------------------------------------
    def store_image(self, name: str, data: bytes, custom: Mapping[str, Any]) -> TargetFile:
        """Store an image file (not yet published) and return its target entry.

        Raises:
            BadInputError: a bad target name, or an image over the size cap.
        """
        if not TARGET_NAME.fullmatch(name) or ".." in name.split("/"):
            raise BadInputError(
                f"target name {name!r} is not valid; expected a relative path of letters, "
                "digits, '_', '.', '+', '-' (e.g. 'bms/bms-2.5.0.bin')"
            )
        if len(data) > MAX_IMAGE_BYTES:
            raise BadInputError(f"image {name} is {len(data):,} bytes; at most {MAX_IMAGE_BYTES:,}")
        target = TargetFile.from_data(name, data, ["sha256"])
        target.unrecognized_fields["custom"] = dict(custom)
        path = self._target_path(target)
        if not path.exists():
            _atomic_write(path, data)
        return target

    def publish(
        self, changes: Mapping[str, TargetFile | None], *, now: datetime | None = None,
        replace: bool = False, role: str = "targets",
    ) -> int:
        """Publish a new version of ``role`` (the top-level targets, or a delegated role) with
        ``changes`` (name → entry, None removes), then snapshot and timestamp. Returns the
        role's new version.

        ``replace`` starts from an empty role (the director's per-vehicle targets name exactly
        the current assignment). The top-level targets keep their delegations.

        Raises:
            NotFoundError: ``role`` is neither ``targets`` nor a delegated role here.
            ConfigurationError: fewer private keys than the role's threshold.
        """
        now = _utc(now)
        state = self._state()
        delegated = None if role == "targets" else self.delegation(role)
        entries: dict[str, TargetFile] = {}
        delegations: Delegations | None = None
        if replace:  # only the version is needed (the Director signs many vehicles in a row)
            meta = state[2].get(f"{role}.json")
            version = 1 if meta is None else meta.version + 1
        else:
            current = self._current(state, role)
            version = 1 if current is None else current.signed.version + 1
            if current is not None:
                entries = dict(current.signed.targets)
                delegations = current.signed.delegations
        for name, entry in changes.items():
            if entry is None:
                entries.pop(name, None)
            else:
                entries[name] = entry
        md = Metadata(Targets(version=version, expires=now + self.expiry.targets,
                              targets=entries, delegations=delegations))
        threshold = self.keys.roles()["targets"].threshold if delegated is None else \
            delegated.threshold
        sign_with_threshold(md, self.keys.signers(role), threshold)
        self._commit(state, {role: md}, now)
        return version

    def delegate(self, role: DelegatedRole, keys: Sequence[Key], *,
                 now: datetime | None = None) -> int:
        """Make the top-level targets delegate to ``role`` (replacing a delegation of that
        name: its keys, threshold and paths), and sign ``role``'s metadata with its keys
        (its targets kept when it existed). Returns the new top-level targets version.

        Raises:
            ConfigurationError: fewer private keys than the top-level targets' or the
                delegated role's threshold.
        """
        now = _utc(now)
        state = self._state()
        top = self._current(state, "targets")
        if top is None:
            raise NotFoundError(f"no TUF repository in {self.path}")
        delegations = top.signed.delegations or Delegations(keys={}, roles={})
        roles = dict(delegations.roles or {})
        roles[role.name] = role
        used = {keyid for r in roles.values() for keyid in r.keyids}
        all_keys = {k.keyid: k for k in delegations.keys.values()} | {k.keyid: k for k in keys}
        delegations = Delegations(keys={i: k for i, k in all_keys.items() if i in used},
                                  roles=roles)
        new_top = Metadata(Targets(version=top.signed.version + 1,
                                   expires=now + self.expiry.targets,
                                   targets=dict(top.signed.targets), delegations=delegations))
        sign_with_threshold(new_top, self.keys.signers("targets"),
                            self.keys.roles()["targets"].threshold)
        old = self._current(state, role.name)
        delegated = Metadata(Targets(
            version=1 if old is None else old.signed.version + 1,
            expires=now + self.expiry.targets,
            targets={} if old is None else dict(old.signed.targets)))
        sign_with_threshold(delegated, self.keys.signers(role.name), role.threshold)
        self._commit(state, {"targets": new_top, role.name: delegated}, now)
        return new_top.signed.version

    def _state(self) -> tuple[int, int, dict[str, MetaFile]]:
        """The current timestamp and snapshot versions and the snapshot's meta (zeros and
        none before the first publication)."""
        try:
            timestamp = self.timestamp().signed
        except NotFoundError:
            return 0, 0, {}
        snapshot = self._load(f"{timestamp.snapshot_meta.version}.snapshot.json",
                              Snapshot).signed
        return timestamp.version, snapshot.version, dict(snapshot.meta)

    def _current(self, state: tuple[int, int, dict[str, MetaFile]],
                 role: str) -> Metadata[Targets] | None:
        meta = state[2].get(f"{role}.json")
        return None if meta is None else self._load(f"{meta.version}.{role}.json", Targets)

    def _commit(self, state: tuple[int, int, dict[str, MetaFile]],
                roles: Mapping[str, Metadata[Targets]], now: datetime) -> None:
        """Write the new versions of ``roles``, then a snapshot naming them (the others
        unchanged), then the timestamp: the commit point."""
        meta = dict(state[2])
        written: list[tuple[Path, bytes]] = []
        for role, md in roles.items():
            data = md.to_bytes(_SERIALIZER)
            meta[f"{role}.json"] = _meta_of(md.signed.version, data)
            written.append((self.metadata_dir / f"{md.signed.version}.{role}.json", data))
        new_snapshot = Metadata(Snapshot(version=state[1] + 1,
                                         expires=now + self.expiry.snapshot, meta=meta))
        sign_with_threshold(new_snapshot, self.keys.signers("snapshot"),
                            self.keys.roles()["snapshot"].threshold)
        snapshot_bytes = new_snapshot.to_bytes(_SERIALIZER)
        for path, data in written:
            _atomic_write(path, data, sync=self.sync_each)
        _atomic_write(self.metadata_dir / f"{new_snapshot.signed.version}.snapshot.json",
                      snapshot_bytes, sync=self.sync_each)
        self._write_timestamp(_meta_of(new_snapshot.signed.version, snapshot_bytes), now,
                              state[0])

    def rotate_keys(self, *, now: datetime | None = None) -> int:
        """Sign root version N+1 naming the key store's current keys for every online role
        (root keys unchanged), then re-sign targets, snapshot and timestamp with them. Clients
        update root first (TUF §5.3), so metadata signed with a revoked key is refused from
        then on. Returns the new root version.

        Raises:
            ConfigurationError: fewer root keys present than root's threshold.
        """
        now = _utc(now)
        current = Metadata[Root].from_bytes(self.root_bytes()).signed
        roles = self.keys.roles()
        root = Root(version=current.version + 1, expires=now + self.expiry.root,
                    consistent_snapshot=True)
        for role in ROLES:
            for key in roles[role].keys:
                root.add_key(key, role)
            root.roles[role].threshold = roles[role].threshold
        md = Metadata(root)
        sign_with_threshold(md, self.keys.signers("root"), roles["root"].threshold)
        _atomic_write(self.metadata_dir / f"{root.version}.root.json", md.to_bytes(_SERIALIZER))
        self.publish({}, now=now)
        return root.version

    def refresh_timestamp(self, *, now: datetime | None = None) -> int:
        """Re-sign the timestamp (new version and expiry, same snapshot) so clients can tell a
        live repository from a frozen one. Returns the new timestamp version."""
        current = self.timestamp().signed
        return self._write_timestamp(current.snapshot_meta, _utc(now), current.version)

    def _write_timestamp(self, snapshot_meta: MetaFile, now: datetime, previous: int) -> int:
        roles = self.keys.roles()
        timestamp = Metadata(Timestamp(
            version=previous + 1,
            expires=now + self.expiry.timestamp, snapshot_meta=snapshot_meta,
        ))
        sign_with_threshold(timestamp, self.keys.signers("timestamp"),
                            roles["timestamp"].threshold)
        _atomic_write(self.metadata_dir / "timestamp.json", timestamp.to_bytes(_SERIALIZER),
                      sync=self.sync_each)
        return timestamp.signed.version
