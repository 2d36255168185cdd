"""Region state stores: where the personal state of a region's vehicles is kept.

The state database holds the registry and everything non-personal. The *personal* state of
a vehicle (the tables a domain registers with :func:`register_regional_table`, e.g. the
twins' reported values of location, driving behaviour and cabin) lives in its region's
store, so an EU vehicle's position never sits in a store that serves the US:

- a region named in ``state_region_urls`` has its own database at that URL (PostgreSQL or
  SQLite);
- a region not named there, with an embedded (SQLite file) state database, gets its own
  SQLite file next to it (``<dir>/state-<REGION>.db``);
- otherwise (a PostgreSQL or in-memory state database and no URL for the region) the region's
  personal tables are those of the state database itself: one store, as before. Name a URL
  per region to keep them apart.

A dedicated store records the region it serves (``state_store_regions``) the first time it
is used and refuses, from then on, to serve another: two regions configured on one URL, or a
URL moved to another region, fail with :class:`ResidencyError` before anything is written.
Writers check every row's vehicle region against the store's with :func:`check_residency`.

Sessions: :meth:`Database.session` lends region sessions through :func:`region_session`; they
commit just before the state database's own transaction (a failed commit of the latter after
a region commit leaves only values a retry writes again) and roll back with it.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from sqlalchemy import Column, String, Table, select
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from drivetrain.cloud.infra.database_pool import PoolOptions
from drivetrain.cloud.infra.models import Base, UTCDateTime
from drivetrain.core.errors import ConfigurationError

if TYPE_CHECKING:
    from drivetrain.cloud.infra.database import Database

#: ``Session.info`` key of the :class:`RegionSessions` of a state-database session.
REGIONAL_INFO: Final = "drivetrain.regional"
#: ``Session.info`` key naming the region a store session serves (absent: the state database).
STORE_REGION_INFO: Final = "drivetrain.store_region"

#: Which regions a store serves (a dedicated store: exactly one, recorded on first use).
STORE_REGIONS = Table(
    "state_store_regions",
    Base.metadata,
    Column("region", String(8), primary_key=True),
    Column("claimed_at", UTCDateTime(), nullable=False),
)

_REGIONAL_TABLES: list[Table] = []
#: "module:function" of each domain's mover of personal rows written to the state database
#: before they were kept per region; run by ``Database.upgrade``.
_RELOCATIONS: list[str] = []


class ResidencyError(ConfigurationError):
    """Personal state of one region would be written to (or read from) another's store."""


def register_regional_table(table: Table) -> Table:
    """Keep ``table`` in each region's store (its rows carry a ``vin``; no foreign keys to
    tables of the state database, which a dedicated store does not have)."""
    if table not in _REGIONAL_TABLES:
        _REGIONAL_TABLES.append(table)
    return table


def register_relocation(target: str) -> None:
    """Run the function ``target`` ("module:function", taking a state-database session and
    returning how many rows it moved) on every upgrade, after the region stores are ready."""
    if target not in _RELOCATIONS:
        _RELOCATIONS.append(target)


def relocate(session: Session) -> int:
    """Run every registered relocation in ``session``; how many rows moved."""
    import importlib

    moved = 0
    for target in _RELOCATIONS:
        module, _, function = target.partition(":")
        moved += int(getattr(importlib.import_module(module), function)(session))
    return moved


def regional_tables() -> tuple[Table, ...]:
    """The tables every region store holds."""
    return tuple(_REGIONAL_TABLES)


class RegionStore:
    """A region's dedicated store: a database of its own holding the regional tables."""

    def __init__(self, region: str, database: Database) -> None:
        self.region = region
        self.database = database
        self._sessions = sessionmaker(database.engine, expire_on_commit=False)
        self._ready = False
        self._lock = threading.Lock()

    def upgrade(self) -> None:
        """Create the regional tables that are missing and claim the store for its region.

        Raises:
            ResidencyError: the store already serves another region.
        """
        from drivetrain.cloud.infra.database import translate_errors

        where = f"preparing the {self.region} store {self.database.display_url}"
        with self._lock, translate_errors(where), self.database.engine.begin() as connection:
            Base.metadata.create_all(
                connection, tables=[STORE_REGIONS, *regional_tables()], checkfirst=True
            )
            claimed = set(connection.execute(select(STORE_REGIONS.c.region)).scalars())
            if claimed - {self.region}:
                raise ResidencyError(
                    f"store {self.database.display_url} serves region "
                    f"{', '.join(sorted(claimed))}; refusing to use it for {self.region} "
                    "(give each region its own state_region_urls entry)"
                )
            if not claimed:
                connection.execute(
                    STORE_REGIONS.insert().values(region=self.region, claimed_at=datetime.now(UTC))
                )
            self._ready = True

    def open_session(self) -> Session:
        """A new session on the store (prepared on first use)."""
        if not self._ready:
            self.upgrade()
        session = self._sessions()
        session.info[STORE_REGION_INFO] = self.region
        return session


