"""The repositories: keys kept 0600 with thresholds, metadata that python-tuf verifies, images
and Director assignments checked before anything is signed, a server that serves only the
repositories."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tuf.api.metadata import Metadata, Root, Snapshot, Targets, Timestamp

from drivetrain.cloud.ota.director import EcuAssignment
from drivetrain.cloud.ota.keys import KeyStore
from drivetrain.cloud.ota.layout import OtaLayout
from drivetrain.cloud.ota.repository import TufRepository
from drivetrain.cloud.ota.serve import resolve
from drivetrain.core.errors import BadInputError, ConfigurationError, NotFoundError

VIN = "1HGCM82633A004352"


@pytest.fixture
def layout(tmp_path: Path) -> OtaLayout:
    layout = OtaLayout.under(tmp_path)
    layout.init({"root": (2, 3)})
    return layout


def test_private_keys_are_written_0600_and_root_keys_kept_apart(layout: OtaLayout) -> None:
    store = layout.image_keys
    pems = list(store.path.rglob("*.pem"))
    assert len(pems) == 6  # 3 root + targets + snapshot + timestamp
    assert all(stat.S_IMODE(p.stat().st_mode) == 0o600 for p in pems)
    assert len(list((store.path / "offline").glob("*.pem"))) == 3
    assert store.roles()["root"].threshold == 2


def test_a_world_readable_key_is_refused(layout: OtaLayout) -> None:
    pem = next((layout.image_keys.path / "online").glob("*.pem"))
    os.chmod(pem, 0o644)
    with pytest.raises(ConfigurationError, match="expected 600"):
        layout.images().add_image("a.bin", b"x", hardware_id="hw", release_counter=1,
                                  version="1")


def test_keys_are_never_overwritten_and_thresholds_are_checked(tmp_path: Path) -> None:
    with pytest.raises(BadInputError, match="threshold 3 of 2"):
        KeyStore(tmp_path / "k").generate({"root": (3, 2)})
    KeyStore(tmp_path / "k2").generate({})
    with pytest.raises(BadInputError, match="already exist"):
        KeyStore(tmp_path / "k2").generate({})


def test_root_without_enough_offline_keys_cannot_be_signed(tmp_path: Path) -> None:
    store = KeyStore(tmp_path / "keys")
    store.generate({"root": (2, 3)})
    for pem in list((store.path / "offline").glob("*.pem"))[:2]:
        pem.unlink()  # two root keys moved offline
    with pytest.raises(ConfigurationError, match="root needs 2 signatures; only 1"):
        TufRepository.create(tmp_path / "repo", store)


def test_published_metadata_verifies_with_python_tuf(layout: OtaLayout) -> None:
    images = layout.images()
    images.add_image("bms/bms-2.5.0.bin", b"fw", hardware_id="bms-v2", release_counter=5,
                     version="2.5.0")
    repo = images.repo
    root = Metadata[Root].from_bytes(repo.root_bytes())
    root.verify_delegate(Root.type, root)  # 2 of 3 root signatures
    for role, md in ((Targets.type, repo.targets()), (Snapshot.type, repo.snapshot()),
                     (Timestamp.type, repo.timestamp())):
        root.verify_delegate(role, md)
    assert repo.targets().signed.version == 2
    assert repo.snapshot().signed.meta["targets.json"].version == 2


def test_an_image_name_is_immutable(layout: OtaLayout) -> None:
    images = layout.images()
    images.add_image("a.bin", b"one", hardware_id="hw", release_counter=1, version="1")
    images.add_image("a.bin", b"one", hardware_id="hw", release_counter=1, version="1")
    with pytest.raises(BadInputError, match="already published"):
        images.add_image("a.bin", b"two", hardware_id="hw", release_counter=2, version="2")


@pytest.mark.parametrize(("name", "field"), [
    ("../etc/passwd", "target name"), ("/abs.bin", "target name"), ("a/../b", "target name"),
])
def test_bad_image_names_are_refused(layout: OtaLayout, name: str, field: str) -> None:
    with pytest.raises(BadInputError, match=field):
        layout.images().add_image(name, b"x", hardware_id="hw", release_counter=1, version="1")


def test_bad_image_fields_are_refused(layout: OtaLayout) -> None:
    images = layout.images()
    with pytest.raises(BadInputError, match="hardware_id"):
        images.add_image("a.bin", b"x", hardware_id="bad id!", release_counter=1, version="1")
    with pytest.raises(BadInputError, match="release_counter"):
        images.add_image("a.bin", b"x", hardware_id="hw", release_counter=-1, version="1")
    with pytest.raises(BadInputError, match="kind"):
        images.add_image("a.bin", b"x", hardware_id="hw", release_counter=1, version="1",
                         kind="virus")
    assert images.images() == []


def test_director_names_each_ecu_by_serial_and_hardware_id(layout: OtaLayout) -> None:
    images = layout.images()
    images.add_image("bms.bin", b"fw", hardware_id="bms-v2", release_counter=3, version="3")
    director = layout.director()
    director.assign(VIN, [EcuAssignment("S1", "bms-v2", "bms.bin"),
                          EcuAssignment("S2", "bms-v2", "bms.bin")], images)
    entry = director.vehicle(VIN).targets().signed.targets["bms.bin"]
    assert entry.custom == {"hardware_id": "bms-v2", "release_counter": 3,
                            "ecu_identifiers": {"S1": {"hardware_id": "bms-v2"},
                                                "S2": {"hardware_id": "bms-v2"}}}
    assert entry.hashes == images.image("bms.bin").hashes


def test_director_refuses_wrong_hardware_unknown_images_and_bad_vins(layout: OtaLayout) -> None:
    images, director = layout.images(), layout.director()
    images.add_image("bms.bin", b"fw", hardware_id="bms-v2", release_counter=3, version="3")
    with pytest.raises(BadInputError, match="built for hardware 'bms-v2'"):
        director.assign(VIN, [EcuAssignment("S1", "adas-v1", "bms.bin")], images)
    with pytest.raises(NotFoundError, match="nope.bin"):
        director.assign(VIN, [EcuAssignment("S1", "bms-v2", "nope.bin")], images)
    with pytest.raises(BadInputError, match="VIN"):
        director.assign("NOT-A-VIN", [], images)
    with pytest.raises(BadInputError, match="assigned twice"):
        director.assign(VIN, [EcuAssignment("S1", "bms-v2", "bms.bin")] * 2, images)
    with pytest.raises(NotFoundError):
        director.assignments(VIN)  # nothing was signed


@pytest.mark.parametrize("url", [
    "/", "/image", "/image/metadata", "/image/metadata/../../keys/image/keys.json",
    "/image/metadata/%2e%2e/%2e%2e/keys/image/keys.json", "/image/metadata/.timestamp.json.tmp",
    "/director/NOTAVIN/metadata/timestamp.json", "/keys/image/keys.json",
    "/image/metadata/sub/timestamp.json",
])
def test_server_serves_only_repository_files(layout: OtaLayout, url: str) -> None:
    assert resolve(layout, url) is None


def test_server_resolves_repository_files(layout: OtaLayout) -> None:
    assert resolve(layout, "/image/metadata/timestamp.json") is not None
    assert resolve(layout, "/image/metadata/1.root.json") is not None
    layout.director().enrol(VIN)
    assert resolve(layout, f"/director/{VIN}/metadata/timestamp.json") is not None


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.sampled_from(["image", "metadata", "targets", "director", VIN, "..", ".",
                                 "%2e%2e", "%2f", "keys", "timestamp.json", "1.root.json",
                                 "", "a\x00b", "~", "offline"]), max_size=7),
       st.text(max_size=40))
def test_no_url_resolves_outside_the_repository_folders(
    layout: OtaLayout, parts: list[str], noise: str,
) -> None:
    url = "/" + "/".join([*parts, noise])
    path = resolve(layout, url)
    if path is not None:
        real = path.resolve()
        allowed = [(layout.image_path / "metadata").resolve(),
                   (layout.image_path / "targets").resolve(),
                   (layout.director_path / "vehicles").resolve()]
        assert any(real.is_relative_to(a) for a in allowed), url
        assert "keys" not in real.relative_to(layout.root.resolve()).parts
