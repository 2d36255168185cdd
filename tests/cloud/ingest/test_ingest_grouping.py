"""How `drivetrain worker ingest` groups messages: micro-batches up to --max-batch-messages
(2,000 by default), with a broker receive window that lets them fill."""

from __future__ import annotations

import uuid

import pytest
from typer.testing import CliRunner

from drivetrain.cli import app
from drivetrain.commands.worker import DEFAULT_BATCH_MESSAGES, MAX_BATCH_MESSAGES, receive_window
from drivetrain.core.transport import MqttTransport, open_transport


@pytest.mark.parametrize(
    ("batch", "window"), [(1, 1000), (500, 1000), (2000, 4000), (10_000, 20_000), (40_000, 65_535)]
)
def test_the_receive_window_holds_two_micro_batches(batch: int, window: int) -> None:
    assert receive_window(batch) == window


def test_the_default_micro_batch_fits_the_window_it_asks_for() -> None:
    assert DEFAULT_BATCH_MESSAGES == 2000
    assert receive_window(MAX_BATCH_MESSAGES) >= MAX_BATCH_MESSAGES


def test_the_worker_client_asks_the_broker_for_that_window(mqtt_url: str) -> None:
    transport = open_transport(
        mqtt_url, client_id=f"grouping-{uuid.uuid4().hex[:8]}", receive_maximum=receive_window(3000)
    )
    try:
        assert isinstance(transport, MqttTransport)
        assert transport.options.receive_maximum == 6000
    finally:
        transport.close()


def test_the_command_names_its_default_and_refuses_more_than_the_maximum() -> None:
    runner = CliRunner(env={"COLUMNS": "200", "NO_COLOR": "1"})
    shown = runner.invoke(app, ["worker", "ingest", "--help"])
    assert "2000" in shown.output.split("--max-batch-messages", 1)[1].split("--", 1)[0]
    refused = runner.invoke(app, ["worker", "ingest", "--max-batch-messages", "10001"])
    assert refused.exit_code != 0
    assert "10001" in refused.output or "10000" in refused.output
