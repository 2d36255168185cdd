"""Bytes each drive sets once (a configuration, a trip's setting): a new drive that starts with
a value no training drive had raises no alert; the same byte changing in the middle of a drive
does, and so does a byte that held one value in every training drive."""

from __future__ import annotations

import io

import numpy as np
import numpy.typing as npt
import pytest

from drivetrain.core.can import FrameBatch
from drivetrain.edge import IdsModel, score_capture, train_model
from drivetrain.edge.ids.detectors import ByteValueDetector, ConstantBitDetector
from drivetrain.edge.ids.model import IdsModelError
from drivetrain.edge.ids.stream import (
    IdTable,
    StreamState,
    advance,
    drive_reference,
    index_batch,
    per_drive_bytes,
)

CONFIG, FIXED, OTHER = 0x0BA, 0x2D7, 0x100


def _drive(
    seed: int,
    config: int,
    *,
    fixed: int = 0x60,
    changed_at: float | None = None,
    changed_to: int = 0,
    seconds: float = 20.0,
) -> tuple[FrameBatch, npt.NDArray[np.bool_]]:
    """Three ids at 10 ms: byte 6 of CONFIG holds ``config`` for the whole drive (from
    ``changed_at`` on: ``changed_to``, the attack), FIXED's byte 2 holds ``fixed``, OTHER carries
    a counter; every id also has a random byte."""
    rng = np.random.default_rng(seed)
    ticks = np.arange(0.0, seconds, 0.01)
    rows, times, attack = [], [], []
    for i, t in enumerate(ticks):
        forged = changed_at is not None and t >= changed_at
        noise = [int(b) for b in rng.integers(0, 256, 3)]
        for k, (fid, data) in enumerate(
            (
                (CONFIG, [noise[0], 0, 0, 0, 0, 0, changed_to if forged else config, 0]),
                (FIXED, [0x10, 0, fixed, noise[1], 0, 0, 0, 8]),
                (OTHER, [i & 0xFF, noise[2], 0, 0, 0, 0, 0, 0]),
            )
        ):
            rows.append(data)
            times.append(t + k * 1e-4)
            attack.append(forged and fid == CONFIG)
    n = len(rows)
    batch = FrameBatch(
        timestamp_s=np.array(times),
        frame_id=np.tile(np.array([CONFIG, FIXED, OTHER], np.uint32), n // 3),
        is_extended=np.zeros(n, np.bool_),
        bus=np.zeros(n, np.uint16),
        length=np.full(n, 8, np.uint8),
        data=np.array(rows, np.uint8),
    )
    return batch, np.array(attack)


@pytest.fixture(scope="module")
def model() -> IdsModel:
    # the configuration byte reads 00, 04, 05, 08 in four drives (bit 0x02 never set)
    return train_model([_drive(s, c)[0] for s, c in ((1, 0x00), (2, 0x04), (3, 0x05), (4, 0x08))])


def _without_per_drive(model: IdsModel) -> IdsModel:
    """The model as a file written before per-drive bytes were learned would load."""
    with np.load(io.BytesIO(model.to_bytes())) as npz:
        arrays = {k: npz[k] for k in npz.files if not k.endswith(".per_drive")}
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    return IdsModel.from_bytes(buffer.getvalue())


def test_per_drive_bytes_are_the_bytes_constant_in_each_drive_that_differ_between_drives() -> None:
    drives = [_drive(s, c)[0] for s, c in ((1, 0x00), (2, 0x04), (3, 0x05))]
    ids = IdTable(np.concatenate([IdTable.keys_of(d.frame_id, d.is_extended) for d in drives]))
    views = [index_batch(d, ids, StreamState(len(ids) + 1)) for d in drives]
    found = per_drive_bytes(views, len(ids))
    row = int(ids.rows(np.array([CONFIG]))[0])
    assert found.shape == (len(ids) + 1, 8)
    assert [tuple(map(int, p)) for p in np.argwhere(found)] == [
        (row, 6)
    ]  # FIXED's 0x60 never varies


def test_a_drive_that_starts_with_a_new_value_of_a_per_drive_byte_raises_no_alert(
    model: IdsModel,
) -> None:
    drive, attack = _drive(5, 0x06)
    assert score_capture(model, drive, attack).false_alerts == 0
    # the same model without the per-drive bytes (a model file written before them) flags it
    old = _without_per_drive(model)
    assert not any(d.per_drive.any() for d in old.detectors if hasattr(d, "per_drive"))
    assert score_capture(old, drive, attack).false_alerts > 0


def test_a_per_drive_byte_that_changes_within_the_drive_is_flagged(model: IdsModel) -> None:
    # to a value no drive had (0x0A: bit 0x02 only with this drive's 0x06): the frame that sets
    # the new bit (the later frames that keep it are the same event, see test_ids_carried)
    drive, attack = _drive(6, 0x06, changed_at=10.0, changed_to=0x0A)
    flagged = model.stream().score(drive).alert
    assert flagged[attack][0] and score_capture(model, drive, attack).latency_s == 0.0
    assert not flagged[~attack].any()
    # to a value another drive had (0x08): the change itself (a bit that never flips in a drive)
    drive, attack = _drive(6, 0x06, changed_at=10.0, changed_to=0x08)
    score = score_capture(model, drive, attack)
    assert score.latency_s == 0.0 and score.false_alerts == 0


def test_a_byte_every_training_drive_held_at_one_value_is_still_flagged_from_the_start(
    model: IdsModel,
) -> None:
    drive, _ = _drive(7, 0x04, fixed=0x62)
    flagged = model.stream().score(drive).alert
    assert flagged[drive.frame_id == FIXED].mean() > 0.99
    assert not flagged[drive.frame_id == CONFIG].any()


def test_the_drive_reference_is_the_first_accepted_frame_and_survives_batches() -> None:
    drive, _ = _drive(8, 0x06, seconds=1.0)
    ids = IdTable(IdTable.keys_of(drive.frame_id, drive.is_extended))
    state = StreamState(len(ids) + 1)
    first = drive.take(np.arange(30))
    view = index_batch(first, ids, state)
    ref = drive_reference(view)
    row = int(ids.rows(np.array([CONFIG]))[0])
    assert (ref[view.row == row, :8] == first.data[0]).all()  # the id's first frame in the batch
    accepted = np.ones(len(first), np.bool_)
    accepted[0] = False  # the first frame was flagged: the next accepted one sets the drive
    advance(state, index_batch(first, ids, state, accepted))
    later = drive.take(np.arange(30, 60))
    ref = drive_reference(index_batch(later, ids, state))
    assert (ref[later.frame_id == CONFIG, :8] == first.data[3]).all()


def test_model_files_keep_the_per_drive_bytes(model: IdsModel) -> None:
    loaded = IdsModel.from_bytes(model.to_bytes())
    for d in loaded.detectors:
        if isinstance(d, (ByteValueDetector, ConstantBitDetector)):
            original = next(o for o in model.detectors if o.name == d.name)
            assert isinstance(original, (ByteValueDetector, ConstantBitDetector))
            assert (d.per_drive == original.per_drive).all() and d.per_drive.sum() == 1


def test_a_model_file_with_per_drive_bytes_of_the_wrong_shape_is_refused(model: IdsModel) -> None:
    model = IdsModel.from_bytes(model.to_bytes())
    value = next(d for d in model.detectors if isinstance(d, ByteValueDetector))
    value.per_drive = np.zeros((2, 8), np.bool_)
    with pytest.raises(IdsModelError, match="per_drive"):
        IdsModel.from_bytes(model.to_bytes())
