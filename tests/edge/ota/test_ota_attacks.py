"""Each Uptane/TUF attack on the vehicle's update client, refused (and nothing installed).

The world: the Image repository and the vehicle's Director repository served over HTTP, and
the vehicle's primary with two A/B ECUs (tests/edge/ota/ota_world.py).
"""

from __future__ import annotations

import hashlib
import json
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from ota_world import VIN, OtaWorld, ota_world
from tuf.api.metadata import Metadata, Root, Targets, Timestamp
from tuf.api.serialization.json import JSONSerializer

from drivetrain.cloud.ota.repository import sign_with_threshold
from drivetrain.edge import (
    DirectorImageMismatchError,
    EcuMismatchError,
    ImageHashError,
    ImageRollbackError,
    PreconditionError,
    TufTransportError,
    TufUpdateError,
    VehicleConditions,
    tuf_client,
)

PARKED = VehicleConditions(parked=True, soc_pct=80)


@pytest.fixture
def world(tmp_path: Path):  # type: ignore[no-untyped-def]
    with ota_world(tmp_path) as w:
        yield w


def _installed(world: OtaWorld, serial: str) -> str | None:
    running = world.ecu(serial).running()
    return None if running is None else running.target


def _resign(path: Path, signers: list, mutate) -> None:  # type: ignore[no-untyped-def]
    md = Metadata.from_bytes(path.read_bytes())
    mutate(md.signed)
    md.signatures.clear()
    for s in signers:
        md.sign(s, append=True)
    path.write_bytes(md.to_bytes(JSONSerializer(compact=True)))


def test_a_good_update_installs_and_reports_before_and_after(world: OtaWorld) -> None:
    image = world.publish("bms", "2.5.0", 5, hardware_id="bms-v2")
    world.assign(("BMS-001", image))
    [outcome] = world.primary.update(PARKED)
    assert outcome.result == "installed" and outcome.before is None
    assert outcome.after is not None and outcome.after.version == "2.5.0"
    assert world.ecu("BMS-001").identity().release_counter == 5
    assert world.primary.update(PARKED)[0].result == "unchanged"


def test_a_build_failing_its_health_check_is_rolled_back(world: OtaWorld) -> None:
    good = world.publish("bms", "2.5.0", 5, hardware_id="bms-v2")
    world.assign(("BMS-001", good))
    world.primary.update(PARKED)
    bad = world.publish("bms", "2.6.0", 6, hardware_id="bms-v2", self_test=False)
    world.assign(("BMS-001", bad))
    [outcome] = world.primary.update(PARKED)
    assert outcome.result == "rolled_back" and "self-test" in outcome.detail
    assert _installed(world, "BMS-001") == good
    assert world.ecu("BMS-001").identity().release_counter == 5  # the floor did not rise


def test_update_waits_for_parked_vehicle_with_enough_charge(world: OtaWorld) -> None:
    world.assign(("BMS-001", world.publish("bms", "2.5.0", 5, hardware_id="bms-v2")))
    with pytest.raises(PreconditionError, match="not parked"):
        world.primary.update(VehicleConditions(parked=False, soc_pct=90))
    with pytest.raises(PreconditionError, match="charge 10 %"):
        world.primary.update(VehicleConditions(parked=True, soc_pct=10))
    assert _installed(world, "BMS-001") is None


def test_rollback_to_older_image_is_rejected(world: OtaWorld) -> None:
    old = world.publish("bms", "2.4.0", 4, hardware_id="bms-v2")
    new = world.publish("bms", "2.5.0", 5, hardware_id="bms-v2")
    world.assign(("BMS-001", new))
    world.primary.update(PARKED)
    world.assign(("BMS-001", old))  # a compromised Director orders the older, vulnerable build
    with pytest.raises(ImageRollbackError, match="release counter 4"):
        world.primary.update(PARKED)
    assert _installed(world, "BMS-001") == new


def test_rollback_of_metadata_to_an_older_version_is_rejected(world: OtaWorld) -> None:
    world.publish("bms", "2.4.0", 4, hardware_id="bms-v2")
    repo = world.layout.images().repo
    old_timestamp = (repo.metadata_dir / "timestamp.json").read_bytes()
    world.publish("bms", "2.5.0", 5, hardware_id="bms-v2")
    world.assign(("BMS-001", "bms/bms-2.5.0.bin"))
    world.primary.check()
    (repo.metadata_dir / "timestamp.json").write_bytes(old_timestamp)  # replay the old one
    with pytest.raises(TufUpdateError, match="BadVersionNumberError|version"):
        world.primary.check()


def test_freeze_attack_with_an_expired_timestamp_is_rejected(tmp_path: Path) -> None:
    past = datetime.now(UTC) - timedelta(days=3)
    with ota_world(tmp_path, now=past) as world:  # everything signed 3 days ago: timestamp expired
        image = world.publish("bms", "2.5.0", 5, hardware_id="bms-v2", now=past)
        world.assign(("BMS-001", image), now=past)
        with pytest.raises(TufUpdateError, match="[Ee]xpired"):
            world.primary.check()


