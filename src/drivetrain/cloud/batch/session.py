"""The Spark session the batch jobs run in, built from the settings.

``spark_master`` picks where: ``local[N]`` runs Spark in a JVM this process starts (N worker
threads; what the tests and a single host use), a cluster URL (``spark://host:7077``,
``yarn``, ``k8s://https://host:6443``) runs the same jobs on the operator's cluster. pyspark
(the ``spark`` extra) and a Java 17+ runtime are needed on the driver; both are checked first
so a missing one is reported as such, not as a Py4J stack trace.
"""

from __future__ import annotations

import importlib
import os
import re
import shutil
import subprocess
import sys
import warnings
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Final

from drivetrain.core.errors import ConfigurationError

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

#: Oldest Java the supported pyspark (4.x) runs on.
MIN_JAVA: Final = 17
#: Spark settings every batch session gets. The lake stores ``ts`` as Parquet
#: TIMESTAMP(NANOS), which Spark has no type for: it reads it as the raw int64 of nanoseconds
#: since the epoch (exact, and the unit DuckDB's queries bind their time range in). Partition
#: values stay strings (``date`` is cast explicitly), and the session is in UTC like DuckDB's.
SESSION_CONF: Final = {
    "spark.sql.legacy.parquet.nanosAsLong": "true",
    "spark.sql.sources.partitionColumnTypeInference.enabled": "false",
    "spark.sql.session.timeZone": "UTC",
    # Adaptive execution coalesces small shuffles; a fleet-size job raises this.
    "spark.sql.shuffle.partitions": "8",
    "spark.ui.enabled": "false",
    "spark.ui.showConsoleProgress": "false",
    "spark.sql.execution.arrow.pyspark.enabled": "true",
}
_DRIVER_OPTIONS: Final = "spark.driver.extraJavaOptions"
#: The driver's logging: errors only (see the file).
_LOG_CONFIG: Final = Path(__file__).with_name("log4j2.properties")
_MASTER: Final = re.compile(r"local(\[(\d+|\*)\])?|(spark|mesos|k8s)://\S+|yarn")
_JAVA_VERSION: Final = re.compile(r'version "(\d+)(?:\.(\d+))?')


class SparkUnavailableError(ConfigurationError):
    """Spark cannot run here: pyspark is not installed, Java is missing or too old, or the
    master is not a Spark master URL. The message says which and how to fix it."""


def check_master(master: str) -> str:
    """``master`` if it is a Spark master URL, else :class:`SparkUnavailableError`."""
    if not isinstance(master, str) or not _MASTER.fullmatch(master.strip()):
        raise SparkUnavailableError(
            f"spark_master {master!r}; expected local, local[N], local[*], spark://host:port, "
            "k8s://https://host:port, mesos://host:port or yarn"
        )
    return master.strip()


def java_major() -> int:
    """Major version of the Java runtime pyspark will start (``$JAVA_HOME/bin/java``, else
    ``java`` on the PATH).

    Raises:
        SparkUnavailableError: no Java, or its version cannot be read.
    """
    home = os.environ.get("JAVA_HOME")
    java = str(Path(home) / "bin" / "java") if home else shutil.which("java")
    if java is None or not Path(java).is_file():
        where = f"JAVA_HOME={home} has no bin/java" if home else "no 'java' on the PATH"
        raise SparkUnavailableError(
            f"Spark needs a Java {MIN_JAVA}+ runtime and found none ({where}); install one "
            "(e.g. apt-get install openjdk-17-jre-headless) or set JAVA_HOME"
        )
    try:
        shown = subprocess.run([java, "-version"], capture_output=True, text=True, timeout=30,
                               check=False).stderr
    except (OSError, subprocess.TimeoutExpired) as e:
        raise SparkUnavailableError(f"cannot run {java} -version: {e}") from e
    match = _JAVA_VERSION.search(shown)
    if match is None:
        raise SparkUnavailableError(f"cannot read the Java version from {java}: {shown[:200]!r}")
    major = int(match.group(1))
    # Java 8 and older call themselves 1.x.
    return int(match.group(2) or 0) if major == 1 else major


def check_runtime() -> None:
    """Fail early, naming the cause, when pyspark or a recent enough Java is missing.

    Raises:
        SparkUnavailableError: what is missing and how to install it.
    """
    try:
        importlib.import_module("pyspark")
    except ModuleNotFoundError as e:
        raise SparkUnavailableError(
            "Spark batch jobs need pyspark, which is part of the 'spark' extra: "
            "pip install 'drivetrain[spark]'"
        ) from e
    major = java_major()
    if major < MIN_JAVA:
        raise SparkUnavailableError(
            f"Spark needs Java {MIN_JAVA} or newer; this Java is {major} (set JAVA_HOME to a "
            "newer one)"
        )


def spark_session(
    master: str, *, app_name: str = "drivetrain-batch", conf: Mapping[str, str] | None = None
) -> SparkSession:
    """A Spark session on ``master`` configured for the lake (see :data:`SESSION_CONF`),
    plus ``conf`` (any Spark setting, e.g. ``spark.executor.memory``).

    Spark keeps one session per process: a second call returns the running one (with this
    module's settings applied again), so stop it (``session.stop()``) to change the master.

    Raises:
        SparkUnavailableError: a bad master, no pyspark, or no Java 17+.
    """
    master = check_master(master)
    check_runtime()
    from pyspark.sql import SparkSession

    settings = {**SESSION_CONF, **(conf or {})}
    if master.startswith("local"):
        # Python workers (the maintenance jobs' writers) run this interpreter, with its
        # packages, not whatever python3 is first on the PATH (pyspark reads only the
        # environment); a cluster names its executors' Python itself
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    options = settings.get(_DRIVER_OPTIONS, "")
    if "log4j2.configurationFile" not in options:
        settings[_DRIVER_OPTIONS] = f"-Dlog4j2.configurationFile={_LOG_CONFIG} {options}".strip()
    builder = SparkSession.builder.master(master).appName(app_name)
    for key, value in settings.items():
        builder = builder.config(key, value)
    try:
        with quiet_pandas_check():
            session = builder.getOrCreate()
    except Exception as e:  # pyspark raises its own and Py4J errors at start-up
        raise SparkUnavailableError(f"Spark did not start on {master}: {e}") from e
    session.sparkContext.setLogLevel("ERROR")
    return session


@contextmanager
def quiet_pandas_check() -> Iterator[None]:
    """pyspark's Arrow paths check the pandas version and warn (FutureWarning) about pandas
    3, which they do not use for Arrow results; the warning is not ours to act on."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="PySpark does not yet fully support pandas",
                                category=FutureWarning)
        yield
