"""A trained intrusion-detection model reaching cars as an OTA image: trained on a shipped CAN
capture, published with ``drivetrain ota image add-model`` (kind ``model``, through the one
publishing function), assigned by a rollout's Director targets to each car's IDS component,
installed over HTTP by the real edge agents (full verification, A/B slots), loaded by the
car's intrusion detector in the component's health check, and reported back so the twin's
ECU inventory shows the model's version. A model image that does not load rolls back."""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from ota_kit import ota_car
from rig import Rig
from typer.testing import CliRunner

from drivetrain.cli import app
from drivetrain.cloud.ota import OtaLayout, RolloutSpec, WavePolicy, service
from drivetrain.cloud.ota.model_images import model_upload
from drivetrain.cloud.ota.publishing import ImageUpload, publish_image
from drivetrain.cloud.ota.serve import BackgroundServer
from drivetrain.cloud.twins import list_ecus
from drivetrain.core.can import FrameBatch, read_capture
from drivetrain.core.errors import BadInputError
from drivetrain.core.vss import builtin_catalog
from drivetrain.core.wire import VehicleEvent
from drivetrain.edge import (
    SECURITY_EVENT_TYPE,
    AbEcu,
    CanDecoding,
    IdsModel,
    IdsModelError,
    OnboardIds,
    VehicleConditions,
    pack_model_image,
    train_model,
    unpack_model_image,
)
from drivetrain.edge.agent import EdgeAgent

DATA = Path(__file__).parents[2] / "data" / "captures"
CAPTURE = DATA / "comma2k19_head3000.csv"
GOOD_HW, BAD_HW = "IDS-HW1", "IDS-HW2"
VERSION = "2026.12.1"


@pytest.fixture(scope="module")
def frames() -> FrameBatch:
    return read_capture(CAPTURE).frames


