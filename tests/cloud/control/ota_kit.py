"""Cars with OTA agents for the rollout tests: the twin's inventory and the registered
manifest keys on the platform, an Uptane primary with one A/B ECU provisioned with both
repositories' roots, and a real edge agent that acts on ``ota.update`` notices."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from rig import Rig
from securesystemslib.signer import CryptoSigner

from drivetrain.cloud.ota import OtaLayout
from drivetrain.cloud.ota.manifests import register_vehicle_keys
from drivetrain.cloud.twins import record_ecu_inventory
from drivetrain.edge import AbEcu, OtaUpdater, RepositoryUrls, UptanePrimary, VehicleConditions
from drivetrain.edge.agent import EdgeAgent
from drivetrain.edge.buffer import MemoryBuffer
from drivetrain.edge.ota.notice import ManifestSigning


def ota_car(rig: Rig, layout: OtaLayout, server_url: str, vin: str, folder: Path, *,
            ecu: AbEcu, running: str, conditions: Callable[[], VehicleConditions],
            unregistered_ecu_key: bool = False, **agent: Any) -> EdgeAgent:
    """Replace ``vin``'s agent by one whose primary (serial TCU) updates ``ecu``; the twin lists
    ``ecu`` running version ``running``. With ``unregistered_ecu_key`` the ECU signs its
    reports with a key the platform never registered. ``agent``: more EdgeAgent arguments."""
    primary_key, ecu_key = CryptoSigner.generate_ed25519(), CryptoSigner.generate_ed25519()
    with rig.database.session() as session:
        record_ecu_inventory(session, vin, {ecu.serial: (ecu.hardware_id, running)})
        register_vehicle_keys(session, tenant="acme", vin=vin, primary_serial="TCU",
                              primary_key=primary_key.public_key,
                              ecu_keys={ecu.serial: ecu_key.public_key})
    if unregistered_ecu_key:
        ecu_key = CryptoSigner.generate_ed25519()
    primary = UptanePrimary(vin, folder / "ota", RepositoryUrls.under(server_url, vin), [ecu])
    layout.director().enrol(vin)
    primary.provision(layout.director().root_bytes(), layout.images().repo.root_bytes(1))
    old = rig.agents[vin]
    old.stop()
    rig.agents[vin] = EdgeAgent(
        old.identity, rig.bus, MemoryBuffer(), actuator=rig.actuators[vin],
        ota=OtaUpdater(primary, conditions,
                       signing=ManifestSigning("TCU", primary_key, {ecu.serial: ecu_key})),
        **agent)
    rig.agents[vin].start()
    return rig.agents[vin]

