"""Supplier delegations in the Image repository: the top-level targets role delegates to a
supplier's role (its own keys, threshold and paths); the vehicle's primary (ngclient follows
the delegation) installs an image the supplier signed, python-tuf's reference client
downloads one over HTTP, and each attack on the delegation is refused."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from pathlib import Path

import pytest
from ota_world import ECUS, VIN, OtaWorld, ota_world
from securesystemslib.signer import CryptoSigner, Signer
from tuf.api.metadata import Metadata, Snapshot, TargetFile, Targets
from tuf.ngclient import Updater

from drivetrain.cloud.ota.layout import OtaLayout
from drivetrain.cloud.ota.serve import BackgroundServer
from drivetrain.core.errors import BadInputError, NotFoundError
from drivetrain.edge import (
    DelegationHardwareError,
    DirectorImageMismatchError,
    TufUpdateError,
    VehicleConditions,
)
from drivetrain.sim.firmware import FirmwareBehaviour, build_firmware

PARKED = VehicleConditions(parked=True, soc_pct=80)
SUPPLIER_IMAGE = "acme/bms-v2/bms-2.6.0.bin"


@pytest.fixture
def world(tmp_path: Path):  # type: ignore[no-untyped-def]
    with ota_world(tmp_path) as w:
        yield w


def _supplier(world: OtaWorld, threshold: int = 1, count: int = 1) -> None:
    world.layout.image_keys.generate_supplier("acme", threshold, count)
    world.layout.images().add_supplier("acme", hardware_ids=["bms-v2"])


def _firmware(version: str) -> bytes:
    return build_firmware(FirmwareBehaviour("bms", version, True), 8 * 1024)


def _publish_supplier_image(world: OtaWorld) -> str:
    world.layout.images().add_image(SUPPLIER_IMAGE, _firmware("2.6.0"), hardware_id="bms-v2",
                                    release_counter=6, version="2.6.0", supplier="acme")
    return SUPPLIER_IMAGE


def _forge_supplier_role(world: OtaWorld, signers: list[Signer], name: str,
                         data: bytes, hardware_id: str = "bms-v2") -> TargetFile:
    """The supplier role's next version naming ``name`` (stored), signed by ``signers`` only,
    listed by a snapshot and timestamp the repository signs as usual (its online keys are not
    the supplier's, so they cannot make a bad supplier signature good)."""
    repo = world.layout.images().repo
    target = repo.store_image(name, data, {"hardware_id": hardware_id, "release_counter": 9,
                                           "version": "6.6.6", "kind": "firmware"})
    current = repo.delegated("acme").signed
    md = Metadata(Targets(version=current.version + 1, expires=current.expires,
                          targets={**current.targets, name: target}))
    for signer in signers:
        md.sign(signer, append=True)
    repo._commit(repo._state(), {"acme": md}, datetime.now(UTC).replace(microsecond=0))
    return target


def _order(world: OtaWorld, target: TargetFile, ecu: str = "BMS-001") -> None:
    """A compromised Director orders ``target`` for ``ecu`` (it names what the attacker
    wants, with the right length and hashes)."""
    vehicle = world.layout.director().vehicle(VIN)
    ids = {ecu: {"hardware_id": ECUS[ecu]}}
    entry = TargetFile(target.length, dict(target.hashes), target.path,
                       {"custom": {"ecu_identifiers": ids, "release_counter": 9}})
    vehicle.publish({target.path: entry}, replace=True)


def _refused(world: OtaWorld, signers: list[Signer]) -> None:
    """A supplier role naming a backdoor, signed by ``signers`` and ordered by the Director,
    is refused by the vehicle's TUF client, and nothing is installed."""
    target = _forge_supplier_role(world, signers, "acme/bms-v2/backdoor.bin",
                                  _firmware("6.6.6"))
    _order(world, target)
    with pytest.raises(TufUpdateError, match="UnsignedMetadataError|signature"):
        world.primary.update(PARKED)
    assert world.ecu("BMS-001").running() is None


def test_supplier_role_is_delegated_signed_by_its_key_and_listed_by_the_snapshot(
    world: OtaWorld,
) -> None:
    _supplier(world)
    image = _publish_supplier_image(world)
    repo = world.layout.images().repo
    [role] = repo.delegations()
    [key] = world.layout.image_keys.supplier("acme").keys
    assert (role.name, role.keyids, role.threshold, role.paths) == (
        "acme", [key.keyid], 1, ["acme/bms-v2/*"])
    top = repo.targets()
    delegated = repo.delegated("acme")
    top.signed.verify_delegate("acme", delegated.signed_bytes, delegated.signatures)
    assert image in repo.delegated("acme").signed.targets
    assert image not in top.signed.targets
    snapshot: Snapshot = repo.snapshot().signed
    assert snapshot.meta["acme.json"].version == repo.delegated("acme").signed.version
    info = world.layout.images().info(image)
    assert (info.supplier, info.hardware_id, info.release_counter) == ("acme", "bms-v2", 6)
    assert [i.supplier for i in world.layout.images().images()] == ["acme"]


def test_vehicle_installs_an_image_signed_by_a_supplier(world: OtaWorld) -> None:
    _supplier(world)
    image = _publish_supplier_image(world)
    world.assign(("BMS-001", image))  # the Director resolves the delegated target
    [outcome] = world.primary.update(PARKED)
    assert outcome.result == "installed", outcome
    running = world.ecu("BMS-001").running()
    assert running is not None and running.target == image


def test_the_platform_refuses_to_sign_outside_a_suppliers_delegation(world: OtaWorld) -> None:
    _supplier(world)
    images = world.layout.images()
    before = images.repo.timestamp().signed.version
    with pytest.raises(BadInputError, match="outside supplier acme's delegated paths"):
        images.add_image("oem/bms-v2/bms.bin", b"fw", hardware_id="bms-v2",
                         release_counter=1, version="1", supplier="acme")
    with pytest.raises(BadInputError, match="hardware_id 'adas-v1' is not one supplier acme"):
        images.add_image("acme/bms-v2/adas.bin", b"fw", hardware_id="adas-v1",
                         release_counter=1, version="1", supplier="acme")
    with pytest.raises(NotFoundError, match="no role 'globex'"):
        images.add_image("globex/x.bin", b"fw", hardware_id="bms-v2", release_counter=1,
                         version="1", supplier="globex")
    assert images.repo.timestamp().signed.version == before  # nothing published


def test_supplier_signing_a_target_outside_its_delegated_paths_is_rejected(
    world: OtaWorld,
) -> None:
    _supplier(world)
    _publish_supplier_image(world)
    signers = world.layout.image_keys.signers("acme")
    # the supplier's own key signs an image for the OEM's path, and a Director orders it
    target = _forge_supplier_role(world, signers, "oem/bms-v2/backdoor.bin", _firmware("6.6.6"))
    _order(world, target)
    with pytest.raises(DirectorImageMismatchError, match="not signed by the Image repository"):
        world.primary.update(PARKED)
    assert world.ecu("BMS-001").running() is None  # nothing installed


def test_supplier_aiming_an_image_at_hardware_outside_its_delegation_is_rejected(
    world: OtaWorld,
) -> None:
    _supplier(world)  # delegated for bms-v2 only
    _publish_supplier_image(world)
    # the supplier's own key signs, inside its paths, an image for the ADAS ECU's hardware,
    # and a Director orders it for the ADAS ECU: TUF and the Uptane name/hash/hardware checks
    # all pass, the delegation's hardware ids do not
    target = _forge_supplier_role(world, world.layout.image_keys.signers("acme"),
                                  "acme/bms-v2/adas-backdoor.bin", _firmware("6.6.6"),
                                  hardware_id="adas-v1")
    _order(world, target, ecu="ADAS-001")
    with pytest.raises(DelegationHardwareError, match="delegated for hardware \\['bms-v2'\\]"):
        world.primary.update(PARKED)
    assert world.ecu("ADAS-001").running() is None


def test_delegated_role_signed_with_an_untrusted_key_is_rejected(world: OtaWorld) -> None:
    _supplier(world)
    _publish_supplier_image(world)
    _refused(world, [CryptoSigner.generate_ed25519()])  # a key the delegation does not name


def test_delegated_role_signed_with_a_revoked_supplier_key_is_rejected(world: OtaWorld) -> None:
    _supplier(world)
    image = _publish_supplier_image(world)
    world.assign(("BMS-001", image))
    world.primary.check()
    revoked = world.layout.image_keys.signers("acme")  # the compromised key
    info = world.layout.images().rotate_supplier("acme")
    assert info.keyids != tuple(s.public_key.keyid for s in revoked)
    assert world.layout.images().info(image).supplier == "acme"  # re-signed with the new key
    world.primary.check()  # the vehicle follows the new delegation
    _refused(world, revoked)


def test_delegated_role_signed_below_its_threshold_is_rejected(world: OtaWorld) -> None:
    _supplier(world, threshold=2, count=2)
    image = _publish_supplier_image(world)  # signed by both keys
    world.assign(("BMS-001", image))
    world.primary.check()
    one_of_two = world.layout.image_keys.signers("acme")[:1]  # one supplier key stolen
    _refused(world, one_of_two)


def test_reference_ngclient_downloads_a_delegated_image_over_http(tmp_path: Path) -> None:
    layout = OtaLayout.under(tmp_path / "cloud")
    layout.init({"root": (2, 3)})
    layout.image_keys.generate_supplier("acme")
    layout.images().add_supplier("acme")
    image = b"\x7fELF supplier firmware " * 2048
    layout.images().add_image("acme/bms-2.6.0.bin", image, hardware_id="bms-v2",
                              release_counter=6, version="2.6.0", supplier="acme")
    metadata, downloads = tmp_path / "client" / "metadata", tmp_path / "client" / "downloads"
    metadata.mkdir(parents=True)
    downloads.mkdir()
    with BackgroundServer(layout) as server:
        updater = Updater(str(metadata), f"{server.url}/image/metadata", str(downloads),
                          f"{server.url}/image/targets",
                          bootstrap=layout.images().repo.root_bytes(1))
        updater.refresh()
        info = updater.get_targetinfo("acme/bms-2.6.0.bin")
        assert info is not None
        path = updater.download_target(info)
    assert Path(path).read_bytes() == image
    assert info.hashes["sha256"] == hashlib.sha256(image).hexdigest()
    assert (metadata / "acme.json").is_file()  # the client fetched and kept the delegated role
    assert Metadata[Targets].from_file(str(metadata / "acme.json")).signed.targets.keys() == {
        "acme/bms-2.6.0.bin"}
