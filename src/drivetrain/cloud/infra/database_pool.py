"""How the state database is reached at scale: connection pools, PgBouncer, read replicas.

SQLite (the embedded default) has one file and no server, so none of this applies to it. On
PostgreSQL each process keeps a pool per engine — the primary, and each read replica — sized
by :class:`PoolOptions`:

- ``size`` connections stay open, ``max_overflow`` more are opened under load and closed when
  returned, a borrower waits at most ``timeout_s`` for one;
- ``pre_ping`` tests a connection before lending it (one ``SELECT 1`` round trip), so a
  restarted server or a proxy that dropped an idle connection costs a reconnect, not an
  error; ``recycle_s`` replaces connections older than that, below the idle timeout of the
  server or of a proxy in between;
- ``pgbouncer``: the URLs point at PgBouncer in *transaction* pooling mode, where consecutive
  transactions of one client connection may run on different server connections. Nothing may
  then outlive a transaction on the server: psycopg's automatic server-side prepared
  statements are turned off (``prepare_threshold=None``; a statement prepared on one server
  connection does not exist on the next), and the platform sets no session state
  (``SET``/advisory session locks/``LISTEN``) — every setting it needs is ``SET LOCAL`` or
  part of the statement. Startup options in the URL (``options=-c...``) are not forwarded by
  PgBouncer either: set them on the database (``ALTER DATABASE ... SET``).

Read replicas (``state_replica_urls``) are PostgreSQL streaming (or logical) replicas of the
primary. :meth:`Database.read_session` lends a read-only session on the next replica in turn;
only reads that tolerate the replication lag use it (fleet queries, twin reads, listings).
Everything that reads in order to write — and every write — uses :meth:`Database.session` on
the primary. Read-your-writes: a write answers with the state it wrote, read in its own
primary transaction (the new ETag included), and conditional writes check their ETag on the
primary, so a stale replica read can delay what a client sees but never causes a lost update.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    from drivetrain.core.settings import Settings

#: ``Session.info`` key set on sessions lent by :meth:`Database.read_session` on a replica:
#: domain code that would create rows on a read (a twin seen for the first time) reports the
#: row as absent instead, and the caller retries on the primary.
READ_ONLY_INFO: Final = "drivetrain.read_only"


@dataclass(frozen=True, slots=True)
class PoolOptions:
    """Connection-pool settings of a PostgreSQL engine (see the module docstring)."""

    size: int = 5
    max_overflow: int = 10
    timeout_s: float = 30.0
    recycle_s: int = 1800
    pre_ping: bool = True
    pgbouncer: bool = False

    def __post_init__(self) -> None:
        if self.size < 1 or self.max_overflow < 0 or self.timeout_s <= 0 or self.recycle_s < -1:
            raise ValueError(f"invalid pool options: {self!r}")

    @classmethod
    def from_settings(cls, settings: Settings) -> PoolOptions:
        """The pool the ``state_*`` settings describe."""
        return cls(
            size=settings.state_pool_size,
            max_overflow=settings.state_max_overflow,
            timeout_s=settings.state_pool_timeout_s,
            recycle_s=settings.state_pool_recycle_s,
            pre_ping=settings.state_pool_pre_ping,
            pgbouncer=settings.state_pgbouncer,
        )

    def engine_kwargs(self) -> dict[str, Any]:
        """Keyword arguments of ``create_engine`` for a PostgreSQL URL."""
        kwargs: dict[str, Any] = {
            "pool_size": self.size,
            "max_overflow": self.max_overflow,
            "pool_timeout": self.timeout_s,
            "pool_recycle": self.recycle_s,
            "pool_pre_ping": self.pre_ping,
        }
        if self.pgbouncer:
            # psycopg 3 prepares a statement on the server after it ran 5 times; behind
            # PgBouncer's transaction mode the next transaction may be on a server connection
            # that never saw it ("prepared statement ... does not exist").
            kwargs["connect_args"] = {"prepare_threshold": None}
        return kwargs