@pytest.fixture(scope="module")
def model_file(frames: FrameBatch, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("model") / "ids-model.npz"
    train_model([frames], description=CAPTURE.name).save(path)
    return path


def _cli(data_dir: Path, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["ota", *args],
                                env={"DRIVETRAIN_DATA_DIR": str(data_dir), "COLUMNS": "200"})
    return result.exit_code, result.output


def _corrupt(image: bytes) -> bytes:
    """A model image whose model bytes were altered after packing (the card's hash no longer
    matches); published as it is, so its signed hash is that of the altered bytes."""
    damaged = bytearray(image)
    damaged[-100] ^= 0xFF
    return bytes(damaged)


@pytest.fixture
def fleet(rig: Rig, tmp_path: Path, model_file: Path,
          ) -> Iterator[tuple[Rig, OtaLayout, dict[str, OnboardIds]]]:
    """acme's three cars with OTA agents whose IDS component (serial IDS) runs no model yet;
    the second car's IDS is hardware BAD_HW, for which a corrupt model image is published."""
    data = tmp_path / "platform"
    assert _cli(data, "init", "--root-threshold", "1", "--root-keys", "1")[0] == 0
    code, out = _cli(data, "image", "add-model", str(model_file), "--hardware-id", GOOD_HW,
                     "--release-counter", "3", "--version", VERSION)
    assert code == 0, out
    assert f"published models/{GOOD_HW}/ids-model-{VERSION}.img" in out
    layout = OtaLayout.under(data)
    good = model_upload(model_file.read_bytes(), hardware_id=BAD_HW, release_counter=3,
                        version=VERSION)
    publish_image(layout.images(), ImageUpload(good.name, _corrupt(good.data), BAD_HW, 3,
                                               VERSION, "model"))
    onboard: dict[str, OnboardIds] = {}
    with BackgroundServer(layout) as server:
        for n, vin in enumerate(rig.vins):
            hw = BAD_HW if n == 1 else GOOD_HW
            onboard[vin] = OnboardIds()
            ota_car(rig, layout, server.url, vin, tmp_path / "cars" / vin,
                    ecu=AbEcu("IDS", hw, tmp_path / "cars" / vin / "ids",
                              onboard[vin].health_check),
                    running="0", conditions=lambda: VehicleConditions(True, 80.0),
                    can=CanDecoding.load(DATA / "toyota_new_mc_pt_generated.dbc",
                                         DATA / "toyota_vss.toml", builtin_catalog()),
                    ids=onboard[vin])
        yield rig, layout, onboard


def test_a_trained_ids_model_reaches_cars_as_an_image_and_the_twin_shows_its_version(
    fleet: tuple[Rig, OtaLayout, dict[str, OnboardIds]], frames: FrameBatch,
    model_file: Path,
) -> None:
    rig, layout, onboard = fleet
    good, bad, other = rig.vins
    attack = _injected(frames)
    assert _security_events(rig.agents[good], attack) == []  # no model on board yet
    [published] = [i for i in layout.images().images() if i.hardware_id == GOOD_HW]
    assert (published.kind, published.version, published.release_counter) == (
        "model", VERSION, 3)
    spec = RolloutSpec("ids-model", "IDS", (published.name,
                                            f"models/{BAD_HW}/ids-model-{VERSION}.img"),
                       policy=WavePolicy(waves=(1.0,)))
    with rig.database.session() as session:
        rid = service.create_rollout(session, layout, spec, tenant="acme",
                                     actor="engineer").rollout_id
        service.approve_rollout(session, layout, rid, tenant="acme", actor="manager")
    rig.cycle()  # notices out; each agent updates by itself over HTTP and answers
    for agent in rig.agents.values():
        agent.flush(time.time_ns())
    rig.vehicles_act()  # the signed version manifests go up
    with rig.database.session() as session:
        service.sync_rollout(session, rid, tenant="acme")
        states = {v.vin: v for v in service.list_vehicles(session, rid, tenant="acme")}
        versions = {vin: list_ecus(session, vin, tenant="acme")[0].software_version
                    for vin in rig.vins}
    assert states[good].state == states[other].state == "installed", states[good].detail
    assert f"IDS model ids {VERSION} loaded" in states[good].detail
    assert states[bad].state == "rolled_back"
    assert "model does not load" in states[bad].detail
    assert "differs from its card" in states[bad].detail
    # the twin's ECU inventory names the model version each car runs
    assert versions == {good: VERSION, other: VERSION, bad: "0"}
    # the good cars' detectors score with the model trained on the lake's capture
    trained = IdsModel.load(model_file)
    for vin in (good, other):
        assert onboard[vin].version == VERSION
        running = onboard[vin].model
        assert running is not None
        np.testing.assert_array_equal(running.ids.keys, trained.ids.keys)
        np.testing.assert_allclose(running.stream().score(frames).score,
                                   trained.stream().score(frames).score)
    assert onboard[bad].model is None and onboard[bad].version is None
    # the agents' detectors now run over the bus: the injected id is raised by the good car
    raised = _security_events(rig.agents[good], attack)
    assert raised and {e.data["sensor"] for e in raised} == {"unknown_id"}
    assert _security_events(rig.agents[bad], attack) == []
    # after a restart the car's IDS starts from the model its active slot holds
    ota = rig.agents[good].downlink.ota
    assert ota is not None
    ecu = ota.primary.ecus["IDS"]
    assert OnboardIds.from_slots(ecu).version == VERSION
    bad_ota = rig.agents[bad].downlink.ota
    assert bad_ota is not None
    assert bad_ota.primary.ecus["IDS"].running() is None  # rolled back to the factory slot


def _injected(frames: FrameBatch) -> FrameBatch:
    """The capture with an id it never carries injected into every tenth frame of a stretch."""
    frame_id = frames.frame_id.copy()
    assert 0x7E5 not in set(frame_id.tolist())
    frame_id[1000:1300:10] = 0x7E5
    return replace(frames, frame_id=frame_id)


def _security_events(agent: EdgeAgent, frames: FrameBatch) -> list[VehicleEvent]:
    now = time.time_ns()
    # Sealed now, so this tick's own flush is not due (it would seal the events it raises
    # into the buffer before they could be read here, as on a slow machine).
    agent.flush(now)
    agent.outbox.events.clear()
    offset = now - int(frames.timestamp_s[-1] * 1e9)
    agent.tick(now, frames=frames, frames_offset_ns=offset)
    return [e for e in agent.outbox.events if e.type == SECURITY_EVENT_TYPE]


def test_a_model_image_carries_its_card_and_refuses_tampering(model_file: Path) -> None:
    raw = model_file.read_bytes()
    image = pack_model_image(raw, name="ids", version="7")
    card, model = unpack_model_image(image)
    assert (card.name, card.version, card.length) == ("ids", "7", len(raw))
    assert card.sha256 == hashlib.sha256(raw).hexdigest()
    assert card.trained["trained_frames"] == 3000 and card.trained["description"] == CAPTURE.name
    assert len(model.ids) == card.trained["ids"]
    with pytest.raises(IdsModelError, match="differs from its card"):
        unpack_model_image(_corrupt(image))
    with pytest.raises(IdsModelError, match="expected a packed IDS model"):
        unpack_model_image(raw)
    head, _, rest = image.partition(b"\n")
    card_line, _, body = rest.partition(b"\n")
    forged = json.loads(card_line) | {"sha256": "0" * 64}
    with pytest.raises(IdsModelError, match="differs from its card"):
        unpack_model_image(head + b"\n" + json.dumps(forged).encode() + b"\n" + body)
    ids = OnboardIds()
    assert not ids.health_check("IDS", image[:-10]).healthy and ids.model is None
    assert ids.health_check("IDS", image).healthy and ids.version == "7"


def test_a_file_that_is_not_a_model_is_refused_and_nothing_is_published(
    tmp_path: Path, model_file: Path,
) -> None:
    data = tmp_path / "platform"
    assert _cli(data, "init", "--root-threshold", "1", "--root-keys", "1")[0] == 0
    junk = tmp_path / "junk.npz"
    junk.write_bytes(b"not a model" * 100)
    code, out = _cli(data, "image", "add-model", str(junk), "--hardware-id", GOOD_HW,
                     "--release-counter", "1", "--version", "1")
    assert code != 0 and "not an intrusion-detection model" in out, out
    with pytest.raises(BadInputError, match="expected both non-empty"):
        model_upload(model_file.read_bytes(), hardware_id=GOOD_HW, release_counter=1,
                     version=" ")
    assert OtaLayout.under(data).images().images() == []
