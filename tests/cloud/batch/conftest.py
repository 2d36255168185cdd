"""The Spark session of the batch tests: one local session per module (a JVM takes seconds
to start). Without pyspark or Java 17+ the tests fail, naming what is missing — they never
skip."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from drivetrain.cloud.batch import SparkUnavailableError, spark_session

#: A JVM tuned for short runs of small data: no optimising JIT, one GC thread, few
#: partitions, no generated code to compile per query.
TEST_CONF = {"spark.driver.extraJavaOptions": "-XX:TieredStopAtLevel=1 -XX:+UseSerialGC",
             "spark.sql.shuffle.partitions": "2", "spark.default.parallelism": "2",
             "spark.sql.codegen.wholeStage": "false"}


@pytest.fixture(scope="module")
def spark() -> Iterator[Any]:
    try:
        session = spark_session("local[2]", app_name="drivetrain-tests", conf=TEST_CONF)
    except SparkUnavailableError as e:
        pytest.fail(f"the Spark tests need pyspark and Java 17+: {e}")
    yield session
    session.stop()
