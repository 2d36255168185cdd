"""Fixtures every test may use: the real data beside the project, settings in a temp dir, and a
fresh state database per test on both engines.

``database`` is parametrized over SQLite (a file in the test's temp dir) and the real
PostgreSQL server from ``$DRIVETRAIN_TEST_POSTGRES_URL`` (a uniquely named database per
pytest-xdist worker, and in it a fresh schema per test; all dropped afterwards). Without that
server the PostgreSQL cases fail, saying to run scripts/test.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from pathlib import Path

import pytest
from fleet_profile import (
    FLEET,
    FleetServices,
    deselect_embedded_only,
    fleet_services,
    gather_deselected,
    report_deselected,
)

from drivetrain.cloud.infra import Database
from drivetrain.cloud.infra.testing import (
    BACKENDS,
    Backend,
    PostgresSchemaPool,
    copy_sqlite_template,
    migrate_sqlite_template,
    postgres_test_database,
    temporary_postgres_schema,
)
from drivetrain.core.errors import ConfigurationError, StorageError, TransportError
from drivetrain.core.settings import Settings, load_settings
from drivetrain.core.transport.testing import PrivateBroker, shared_broker_url, unique_name

PROJECT_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = PROJECT_ROOT.parent / "shared" / "data"
TEST_DATA = Path(__file__).resolve().parent / "data"


#: Directory where tests leave figures for the terminal summary; created once by the main
#: process and inherited by pytest-xdist workers through the environment.
_FIGURES_ENV = "DRIVETRAIN_TEST_FIGURES_DIR"


def pytest_configure(config: pytest.Config) -> None:
    if not hasattr(config, "workerinput") and _FIGURES_ENV not in os.environ:
        os.environ[_FIGURES_ENV] = tempfile.mkdtemp(prefix="drivetrain-test-figures-")


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, config: pytest.Config) -> None:
    if hasattr(config, "workerinput"):
        return
    if FLEET:
        report_deselected(terminalreporter, config)
    folder = Path(os.environ.get(_FIGURES_ENV, ""))
    if not folder.is_dir():
        return
    lines = sorted(line for f in folder.glob("*.txt") for line in f.read_text().splitlines())
    if lines:
        terminalreporter.write_sep("-", "figures measured by the tests")
        for line in lines:
            terminalreporter.write_line(line)
    for f in folder.glob("*.txt"):
        f.unlink()
    folder.rmdir()


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: object, error: object) -> None:
    """pytest-xdist: a worker finished; in the fleet profile, keep what it deselected."""
    if FLEET:
        gather_deselected(node.config, getattr(node, "workeroutput", {}))  # type: ignore[attr-defined]


@pytest.fixture
def report_figure(request: pytest.FixtureRequest) -> Callable[[str], None]:
    """Show a line (a count checked, a figure measured) in the suite's closing summary, also
    when the tests run in parallel workers."""

    def report(line: str) -> None:
        folder = Path(os.environ[_FIGURES_ENV])
        with (folder / f"{os.getpid()}.txt").open("a") as f:
            f.write(f"{request.node.nodeid.split('::')[-1]}: {line}\n")

    return report


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """A test that needs ../shared/data (the ``shared_data`` fixture, directly or through
    another fixture) must carry the ``shared_data`` mark, so ``-m "not shared_data"`` and the
    reports tell the full-data tests apart; one without it fails at collection, by name."""
    unmarked = [
        item.nodeid for item in items
        if "shared_data" in getattr(item, "fixturenames", ())
        and item.get_closest_marker("shared_data") is None
    ]
    marked_only = [
        item.nodeid for item in items
        if item.get_closest_marker("shared_data") is not None
        and "shared_data" not in getattr(item, "fixturenames", ())
    ]
    problems = [f"{n}: uses ../shared/data but lacks @pytest.mark.shared_data" for n in unmarked]
    problems += [f"{n}: marked shared_data but does not use the shared_data fixture (which "
                 "skips or fails it when the data is absent)" for n in marked_only]
    if problems:
        raise pytest.UsageError("\n".join(problems))
    if FLEET:
        deselect_embedded_only(config, items)


def _in_ci() -> bool:
    return os.environ.get("CI", "").lower() in {"1", "true", "yes"}


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The real public data in ../shared/data.

    A newcomer's fresh clone has no ../shared: there the full-data tests are skipped with this
    reason. In CI (CI=true) the data is required and its absence fails the test.
    """
    if SHARED_DATA.is_dir():
        return SHARED_DATA
    reason = f"full-data test needs {SHARED_DATA} (the shared data beside the project); not present"
    if _in_ci():
        pytest.fail(f"{reason}, and CI=true requires it")
    pytest.skip(reason)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """Embedded-deployment settings with every file under a fresh temp dir."""
    return load_settings(data_dir=tmp_path / "drivetrain")