class RegionStores:
    """Region → store of one state database (see the module docstring)."""

    def __init__(
        self, urls: Mapping[str, str], default_dir: Path | None, pool: PoolOptions | None = None
    ) -> None:
        self._urls = {region.upper(): url for region, url in urls.items()}
        self._pool = pool  # a PostgreSQL store's pool: sized like the state database's
        self._default_dir = default_dir
        self._stores: dict[str, RegionStore] = {}
        self._lock = threading.Lock()
        seen: dict[str, str] = {}
        for region, url in self._urls.items():
            key = make_url(url).render_as_string(hide_password=False)
            if key in seen:
                raise ResidencyError(
                    f"state_region_urls: {region} and {seen[key]} name the "
                    "same database; each region needs its own store"
                )
            seen[key] = region

    def url_of(self, region: str) -> str | None:
        """The URL of ``region``'s dedicated store; None: the state database's own tables."""
        region = region.upper()
        if region in self._urls:
            return self._urls[region]
        if self._default_dir is not None:
            return f"sqlite:///{self._default_dir / f'state-{region}.db'}"
        return None

    def store(self, region: str) -> RegionStore | None:
        """``region``'s dedicated store; None when it is the state database itself."""
        region = region.upper()
        with self._lock:
            if region in self._stores:
                return self._stores[region]
            url = self.url_of(region)
            if url is None:
                return None
            from drivetrain.cloud.infra.database import Database

            store = Database(url, pool=self._pool, region_stores=False)
            self._stores[region] = RegionStore(region, store)
            return self._stores[region]

    def known_regions(self) -> list[str]:
        """Regions with a dedicated store configured, opened, or (embedded) on disk."""
        regions = set(self._urls) | set(self._stores)
        if self._default_dir is not None and self._default_dir.is_dir():
            regions |= {p.stem.removeprefix("state-") for p in self._default_dir.glob("state-*.db")}
        return sorted(regions)

    def describe(self) -> list[tuple[str, str]]:
        """(region, store URL with any password masked) of each known dedicated store."""
        found = []
        for region in self.known_regions():
            url = self.url_of(region)
            if url is not None:
                found.append((region, make_url(url).render_as_string(hide_password=True)))
        return found

    def upgrade(self) -> None:
        """Prepare every known dedicated store (``drivetrain db upgrade``)."""
        for region in self.known_regions():
            store = self.store(region)
            if store is not None:
                store.upgrade()

    def dispose(self) -> None:
        """Close the pooled connections of every opened store."""
        for store in list(self._stores.values()):
            store.database.dispose()


class RegionSessions:
    """The region sessions one state-database session has opened (lazily, per region)."""

    def __init__(self, stores: RegionStores | None, main: Session) -> None:
        self._stores = stores
        self._main = main
        self._open: dict[str, Session] = {}

    def session(self, region: str) -> Session:
        """The session on ``region``'s store (the state database's own when it has none)."""
        region = region.upper()
        store = self._stores.store(region) if self._stores is not None else None
        if store is None:
            return self._main
        if region not in self._open:
            self._open[region] = store.open_session()
        return self._open[region]

    def known_regions(self) -> list[str]:
        """The regions with a dedicated store (see :meth:`RegionStores.known_regions`)."""
        return [] if self._stores is None else self._stores.known_regions()

    def commit(self) -> None:
        """Commit every open region session (before the state database commits)."""
        for session in self._open.values():
            session.commit()

    def close(self, *, rollback: bool) -> None:
        """Roll back (on failure or for reads) and close every open region session."""
        for session in self._open.values():
            if rollback:
                session.rollback()
            session.close()
        self._open.clear()


def region_session(session: Session, region: str) -> Session:
    """The session on ``region``'s store that goes with state-database ``session``."""
    regional: RegionSessions | None = session.info.get(REGIONAL_INFO)
    return session if regional is None else regional.session(region)


def check_residency(store_session: Session, regions: Iterable[str]) -> None:
    """Refuse rows of vehicles of another region than the store's (before writing them).

    Raises:
        ResidencyError: a region other than the store's is among ``regions``.
    """
    store_region = store_session.info.get(STORE_REGION_INFO)
    if store_region is None:  # the state database itself: every region shares it
        return
    strangers = sorted({r.upper() for r in regions} - {store_region})
    if strangers:
        raise ResidencyError(
            f"refusing to write vehicles of region {', '.join(strangers)} "
            f"to the {store_region} store"
        )


def iter_region_sessions(session: Session, regions: Iterable[str]) -> Iterator[Session]:
    """One session per distinct store of ``regions`` (the state database's at most once)."""
    seen: set[int] = set()
    for region in sorted({r.upper() for r in regions}):
        store = region_session(session, region)
        if id(store) not in seen:
            seen.add(id(store))
            yield store


def every_store_session(session: Session) -> Iterator[Session]:
    """A session on every store that may hold regional rows: the state database's own
    (regions without a store) and each known region store's."""
    regional: RegionSessions | None = session.info.get(REGIONAL_INFO)
    regions = [] if regional is None else regional.known_regions()
    yield session
    yield from (s for s in iter_region_sessions(session, regions) if s is not session)


def default_store_dir(url: Any) -> Path | None:
    """Embedded mode: the directory of the SQLite state file; None otherwise."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    return Path(parsed.database).resolve().parent
