"""The embedded platform: state database, message bus and HTTP API in this one process.

``EmbeddedPlatform`` starts, in order: the SQLite state database in the demo's data directory
(migrated), the bootstrap admin and an access token for it, the in-process transport, the
twins reconciler (publishes signed desired-state deltas on the transport), the commands
dispatcher (delivers jobs' and campaigns' signed messages on it), the campaign runner, the
ingest worker
(consumes the vehicles' telemetry, events and acks from the transport into the lake and the
twins), and the API served by uvicorn on a background thread at a free localhost port, with
the board of the acts' progress the console reads (``/v1/demo``).
``stop()`` undoes it all in reverse and leaves no thread running. Nothing outside the process
is contacted."""

from __future__ import annotations

import socket
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

import uvicorn

from drivetrain.api import create_app
from drivetrain.api.demo_routes import DemoBoard
from drivetrain.cloud.campaigns import CampaignRunner
from drivetrain.cloud.commands import Dispatcher
from drivetrain.cloud.commerce import CommerceRunner, payment_provider
from drivetrain.cloud.fleet import cloud_signing_key
from drivetrain.cloud.infra import (
    BootstrapCredentials,
    Database,
    issue_access_token,
    open_database,
    resolve_token_key,
)
from drivetrain.cloud.ingest import IngestPipeline, IngestWorker, TwinsReportedState
from drivetrain.cloud.lake import Lake
from drivetrain.cloud.ota import OtaLayout, RolloutDriver
from drivetrain.cloud.twins import Reconciler
from drivetrain.core.errors import ConfigurationError
from drivetrain.core.settings import Settings, load_settings
from drivetrain.core.transport import InProcessTransport

#: Longest wait for the API server to accept connections, seconds.
API_START_TIMEOUT_S = 15.0
#: Longest wait for the API server thread to finish after being asked to exit, seconds.
API_STOP_TIMEOUT_S = 10.0
#: How often the dispatcher's round reads the lake for a rollout whose wave is done, seconds
#: (the demo's simulated days pass in seconds).
DEMO_JUDGE_EVERY_S = 0.5
#: The demo's entitlement lease, seconds (a real deployment: days).
DEMO_ENTITLEMENT_LEASE_S = 4.0


def demo_settings(data_dir: Path, *, port: int = 0) -> Settings:
    """Embedded-deployment settings confined to ``data_dir``, the API on localhost ``port``
    (0: a free one).

    Every setting that could reach a user's real deployment (database URL, signing secret,
    listen address) is pinned here, so ``DRIVETRAIN_*`` variables or a ``drivetrain.toml`` in
    the working directory cannot point the demo at real data.
    """
    return load_settings(
        deployment="embedded",
        # the demo is the embedded platform (in-process bus): a fleet profile, broker or
        # object-store lake named in the environment is an operator's, never the demo's
        profile="embedded",
        broker_url=None,
        backbone_url=None,
        lake_url=None,
        data_dir=data_dir,
        database_url=None,
        auth_secret=None,
        api_host="127.0.0.1",
        api_port=port,
        lake_roots={},
        lake_retention_days={},
        # Entitlements are renewed every few seconds, so a lapsed payment shows within an act.
        entitlement_lease_s=DEMO_ENTITLEMENT_LEASE_S,
    )


@dataclass(frozen=True)
class PlatformHandles:
    """What acts use to reach the running platform.

    Attributes:
        settings: the demo settings (data under ``settings.data_dir``).
        database: the migrated state database.
        transport: the in-process message bus.
        api_url: base URL of the HTTP API, e.g. ``http://127.0.0.1:41234``.
        admin_token: a bearer token of the bootstrap admin (never printed).
        admin_credentials: the bootstrap admin's client id and where its secret is stored.
        reconciler: the twins reconciler, publishing desired-state deltas on ``transport``.
        dispatcher: the commands dispatcher, delivering jobs' signed messages on ``transport``.
        campaigns: the campaign runner (start, finish, continuous targeting).
        commerce: the commerce runner (renewals, dunning, signed entitlements to the cars).
        ingest: the ingest worker consuming ``dt/v1/+/{telemetry,events,ack}`` from
            ``transport`` (``wait_idle()`` waits until everything received is stored).
        lake: the lake the ingest worker writes (under the demo's data directory).
        board: the acts' progress the API serves at ``/v1/demo`` (to the admin's tenant).
    """

    settings: Settings
    database: Database
    transport: InProcessTransport
    api_url: str
    admin_token: str = field(repr=False)
    admin_credentials: BootstrapCredentials
    reconciler: Reconciler
    ingest: IngestWorker
    dispatcher: Dispatcher
    campaigns: CampaignRunner
    commerce: CommerceRunner
    lake: Lake
    board: DemoBoard


class _QuietServer(uvicorn.Server):
    """A uvicorn server that runs on a worker thread (no signal handlers; those need main)."""

    def install_signal_handlers(self) -> None:  # uvicorn < 0.29 installs them unconditionally
        return