# --- the state database, on SQLite and PostgreSQL ---------------------------------------
@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> Backend:
    """The engine under test: "sqlite" or "postgresql"."""
    return request.param  # type: ignore[no-any-return]


def _entered_or_failed(manager: AbstractContextManager[str]) -> Iterator[str]:
    """The value of ``manager`` for the fixture's lifetime; a server that cannot be reached or
    set up fails the test with the server's own message (never a skip)."""
    try:
        value = manager.__enter__()
    except (ConfigurationError, StorageError) as e:
        message = str(e)
    else:
        try:
            yield value
        finally:
            manager.__exit__(None, None, None)
        return
    pytest.fail(message, pytrace=False)


@pytest.fixture(scope="session")
def postgres_worker_database() -> Iterator[str]:
    """A uniquely named database on the test server for this pytest-xdist worker."""
    yield from _entered_or_failed(postgres_test_database())


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated SQLite state database that tests wanting one get a copy of."""
    return migrate_sqlite_template(tmp_path_factory.mktemp("template") / "state.db")


@pytest.fixture
def database_url(backend: Backend, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[str]:
    """URL of a fresh state database on ``backend``.

    SQLite: a file in the test's temp dir — empty, or, when the test asks for the migrated
    ``database``, a copy of a migrated template (the same file the migrations make).
    PostgreSQL: a new, empty schema (search_path) in this worker's database, dropped after
    the test — or, for the migrated ``database``, a schema of ``postgres_schema_pool``.
    """
    if backend == "sqlite":
        path = tmp_path / "state.db"
        if "database" in request.fixturenames:
            yield copy_sqlite_template(request.getfixturevalue("sqlite_template"), path)
        else:
            yield f"sqlite:///{path}"
        return
    if "database" in request.fixturenames:
        pool: PostgresSchemaPool = request.getfixturevalue("postgres_schema_pool")
        try:
            url = pool.acquire()
        except (ConfigurationError, StorageError) as e:
            pytest.fail(str(e), pytrace=False)
        yield url
        pool.release(url)
        return
    worker_database = request.getfixturevalue("postgres_worker_database")
    yield from _entered_or_failed(temporary_postgres_schema(worker_database))


@pytest.fixture(scope="session")
def postgres_schema_pool(postgres_worker_database: str) -> Iterator[PostgresSchemaPool]:
    """Migrated schemas of this worker's database that tests asking for the migrated
    ``database`` take in turn: emptied after each test (or dropped when the test changed the
    schema), so each test still starts from an empty, migrated database."""
    pool = PostgresSchemaPool(postgres_worker_database)
    yield pool
    pool.close()


@pytest.fixture
def state_url(request: pytest.FixtureRequest) -> Iterator[Callable[[Path], str]]:
    """``state_url(root)``: the URL of an installation's state database under ``root``, for
    tests that set up one or more installations themselves. Embedded: the SQLite file
    ``root/state.db``; fleet profile: a fresh PostgreSQL schema per root (dropped after)."""
    made: dict[Path, str] = {}
    schemas: list[Iterator[str]] = []

    def url(root: Path) -> str:
        if not FLEET:
            return f"sqlite:///{root / 'state.db'}"
        if root not in made:
            schema = _entered_or_failed(temporary_postgres_schema(
                request.getfixturevalue("postgres_worker_database")))
            made[root] = next(schema)
            schemas.append(schema)
        return made[root]

    yield url
    for schema in schemas:
        schema.close()


@pytest.fixture
def empty_database(database_url: str) -> Iterator[Database]:
    """A :class:`Database` with no migrations applied."""
    database = Database(database_url)
    yield database
    database.dispose()


@pytest.fixture
def database(empty_database: Database) -> Database:
    """A migrated :class:`Database` on each engine (on SQLite a copy of the migrated template,
    where upgrade finds nothing to do)."""
    empty_database.upgrade()
    return empty_database


# --- the fleet profile: its configuration in the environment of every test -----------------
if FLEET:

    @pytest.fixture(scope="session")
    def fleet_worker_services(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FleetServices]:
        """This pytest worker's Mosquitto and JetStream node (see tests/fleet_profile.py)."""
        yield from fleet_services(tmp_path_factory.mktemp("fleet-services"))

    @pytest.fixture(autouse=True)
    def _fleet_profile_environment(
        request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch,
        fleet_worker_services: FleetServices,
    ) -> None:
        """Configure the fleet profile where ``load_settings`` reads it: PostgreSQL state (the
        test's own schema when it has a database or a temp dir, else this worker's database),
        this worker's Mosquitto as the vehicle link and its JetStream node as the backbone."""
        names = request.fixturenames
        if "database_url" in names:
            url = request.getfixturevalue("database_url")
        elif "tmp_path" in names:
            worker_database = request.getfixturevalue("postgres_worker_database")
            schema = _entered_or_failed(temporary_postgres_schema(worker_database))
            url = next(schema)
            request.addfinalizer(schema.close)  # drops the schema
        else:
            url = request.getfixturevalue("postgres_worker_database")
        try:
            broker = fleet_worker_services.broker_url()
            backbone = fleet_worker_services.backbone_url()
        except (ConfigurationError, TransportError) as e:
            pytest.fail(f"the fleet profile's services: {e}", pytrace=False)
        monkeypatch.setenv("DRIVETRAIN_PROFILE", "fleet")
        monkeypatch.setenv("DRIVETRAIN_DATABASE_URL", url)
        monkeypatch.setenv("DRIVETRAIN_BROKER_URL", broker)
        monkeypatch.setenv("DRIVETRAIN_BACKBONE_URL", backbone)
        namespace = unique_name("ns")
        monkeypatch.setenv("DRIVETRAIN_BACKBONE_NAMESPACE", namespace)
        request.addfinalizer(lambda: fleet_worker_services.drop_namespace(namespace))


