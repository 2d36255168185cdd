"""The edge agent reports its ECU inventory: on start, again when it changes, through the
store-and-forward buffer (so it survives a link outage and a restart)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from edge_testkit import T0, CloudReceiver, make_identity

from drivetrain.core.errors import TransportError, WireFormatError
from drivetrain.core.transport import InProcessTransport, PublishTicket
from drivetrain.core.vss import builtin_catalog
from drivetrain.core.wire import (
    INVENTORY_EVENT,
    EcuInfo,
    MessageKind,
    inventory_from_event,
)
from drivetrain.edge import EVENT_PRIORITY, EdgeAgent, SqliteBuffer

S = 1_000_000_000
INVENTORY = (
    EcuInfo("VCU", "VCU-CH50-HW2", "5.2.1"),
    EcuInfo("BMS", "BMS-CH50-HW3", "2.3.1"),
    EcuInfo("TPMS", None, "1.0.4"),
)


class SwitchableLink(InProcessTransport):
    """An in-process bus whose uplink can be taken down (publishing raises while down)."""

    def __init__(self) -> None:
        super().__init__()
        self.down = False

    def publish_async(self, topic: str, payload: bytes, **kwargs: Any) -> PublishTicket:
        if self.down:
            raise TransportError("cannot publish: not connected to the broker")
        return super().publish_async(topic, payload, **kwargs)


class Car:
    def __init__(self, tmp_path: Path) -> None:
        self.bus = SwitchableLink()
        self.identity = make_identity()
        self.vin = self.identity.vin
        self.receiver = CloudReceiver({self.vin: self.identity.signing_key.verify_key})
        self.bus.subscribe("dt/v1/+/#", self.receiver.handle)
        self.path = tmp_path / "buffer.db"
        self.now = T0

    def agent(self, inventory: tuple[EcuInfo, ...] | None = INVENTORY) -> EdgeAgent:
        return EdgeAgent(
            self.identity,
            self.bus,
            SqliteBuffer(self.path),
            catalog=builtin_catalog(),
            clock_ns=lambda: self.now,
            inventory=inventory,
        )

    def tick(self, agent: EdgeAgent, seconds: float = 0.5) -> None:
        self.now += int(seconds * S)
        agent.tick(self.now)
        self.bus.drain()

    def inventories(self) -> list[tuple[int, tuple[EcuInfo, ...]]]:
        return [
            (e.ts_ns, inventory_from_event(e))
            for e in self.receiver.events(self.vin)
            if e.type == INVENTORY_EVENT
        ]


@pytest.fixture
def car(tmp_path: Path) -> Car:
    return Car(tmp_path)


def test_agent_reports_its_inventory_once_on_start(car: Car) -> None:
    agent = car.agent()
    agent.start()
    agent.start()  # idempotent: no second report
    car.tick(agent)
    car.tick(agent)
    reports = car.inventories()
    assert reports == [(T0, tuple(sorted(INVENTORY, key=lambda e: e.name)))]
    event = next(e for e in car.receiver.events(car.vin) if e.type == INVENTORY_EVENT)
    assert event.severity == "info"
    assert event.data["ecus"][0] == {
        "name": "BMS", "hardware_id": "BMS-CH50-HW3", "software_version": "2.3.1"
    }  # fmt: skip
    assert agent.inventory_reports == 1
    agent.buffer.close()


def test_a_changed_inventory_is_reported_at_once_and_an_unchanged_one_is_not(car: Car) -> None:
    agent = car.agent()
    agent.start()
    car.tick(agent)
    updated = (EcuInfo("BMS", "BMS-CH50-HW3", "2.4.2"), *INVENTORY[::2])
    assert agent.set_inventory(updated) is True
    assert agent.set_inventory(tuple(reversed(updated))) is False  # same ECUs, other order
    car.tick(agent)
    reports = car.inventories()
    assert len(reports) == 2
    bms = {e.name: e for e in reports[-1][1]}["BMS"]
    assert bms.software_version == "2.4.2"
    assert agent.inventory == tuple(sorted(updated, key=lambda e: e.name))
    agent.buffer.close()


def test_an_agent_without_inventory_reports_none(car: Car) -> None:
    agent = car.agent(inventory=None)
    agent.start()
    car.tick(agent)
    assert car.inventories() == [] and agent.inventory == ()
    agent.buffer.close()


def test_inventory_sealed_during_an_outage_is_sent_after_a_restart(car: Car) -> None:
    car.bus.down = True
    agent = car.agent()
    agent.start()
    car.tick(agent)
    stored = agent.buffer.stats()
    assert stored.messages == 1 and car.inventories() == []
    agent.stop()
    agent.buffer.close()  # power off with the link still down

    car.bus.down = False
    restarted = car.agent(inventory=None)  # the stored message alone must reach the cloud
    restarted.start()
    car.tick(restarted)
    assert [ecus for _, ecus in car.inventories()] == [
        tuple(sorted(INVENTORY, key=lambda e: e.name))
    ]
    restarted.buffer.close()


def test_inventory_rides_at_the_events_priority(car: Car) -> None:
    car.bus.down = True
    agent = car.agent()
    agent.start()
    pending = agent.buffer.pending()
    assert [(m.kind, m.priority) for m in pending] == [(MessageKind.EVENTS, EVENT_PRIORITY)]
    agent.buffer.close()


def test_an_invalid_inventory_is_refused_and_changes_nothing(car: Car) -> None:
    with pytest.raises(WireFormatError, match="'BMS' is listed twice"):
        car.agent(inventory=(*INVENTORY, EcuInfo("BMS", None, "9.9.9")))
    agent = car.agent()
    agent.start()
    with pytest.raises(WireFormatError, match="at most 200"):
        agent.set_inventory([EcuInfo(f"ECU{i}", None, "1.0") for i in range(201)])
    car.tick(agent)
    assert agent.inventory == tuple(sorted(INVENTORY, key=lambda e: e.name))
    assert len(car.inventories()) == 1
    agent.buffer.close()