def test_mix_and_match_of_targets_from_another_snapshot_is_rejected(world: OtaWorld) -> None:
    world.publish("bms", "2.4.0", 4, hardware_id="bms-v2")
    repo = world.layout.images().repo
    v2 = (repo.metadata_dir / "2.targets.json").read_bytes()
    world.publish("bms", "2.5.0", 5, hardware_id="bms-v2")
    # serve the older targets under the name the current snapshot points at
    (repo.metadata_dir / "3.targets.json").write_bytes(v2)
    with pytest.raises(TufUpdateError, match="LengthOrHashMismatch|hash|length"):
        world.primary.check()


def test_arbitrary_software_with_a_bad_signature_is_rejected(world: OtaWorld) -> None:
    world.publish("bms", "2.5.0", 5, hardware_id="bms-v2")
    repo = world.layout.images().repo
    path = repo.metadata_dir / f"{repo.targets().signed.version}.targets.json"
    doc = json.loads(path.read_bytes())
    doc["signed"]["targets"]["bms/bms-2.5.0.bin"]["hashes"]["sha256"] = "0" * 64
    path.write_bytes(json.dumps(doc).encode())
    with pytest.raises(TufUpdateError):
        world.primary.check()


def test_arbitrary_software_with_a_bad_image_hash_is_rejected(world: OtaWorld) -> None:
    image = world.publish("bms", "2.5.0", 5, hardware_id="bms-v2")
    world.assign(("BMS-001", image))
    repo = world.layout.images().repo
    stored = next((repo.targets_dir / "bms").glob("*.bms-2.5.0.bin"))
    data = bytearray(stored.read_bytes())
    data[-1] ^= 0xFF  # same length, other bytes
    stored.write_bytes(bytes(data))
    with pytest.raises(TufUpdateError, match="LengthOrHashMismatch|hash"):
        world.primary.update(PARKED)
    assert _installed(world, "BMS-001") is None


def test_ecu_refuses_bytes_that_are_not_the_verified_image(world: OtaWorld) -> None:
    image = world.publish("bms", "2.5.0", 5, hardware_id="bms-v2")
    world.assign(("BMS-001", image))
    [order] = world.primary.check()
    with pytest.raises(ImageHashError):
        world.ecu("BMS-001").install(b"x" * order.length, order)


def test_endless_data_oversized_metadata_is_rejected(world: OtaWorld) -> None:
    repo = world.layout.images().repo
    ts = repo.metadata_dir / "timestamp.json"
    ts.write_bytes(ts.read_bytes() + b" " * (tuf_client.MAX_TIMESTAMP_BYTES * 4))
    with pytest.raises(TufUpdateError, match="DownloadLengthMismatch|length"):
        world.primary.check()


def test_endless_data_oversized_image_is_rejected(world: OtaWorld) -> None:
    image = world.publish("bms", "2.5.0", 5, hardware_id="bms-v2")
    world.assign(("BMS-001", image))
    repo = world.layout.images().repo
    stored = next((repo.targets_dir / "bms").glob("*.bms-2.5.0.bin"))
    stored.write_bytes(stored.read_bytes() + b"\0" * 1_000_000)
    with pytest.raises(TufUpdateError, match="DownloadLengthMismatch|length"):
        world.primary.update(PARKED)
    assert _installed(world, "BMS-001") is None


def test_key_compromise_below_the_root_threshold_is_rejected(world: OtaWorld) -> None:
    # one of the two required root keys is stolen: the attacker signs a root v2 that swaps
    # the timestamp key for their own
    keys = world.layout.image_keys
    repo = world.layout.images().repo
    [stolen] = keys.signers("root")[:1]
    root = Metadata[Root].from_bytes(repo.root_bytes())
    root.signed.version = 2
    attacker_timestamp = keys.signers("timestamp")[0]  # any key works for the attempt
    root.signed.add_key(attacker_timestamp.public_key, "timestamp")
    with pytest.raises(Exception, match="needs 2 signatures"):
        sign_with_threshold(root, [stolen], 2)
    root.signatures.clear()
    root.sign(stolen)
    (repo.metadata_dir / "2.root.json").write_bytes(root.to_bytes(JSONSerializer()))
    with pytest.raises(TufUpdateError, match="UnsignedMetadataError|signature"):
        world.primary.check()


def test_fast_forward_timestamp_signed_by_a_revoked_key_is_rejected(world: OtaWorld) -> None:
    # a timestamp with a huge version, signed by a key that is not the timestamp role's
    repo = world.layout.images().repo
    foreign = world.layout.director_keys.signers("timestamp")
    _resign(repo.metadata_dir / "timestamp.json", foreign,
            lambda s: setattr(s, "version", 2**31))
    with pytest.raises(TufUpdateError, match="UnsignedMetadataError|signature"):
        world.primary.check()