# --- the JetStream backbone: the shared server -----------------------------------------------
@pytest.fixture(scope="module")
def nats_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """URL of the shared NATS JetStream (``$DRIVETRAIN_TEST_NATS_URL``), else a node of this
    module started here. Tests share that server with other runs: give each a backbone
    namespace of its own (``unique_name``) and delete its streams afterwards."""
    url = os.environ.get("DRIVETRAIN_TEST_NATS_URL")
    if url:
        yield url
        return
    from drivetrain.core.transport.jetstream_local import LocalJetStream

    with LocalJetStream(tmp_path_factory.mktemp("nats"), nodes=1) as node:
        yield node.url


# --- the MQTT broker: the shared one, and private ones to stop and kill ---------------------
@pytest.fixture(scope="session")
def mqtt_url() -> str:
    """URL of the shared test broker (``$DRIVETRAIN_TEST_MQTT_URL``, started by scripts/test).

    Unset or unreachable: the test fails saying so (never a skip). Tests share this broker
    with other runs: use ``unique_name`` topic prefixes and client ids.
    """
    try:
        return shared_broker_url()
    except (ConfigurationError, TransportError) as e:
        pytest.fail(str(e), pytrace=False)


@pytest.fixture
def private_broker(tmp_path: Path) -> Iterator[PrivateBroker]:
    """A running Mosquitto of this test alone (``.url``, ``.stop()``, ``.start()``,
    ``.restart()``, ``.kill()``, ``.pause()``/``.resume()``); killed afterwards."""
    try:
        broker = PrivateBroker(tmp_path / "broker")
        broker.start()
    except (ConfigurationError, TransportError) as e:
        pytest.fail(str(e), pytrace=False)
    try:
        yield broker
    finally:
        broker.kill()


# --- the command line, in-process --------------------------------------------------------------
@pytest.fixture
def cli(tmp_path: Path, database_url: str, monkeypatch: pytest.MonkeyPatch) -> Callable[..., str]:
    """Run ``drivetrain`` in-process against a fresh database on each engine, in ``tmp_path``
    with its data directory there and no broker configured (in the fleet profile: its worker's
    broker and backbone): ``cli(*args, code=0)`` returns the
    output and fails the test when the exit code is not ``code``."""
    from typer.testing import CliRunner

    from drivetrain.cli import app

    monkeypatch.setenv("DRIVETRAIN_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("DRIVETRAIN_DATABASE_URL", database_url)
    if not FLEET:  # the fleet profile's link stays configured (see _fleet_profile_environment)
        monkeypatch.delenv("DRIVETRAIN_BROKER_URL", raising=False)
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()

    def run(*args: str, code: int = 0) -> str:
        result = runner.invoke(app, list(args))
        assert result.exit_code == code, result.output
        return result.output

    return run


#: The bucket and credentials of :func:`s3_endpoint`.
MOTO_BUCKET = "lake"
MOTO_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "moto-test", "AWS_SECRET_ACCESS_KEY": "moto-test"}


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """A real S3-compatible server for the lake on object storage: moto's server mode
    (``ThreadedMotoServer``) on loopback with the bucket ``lake``, its credentials in the
    environment (where the object-store library reads them, as in production)."""
    import logging

    import boto3
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one line per request otherwise
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    saved = {k: os.environ.get(k) for k in MOTO_CREDENTIALS}
    os.environ.update(MOTO_CREDENTIALS)
    try:
        host, port = server.get_host_and_port()
        endpoint = f"http://{host}:{port}"
        boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                     aws_access_key_id=MOTO_CREDENTIALS["AWS_ACCESS_KEY_ID"],
                     aws_secret_access_key=MOTO_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
                     ).create_bucket(Bucket=MOTO_BUCKET)
        yield endpoint
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        server.stop()
