"""Fixtures of the MQTT transport tests: clients of the shared or a private broker, topics."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from mqtt_helpers import Clients

from drivetrain.core.transport.testing import PrivateBroker, unique_name


@pytest.fixture
def prefix() -> str:
    """A topic prefix no other test (or concurrent run) publishes under."""
    return f"test/{unique_name('t')}"


@pytest.fixture
def shared(mqtt_url: str) -> Iterator[Clients]:
    """Clients of the shared test broker, closed after the test."""
    made = Clients(mqtt_url)
    yield made
    made.close_all()


@pytest.fixture
def private(private_broker: PrivateBroker) -> Iterator[Clients]:
    """Clients of this test's private broker, closed after the test."""
    made = Clients(private_broker.url)
    yield made
    made.close_all()