class EmbeddedPlatform:
    """Starts and stops the embedded platform; use as a context manager.

    Args:
        settings: embedded-deployment settings (see ``demo_settings``).
    """

    def __init__(self, settings: Settings) -> None:
        if settings.deployment != "embedded":
            raise ConfigurationError(
                f"the embedded platform needs deployment 'embedded', got {settings.deployment!r}"
            )
        self._settings = settings
        self._database: Database | None = None
        self._transport: InProcessTransport | None = None
        self._reconciler: Reconciler | None = None
        self._dispatcher: Dispatcher | None = None
        self._campaigns: CampaignRunner | None = None
        self._commerce: CommerceRunner | None = None
        self._lake: Lake | None = None
        self._ingest: IngestWorker | None = None
        self._server: _QuietServer | None = None
        self._thread: threading.Thread | None = None
        self._socket: socket.socket | None = None
        self._handles: PlatformHandles | None = None

    @property
    def handles(self) -> PlatformHandles:
        """The running platform's handles.

        Raises:
            RuntimeError: the platform is not started.
        """
        if self._handles is None:
            raise RuntimeError("the embedded platform is not started")
        return self._handles

    def start(self) -> PlatformHandles:
        """Start database, bus and API; return their handles.

        Raises:
            ConfigurationError: unusable settings, or the API did not come up in time.
            StorageError: the state database could not be created or migrated.
        """
        if self._handles is not None:
            return self._handles
        try:
            return self._start()
        except BaseException:
            self.stop()
            raise

    def _start(self) -> PlatformHandles:
        settings = self._settings
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        self._database = database = open_database(settings)
        database.upgrade()
        app = create_app(settings, database)
        bootstrap: BootstrapCredentials = app.state.drivetrain.bootstrap
        # The console shows the acts as they happen to the tenant that runs the demo.
        board = app.state.demo_board = DemoBoard(tenant=bootstrap.tenant)
        with database.session() as session:
            token = issue_access_token(
                session,
                client_id=bootstrap.client_id,
                client_secret=bootstrap.client_secret,
                requested_scopes=None,
                key=resolve_token_key(settings),
                ttl_s=settings.token_ttl_s,
            )
        self._transport = InProcessTransport()
        self._reconciler = Reconciler(database, self._transport, cloud_signing_key(settings))
        self._reconciler.start()
        self._lake = Lake.open(settings)
        # Each round also steps the stored OTA rollouts (answers in, health gate).
        self._dispatcher = Dispatcher(
            database, self._transport, cloud_signing_key(settings),
            after_round=[RolloutDriver(database, OtaLayout.under(settings.data_dir), self._lake,
                                       judge_every_s=DEMO_JUDGE_EVERY_S)])
        self._dispatcher.start()
        self._campaigns = CampaignRunner(database).start()
        self._commerce = CommerceRunner(
            database, cloud_signing_key(settings), payment_provider(settings),
            lease_s=settings.entitlement_lease_s, poll_interval_s=0.5).start()
        pipeline = IngestPipeline.from_settings(
            settings, database, self._lake, TwinsReportedState()
        )
        self._ingest = IngestWorker(self._transport, pipeline).start()

        self._socket = sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((settings.api_host, settings.api_port))
        host, port = sock.getsockname()[:2]
        config = uvicorn.Config(
            app, log_config=None, log_level="warning", access_log=False, lifespan="on"
        )
        self._server = server = _QuietServer(config)
        self._thread = threading.Thread(
            target=server.run, kwargs={"sockets": [sock]}, name="drivetrain-demo-api", daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + API_START_TIMEOUT_S
        while not server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise ConfigurationError(
                    f"the demo API did not start on http://{host}:{port} within "
                    f"{API_START_TIMEOUT_S:.0f} s"
                )
            time.sleep(0.01)
        self._handles = PlatformHandles(
            settings=settings,
            database=database,
            transport=self._transport,
            api_url=f"http://{host}:{port}",
            admin_token=token.access_token,
            admin_credentials=bootstrap,
            reconciler=self._reconciler,
            ingest=self._ingest,
            dispatcher=self._dispatcher,
            campaigns=self._campaigns,
            commerce=self._commerce,
            lake=self._lake,
            board=board,
        )
        return self._handles

    def stop(self) -> None:
        """Stop the API, the reconciler and the ingest worker, close the bus and the lake,
        release the database; idempotent,
        never raises for a part that was not started."""
        self._handles = None
        if self._server is not None and self._thread is not None:
            self._server.should_exit = True
            self._thread.join(API_STOP_TIMEOUT_S)
        self._server, self._thread = None, None
        if self._socket is not None:
            self._socket.close()
            self._socket = None
        if self._reconciler is not None:
            self._reconciler.stop()
            self._reconciler = None
        if self._commerce is not None:
            self._commerce.stop()
            self._commerce = None
        if self._campaigns is not None:
            self._campaigns.stop()
            self._campaigns = None
        if self._dispatcher is not None:
            self._dispatcher.stop()
            self._dispatcher = None
        if self._ingest is not None:
            self._ingest.stop()  # finishes the micro-batch in hand before the bus closes
            self._ingest = None
        if self._lake is not None:
            self._lake.close()
            self._lake = None
        if self._transport is not None:
            self._transport.close()
            self._transport = None
        if self._database is not None:
            self._database.dispose()
            self._database = None

    def __enter__(self) -> PlatformHandles:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