def test_director_image_mismatch_is_rejected(world: OtaWorld) -> None:
    image = world.publish("bms", "2.5.0", 5, hardware_id="bms-v2")
    world.assign(("BMS-001", image))
    # the Director (online keys, compromised) signs another hash for the same name
    vehicle = world.layout.director().vehicle(VIN)
    signers = world.layout.director_keys.signers("targets")
    targets_path = vehicle.metadata_dir / f"{vehicle.targets().signed.version}.targets.json"

    def evil(t: Targets) -> None:
        t.targets[image].hashes["sha256"] = hashlib.sha256(b"evil").hexdigest()
    _resign(targets_path, signers, evil)
    # re-sign snapshot and timestamp over the changed targets, as a compromised Director would
    vehicle.publish({image: vehicle.targets().signed.targets[image]}, replace=True)
    with pytest.raises(DirectorImageMismatchError, match="sha256 differs"):
        world.primary.check()


def test_director_aiming_an_image_at_other_hardware_is_rejected(world: OtaWorld) -> None:
    image = world.publish("bms", "2.5.0", 5, hardware_id="bms-v2")
    vehicle = world.layout.director().vehicle(VIN)
    world.assign(("BMS-001", image))
    entry = vehicle.targets().signed.targets[image]
    entry.unrecognized_fields["custom"]["ecu_identifiers"] = {"ADAS-001": {"hardware_id": "bms-v2"}}
    vehicle.publish({image: entry}, replace=True)
    with pytest.raises(EcuMismatchError, match="ADAS-001"):
        world.primary.check()


def test_director_target_not_in_the_image_repository_is_rejected(world: OtaWorld) -> None:
    image = world.publish("bms", "2.5.0", 5, hardware_id="bms-v2")
    world.assign(("BMS-001", image))
    vehicle = world.layout.director().vehicle(VIN)
    entry = vehicle.targets().signed.targets[image]
    entry.path = "bms/backdoor.bin"
    vehicle.publish({"bms/backdoor.bin": entry}, replace=True)
    with pytest.raises(DirectorImageMismatchError, match="not signed by the Image repository"):
        world.primary.check()


def test_partial_bundle_missing_snapshot_is_rejected(world: OtaWorld) -> None:
    world.publish("bms", "2.5.0", 5, hardware_id="bms-v2")
    repo = world.layout.images().repo
    version = repo.timestamp().signed.snapshot_meta.version
    (repo.metadata_dir / f"{version}.snapshot.json").unlink()
    with pytest.raises((TufUpdateError, TufTransportError)):
        world.primary.check()


def test_unreachable_repository_is_a_transport_error(tmp_path: Path) -> None:
    (tmp_path / "md").mkdir()
    root = tmp_path / "root.json"
    with ota_world(tmp_path / "w") as world:
        root.write_bytes(world.layout.images().repo.root_bytes(1))
    tuf_client.init(tmp_path / "md", root)
    with pytest.raises(TufTransportError):
        tuf_client.refresh(tmp_path / "md", "http://127.0.0.1:9/image/metadata")


def test_timestamp_refresh_keeps_a_client_current(world: OtaWorld) -> None:
    world.primary.check()
    repo = world.layout.images().repo
    before = repo.timestamp().signed.version
    assert repo.refresh_timestamp() == before + 1
    world.primary.check()
    trusted = Metadata[Timestamp].from_bytes(
        (world.primary.state_dir / "image" / "timestamp.json").read_bytes())
    assert trusted.signed.version == before + 1
    shutil.rmtree(world.vehicle_dir / "ota" / "image" / ".." / "downloads", ignore_errors=True)


def test_slow_retrieval_from_a_silent_server_is_abandoned(tmp_path: Path) -> None:
    import socket
    import threading
    import time

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    held: list[socket.socket] = []

    def accept_and_say_nothing() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            held.append(conn)  # never answers: the client must give up on its own

    threading.Thread(target=accept_and_say_nothing, daemon=True).start()
    with ota_world(tmp_path / "w") as world:
        root = world.layout.images().repo.root_bytes(1)
    (tmp_path / "root.json").write_bytes(root)
    tuf_client.init(tmp_path / "md", tmp_path / "root.json")
    start = time.monotonic()
    try:
        with pytest.raises(TufTransportError):
            tuf_client.refresh(tmp_path / "md",
                               f"http://127.0.0.1:{listener.getsockname()[1]}/image/metadata",
                               timeout_s=1)
    finally:
        listener.close()
        for conn in held:
            conn.close()
    assert time.monotonic() - start < 120  # bounded by the timeout, not by the server


def test_a_revoked_timestamp_key_is_refused_after_key_rotation(world: OtaWorld) -> None:
    world.primary.check()
    keys, repo = world.layout.image_keys, world.layout.images().repo
    [revoked] = keys.signers("timestamp")  # the compromised key, still in the attacker's hands
    keys.replace_key("timestamp")
    assert repo.rotate_keys() == 2
    world.primary.check()  # the vehicle follows the new root and the new timestamp key
    _resign(repo.metadata_dir / "timestamp.json", [revoked],
            lambda s: setattr(s, "version", s.version + 1))
    with pytest.raises(TufUpdateError, match="UnsignedMetadataError|signature"):
        world.primary.check()
