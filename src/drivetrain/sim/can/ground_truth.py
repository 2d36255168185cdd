"""Ground truth of injected bus attacks: labelled records, and a label on every frame.

Like the public intrusion-detection datasets, every frame carries a label — ``Benign`` or the
attack class that put it on the bus — and the attacks themselves are listed as records (kind,
time span, CAN ids, vehicle). Label names follow the ORNL ROAD dataset where it has the class
(``Fuzzing``, ``Fabrication`` for targeted spoofing, ``Masquerade``); the classes ROAD lacks are
named ``Flooding`` and ``Replay``. A suspension removes frames and injects none, so it appears
only as a record (as in ROAD's masquerade captures, the silenced ECU's frames are simply absent).

Exports: ``LabelledFrames.write`` — ``.csv`` in ROAD's layout (``Time,Id,Byte1..Byte8,Label``,
through the foundation's capture writer), ``.parquet`` with every column, or any capture format
the foundation writes (``.log``, ``.blf``, ``.asc``; labels are then only in the records).
``write_records`` — ``.parquet``, ``.csv`` or ``.json``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, get_args

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from drivetrain.core.can import FrameBatch, FrameLabels, write_capture
from drivetrain.core.errors import BadInputError, CaptureFormatError

AttackKind = Literal["flooding", "fuzzing", "spoofing", "replay", "suspension", "masquerade"]
ATTACK_KINDS: tuple[AttackKind, ...] = get_args(AttackKind)

BENIGN_LABEL = "Benign"
#: The per-frame label of each attack kind (ROAD's names where ROAD has the class).
FRAME_LABELS: Mapping[AttackKind, str] = {
    "flooding": "Flooding",
    "fuzzing": "Fuzzing",
    "spoofing": "Fabrication",
    "replay": "Replay",
    "suspension": "Suspension",
    "masquerade": "Masquerade",
}
#: Dictionary of the ``label`` column: code ``i`` is ``LABEL_NAMES[i]`` (0 = Benign).
LABEL_NAMES: tuple[str, ...] = (BENIGN_LABEL, *(FRAME_LABELS[k] for k in ATTACK_KINDS))


@dataclass(frozen=True)
class AttackRecord:
    """One injected attack.

    ``start_s``/``end_s``: the time span of the frames the attack put on or took off the bus
    (first and last, inclusive). ``can_ids``: every frame id it injected or silenced, sorted.
    ``injected``/``removed``: frames added to and taken off the bus. ``detail``: the parameters.
    """

    kind: AttackKind
    start_s: float
    end_s: float
    can_ids: tuple[int, ...]
    vehicle: str
    injected: int = 0
    removed: int = 0
    detail: str = ""

    @property
    def label(self) -> str:
        """The label its frames carry."""
        return FRAME_LABELS[self.kind]

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "start_s": self.start_s,
            "end_s": self.end_s,
            "can_ids": list(self.can_ids),
            "vehicle": self.vehicle,
            "injected": self.injected,
            "removed": self.removed,
            "detail": self.detail,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> AttackRecord:
        """Build a record from its ``to_dict`` form.

        Raises:
            BadInputError: a missing key, an unknown kind, or a value of the wrong type.
        """
        try:
            kind = data["kind"]
            if kind not in ATTACK_KINDS:
                raise BadInputError(f"attack record: kind {kind!r} is not one of {ATTACK_KINDS}")
            return cls(
                kind=kind,
                start_s=float(data["start_s"]),
                end_s=float(data["end_s"]),
                can_ids=tuple(int(i) for i in data["can_ids"]),
                vehicle=str(data["vehicle"]),
                injected=int(data.get("injected", 0)),
                removed=int(data.get("removed", 0)),
                detail=str(data.get("detail", "")),
            )
        except KeyError as e:
            raise BadInputError(f"attack record: missing key {e.args[0]!r}") from e
        except (TypeError, ValueError) as e:
            raise BadInputError(f"attack record: bad value: {e}") from e


@dataclass(frozen=True)
class LabelledFrames:
    """One vehicle's bus traffic with ground truth.

    ``attack[i]`` is the index in ``records`` of the attack that injected frame ``i``, or -1
    for a genuine frame. Frames are in time order.
    """

    frames: FrameBatch
    attack: npt.NDArray[np.int32]
    records: tuple[AttackRecord, ...] = ()
    vehicle: str = ""

    def __post_init__(self) -> None:
        if len(self.attack) != len(self.frames):
            raise ValueError(f"{len(self.attack)} attack indices for {len(self.frames)} frames")

    @classmethod
    def benign(cls, frames: FrameBatch, vehicle: str = "") -> LabelledFrames:
        """Genuine traffic, sorted by time (stable), every frame labelled ``Benign``."""
        order = np.argsort(frames.timestamp_s, kind="stable")
        return cls(frames.take(order), np.full(len(frames), -1, np.int32), (), vehicle)

    def __len__(self) -> int:
        return len(self.frames)

    @property
    def is_attack(self) -> npt.NDArray[np.bool_]:
        """Per frame: True where an attack injected it."""
        return self.attack >= 0

    @property
    def labels(self) -> FrameLabels:
        """Per-frame labels, dictionary-encoded over ``LABEL_NAMES``."""
        kind_code = np.array([1 + ATTACK_KINDS.index(r.kind) for r in self.records] + [0], np.int32)
        return FrameLabels(kind_code[self.attack], LABEL_NAMES)

    def with_injected(self, injected: FrameBatch, record: AttackRecord) -> LabelledFrames:
        """These frames plus ``injected`` (labelled with ``record``), merged in time order
        (on equal times, frames already on the bus come first)."""
        index = len(self.records)
        frames = FrameBatch.concat([self.frames, injected])
        attack = np.concatenate([self.attack, np.full(len(injected), index, np.int32)])
        order = np.argsort(frames.timestamp_s, kind="stable")
        return LabelledFrames(
            frames.take(order), attack[order], (*self.records, record), self.vehicle
        )

    def without(self, rows: npt.NDArray[np.bool_], record: AttackRecord) -> LabelledFrames:
        """These frames less the ``rows`` selected, with ``record`` appended."""
        keep = ~rows
        return LabelledFrames(
            self.frames.take(keep), self.attack[keep], (*self.records, record), self.vehicle
        )

    # --- export -------------------------------------------------------------------------------
    def to_table(self) -> pa.Table:
        """Every frame as an Arrow table: ``timestamp_s, vehicle, bus, frame_id, is_extended,
        dlc, data`` (the payload bytes), ``label`` (dictionary string), ``attack_id`` (-1 benign)."""
        f = self.frames
        lengths = f.length.astype(np.int64)
        offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int32)
        present = np.arange(f.data.shape[1])[None, :] < lengths[:, None]
        data = pa.BinaryArray.from_buffers(
            pa.binary(),
            len(f),
            [None, pa.py_buffer(offsets), pa.py_buffer(f.data[present].tobytes())],
        )
        labels = self.labels
        return pa.table(
            {
                "timestamp_s": pa.array(f.timestamp_s, pa.float64()),
                "vehicle": pa.DictionaryArray.from_arrays(
                    pa.array(np.zeros(len(f), np.int32)), pa.array([self.vehicle])
                ),
                "bus": pa.array(f.bus, pa.uint16()),
                "frame_id": pa.array(f.frame_id, pa.uint32()),
                "is_extended": pa.array(f.is_extended, pa.bool_()),
                "dlc": pa.array(f.length, pa.uint8()),
                "data": data,
                "label": pa.DictionaryArray.from_arrays(
                    pa.array(labels.codes), pa.array(LABEL_NAMES)
                ),
                "attack_id": pa.array(self.attack, pa.int32()),
            }
        )

    def write(self, path: str | Path) -> None:
        """Write the frames: ``.parquet`` (every column, see ``to_table``), ``.csv`` (ROAD layout
        with the ``Label`` column), or ``.log``/``.blf``/``.asc`` (no labels: use
        ``write_records`` beside it).

        Raises:
            CaptureFormatError: an extension none of these formats uses, or the file cannot be
                written.
        """
        path = Path(path)
        suffix = path.suffix.lower()
        try:
            if suffix == ".parquet":
                pq.write_table(self.to_table(), path)
            elif suffix == ".csv":
                write_capture(path, self.frames, capture_format="road-csv", labels=self.labels)
            elif suffix in (".log", ".blf", ".asc"):
                write_capture(path, self.frames)
            else:
                raise CaptureFormatError(
                    f"cannot write labelled frames to '{path}': extension {suffix!r}; expected "
                    ".parquet, .csv (ROAD layout), .log, .blf or .asc"
                )
        except OSError as e:
            raise CaptureFormatError(f"cannot write '{path}': {e.strerror or e}") from e


def records_table(records: Sequence[AttackRecord]) -> pa.Table:
    """The records as an Arrow table (one row per attack)."""
    return pa.table(
        {
            "kind": pa.array([r.kind for r in records], pa.string()),
            "label": pa.array([r.label for r in records], pa.string()),
            "start_s": pa.array([r.start_s for r in records], pa.float64()),
            "end_s": pa.array([r.end_s for r in records], pa.float64()),
            "can_ids": pa.array([list(r.can_ids) for r in records], pa.list_(pa.uint32())),
            "vehicle": pa.array([r.vehicle for r in records], pa.string()),
            "injected": pa.array([r.injected for r in records], pa.int64()),
            "removed": pa.array([r.removed for r in records], pa.int64()),
            "detail": pa.array([r.detail for r in records], pa.string()),
        }
    )


def write_records(path: str | Path, records: Sequence[AttackRecord]) -> None:
    """Write attack records as ``.parquet``, ``.json`` (a list of objects) or ``.csv`` (ids
    as space-separated hex).

    Raises:
        CaptureFormatError: another extension, or the file cannot be written.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    try:
        if suffix == ".parquet":
            pq.write_table(records_table(records), path)
        elif suffix == ".json":
            path.write_text(json.dumps([r.to_dict() for r in records], indent=1), encoding="utf-8")
        elif suffix == ".csv":
            table = records_table(records)
            ids = pa.array([" ".join(f"{i:X}" for i in r.can_ids) for r in records], pa.string())
            table = table.set_column(table.schema.get_field_index("can_ids"), "can_ids", ids)
            pacsv.write_csv(table, path)
        else:
            raise CaptureFormatError(
                f"cannot write attack records to '{path}': extension {suffix!r}; expected "
                ".parquet, .json or .csv"
            )
    except OSError as e:
        raise CaptureFormatError(f"cannot write '{path}': {e.strerror or e}") from e


def read_records(path: str | Path) -> tuple[AttackRecord, ...]:
    """Read records written by ``write_records`` as ``.json`` or ``.parquet``.

    Raises:
        BadInputError: the file cannot be read or holds something else.
    """
    path = Path(path)
    try:
        if path.suffix.lower() == ".json":
            rows = json.loads(path.read_text(encoding="utf-8"))
        else:
            rows = pq.read_table(path).to_pylist()
    except (OSError, ValueError, pa.ArrowException) as e:
        raise BadInputError(f"cannot read attack records from '{path}': {e}") from e
    if not isinstance(rows, list):
        raise BadInputError(f"'{path}': expected a list of attack records")
    return tuple(AttackRecord.from_dict(row) for row in rows)
