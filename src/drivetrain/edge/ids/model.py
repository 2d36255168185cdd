"""The intrusion-detection model: training from benign captures, a versioned file, scoring.

Training (:func:`train_model`) splits the benign traffic into segments (one per capture; the two
halves of each when there are fewer than three), groups copies of one drive, fits every detector
on all drives but the held-out ones and runs it over those, and stops trusting every cell (an
id's byte or bit, a rule, an id's timing) that raised a score on that benign traffic (a measured
byte's range is widened instead); a cross-id rule no fold found was never tried held out and is
dropped. The final detectors are fitted on every
segment with those cells removed, so the operating threshold — a normalised score above 1 — is
fixed from benign data alone.

The file (``.npz``, arrays only, no pickles) carries ``FORMAT`` and ``VERSION``; loading checks
both and maps every failure to :class:`IdsModelError`.
"""

from __future__ import annotations

import io
import json
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from cantools.database import Database

from drivetrain.core.can import FrameBatch
from drivetrain.core.errors import BadInputError, DbcFormatError
from drivetrain.edge.ids.crossbit import CrossBitDetector, PartnerRules
from drivetrain.edge.ids.crossvalue import CrossValueDetector
from drivetrain.edge.ids.detectors import Detector, payload_detectors
from drivetrain.edge.ids.ordinal import ByteRangeDetector
from drivetrain.edge.ids.reaction import AGAINST_PREVIOUS, ReactionGuard
from drivetrain.edge.ids.signals import SignalRangeRateDetector
from drivetrain.edge.ids.stream import IdTable, StreamState, advance, index_batch, relink
from drivetrain.edge.ids.timing import TimingDetector

FORMAT = "drivetrain-ids-model"
VERSION = 1
MAX_MODEL_BYTES = 64 * 1024 * 1024
_MAX_FOLDS = 4
_CALIBRATION_BATCH = 8192
RULE_DRIVES = 2  # different drives that must show both sides of a cross-id rule
_SAME_DRIVE = 0.5  # share of once-seen (id, payload) pairs above which two segments are one drive


class IdsModelError(BadInputError):
    """A model file that is not a readable intrusion-detection model of a supported version."""


@dataclass(frozen=True)
class ScoredFrames:
    """Per frame of a batch: the normalised score (alert above 1) and the detector that gave
    it (an index into :attr:`IdsModel.detector_names`)."""

    score: npt.NDArray[np.float64]
    detector: npt.NDArray[np.int8]
    row: npt.NDArray[np.intp]

    @property
    def alert(self) -> npt.NDArray[np.bool_]:
        out: npt.NDArray[np.bool_] = self.score > 1.0
        return out


class IdsModel:
    """Fitted detectors over one vehicle model's id table."""

    def __init__(
        self, ids: IdTable, detectors: list[Detector], timing: TimingDetector, meta: dict[str, Any]
    ) -> None:
        self.ids = ids
        self.detectors = detectors
        self.timing = timing
        self.meta = meta

    @property
    def rule_drives(self) -> int | None:
        """The ``rule_drives`` the model was trained with (None: a file written before it was
        recorded)."""
        value = self.meta.get("rule_drives")
        return int(value) if isinstance(value, int) else None

    @property
    def detector_names(self) -> tuple[str, ...]:
        return (*(d.name for d in self.detectors), self.timing.name)

    def stream(self) -> IdsStream:
        """A scorer for one bus, with its own state (start one per capture or bus)."""
        return IdsStream(self)

    # --- file -----------------------------------------------------------------------------

    def save(self, path: str | Path) -> None:
        Path(path).write_bytes(self.to_bytes())

    @classmethod
    def load(cls, path: str | Path) -> IdsModel:
        """Read a model file.

        Raises:
            IdsModelError: missing, too large, not an ``.npz`` of ours, another format or
                version, or arrays of the wrong shape.
        """
        p = Path(path)
        try:
            size = p.stat().st_size
        except OSError as e:
            raise IdsModelError(f"model file '{p}' cannot be read: {e.strerror or e}") from e
        if size > MAX_MODEL_BYTES:
            raise IdsModelError(
                f"model file '{p}' is {size} bytes; at most {MAX_MODEL_BYTES} expected"
            )
        try:
            data = p.read_bytes()
        except OSError as e:
            raise IdsModelError(f"model file '{p}' cannot be read: {e.strerror or e}") from e
        return cls.from_bytes(data, str(p))

    def to_bytes(self) -> bytes:
        """The model file's bytes (what :meth:`save` writes)."""
        arrays: dict[str, npt.NDArray[Any]] = {"ids": self.ids.keys}
        parts: list[Detector | TimingDetector] = [*self.detectors, self.timing]
        for d in parts:
            for key, value in d.state().items():
                arrays[f"{d.name}.{key}"] = value
        header = {
            **self.meta,
            "format": FORMAT,
            "version": VERSION,
            "detectors": [d.name for d in self.detectors],
        }
        arrays["header"] = np.frombuffer(json.dumps(header).encode(), np.uint8)
        buffer = io.BytesIO()
        np.savez_compressed(buffer, **arrays)  # type: ignore[arg-type]
        return buffer.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes, where: str = "<bytes>") -> IdsModel:
        """A model from the bytes of a model file (``where`` names it in errors).

        Raises:
            IdsModelError: as :meth:`load`.
        """
        p = where
        if len(data) > MAX_MODEL_BYTES:
            raise IdsModelError(
                f"model file '{p}' is {len(data)} bytes; at most {MAX_MODEL_BYTES} expected"
            )
        try:
            with np.load(io.BytesIO(data), allow_pickle=False) as npz:
                arrays = {k: npz[k] for k in npz.files}
            header = json.loads(bytes(arrays.pop("header")).decode())
        except (
            OSError,
            ValueError,
            KeyError,
            zipfile.BadZipFile,
            UnicodeDecodeError,
            EOFError,
        ) as e:
            raise IdsModelError(
                f"model file '{p}' is not an intrusion-detection model (.npz): {e}"
            ) from e
        if not isinstance(header, dict) or header.get("format") != FORMAT:
            raise IdsModelError(
                f"model file '{p}' has format {header.get('format') if isinstance(header, dict) else None!r}; expected {FORMAT!r}"
            )
        if header.get("version") != VERSION:
            raise IdsModelError(
                f"model file '{p}' is version {header.get('version')!r}; this build reads version {VERSION}"
            )
        ids = IdTable(arrays.pop("ids"))
        # a header without the list: the detectors every model ran before ``signal_range``
        names = tuple(header.get("detectors", _LEGACY_DETECTORS))
        if not set(names) <= {*DETECTOR_NAMES, TimingDetector.name}:
            raise IdsModelError(f"model file '{p}' names unknown detectors {names}")
        detectors = _new_detectors(names, loading=True)
        timing = TimingDetector()
        try:
            loaded: list[Detector | TimingDetector] = [*detectors, timing]
            for d in loaded:
                prefix = f"{d.name}."
                d.load({k[len(prefix) :]: v for k, v in arrays.items() if k.startswith(prefix)})
        except (KeyError, ValueError, TypeError, IndexError, DbcFormatError) as e:
            raise IdsModelError(f"model file '{p}' has missing or malformed arrays: {e}") from e
        meta = {k: v for k, v in header.items() if k not in ("format", "version")}
        model = cls(ids, detectors, timing, meta)
        model.check_shapes(p)
        return model

    def check_shapes(self, where: str) -> None:
        rows = len(self.ids) + 1
        if len(self.timing.period) != rows:
            raise IdsModelError(
                f"model file '{where}': timing arrays have {len(self.timing.period)} rows, expected {rows}"
            )


class IdsStream:
    """Scores the frames of one bus, batch after batch, in time order."""

    def __init__(self, model: IdsModel) -> None:
        self.model = model
        self.state = StreamState(len(model.ids) + 1)
        self.reaction = ReactionGuard(len(model.ids) + 1)
        model.timing.reset()

    def score(self, frames: FrameBatch) -> ScoredFrames:
        """Score one batch (frames in time order, after those of the previous batch).

        Order matters: frame-level detectors first; then the cross-signal check, once against
        every frame and again, for the frames it flagged, against accepted partners only; then
        the sequence detectors against the previous accepted frame of each id; then timing.
        Once the bus is known to be fuzzed, payload-only detectors stay below the threshold on
        known ids (:mod:`drivetrain.edge.ids.reaction`).
        """
        m = self.model
        view = index_batch(frames, m.ids, self.state)
        n = len(frames)
        best = np.zeros(n)
        which = np.zeros(n, np.int8)
        guard = self.reaction
        guard.begin(view, len(m.ids), IdTable.keys_of(frames.frame_id, frames.is_extended))
        names = m.detector_names
        blamed = np.zeros(n, np.bool_)

        def take(i: int, raw: npt.NDArray[np.float64], floor: float) -> None:
            s = guard.judge(names[i], raw / floor)
            if names[i] in AGAINST_PREVIOUS and blamed.any():
                s = np.where(blamed, 0.0, s)
            better = s > best
            best[better] = s[better]
            which[better] = i

        for i, d in enumerate(m.detectors):
            if d.stage == "frame":
                take(i, d.score(view), d.floor)
        frame_level = best.copy()
        for i, d in enumerate(m.detectors):
            if d.stage == "partners":
                first = d.score(view)
                suspect = (first / d.floor > 1.0) & (frame_level <= 1.0)
                if suspect.any() and isinstance(d, (CrossBitDetector, CrossValueDetector)):
                    second = d.rescore(relink(view, (best <= 1.0) & ~suspect), suspect)
                    first = np.where(suspect, second, first)
                take(i, first, d.floor)
        linked = relink(view, best <= 1.0)
        blamed[:] = guard.blamed_on_previous(view, best <= 1.0)
        for i, d in enumerate(m.detectors):
            if d.stage == "sequence":
                take(i, d.score(linked), d.floor)
        take(len(m.detectors), m.timing.score_accepted(view, best <= 1.0), m.timing.floor)
        guard.end(view, best <= 1.0)
        advance(self.state, relink(view, best <= 1.0))
        return ScoredFrames(best, which, view.row)


#: Every detector a model can run, by name (timing always runs).
DETECTOR_NAMES = (
    "unknown_id",
    "byte_value",
    "constant_bit",
    "bit_flip",
    "counter",
    "cross_signal",
    "cross_value",
    "signal_range",
    "byte_range",
)
#: What a model file without a detector list ran (every detector before ``signal_range``).
_LEGACY_DETECTORS = DETECTOR_NAMES[:7]
#: What :func:`train_model` runs unless told otherwise: every detector. ``cross_value`` takes the
#: ROAD reverse-light masquerade (leave one out) from AUROC 0.715 / F1 0.003 to 1.000 / 0.998,
#: at the cost of more false alerts on correlated_signal_attack_2_masquerade (14 to 29, F1
#: 0.983 to 0.979, still above 0.90); see docs/benchmarks.md.
#: ``signal_range`` runs only when the model is trained with the vehicle's DBC (ROAD captures come
#: without one, so their figures are those of the other detectors).
DEFAULT_DETECTORS = DETECTOR_NAMES


def _new_detectors(
    names: tuple[str, ...] = DETECTOR_NAMES,
    dbc: Database | None = None,
    *,
    loading: bool = False,
) -> list[Detector]:
    """The named detectors; ``signal_range`` only with a DBC (or, ``loading``, to be filled
    from a model file)."""
    detectors: list[Detector] = [
        *payload_detectors(),
        ByteRangeDetector(),
        CrossBitDetector(),
        CrossValueDetector(),
    ]
    if dbc is not None or loading:
        detectors.append(SignalRangeRateDetector(dbc))
    return [d for d in detectors if d.name in names]


def _segments(captures: list[FrameBatch]) -> list[FrameBatch]:
    """Calibration segments: each capture, or each half of each when there are fewer than 3."""
    captures = [c for c in captures if len(c)]
    if len(captures) >= 3:
        return captures
    out = []
    for c in captures:
        half = len(c) // 2
        out += [c.take(np.arange(half)), c.take(np.arange(half, len(c)))]
    return [s for s in out if len(s)]


def _fingerprint(segment: FrameBatch) -> npt.NDArray[np.uint64]:
    """The (id, payload) pairs a segment carries exactly once, hashed: a varying signal's
    payloads, which another drive almost never repeats and a copy of the drive always does."""
    payload = np.zeros((len(segment), 8), np.uint8)
    width = min(8, segment.data.shape[1])
    payload[:, :width] = segment.data[:, :width]
    key = IdTable.keys_of(segment.frame_id, segment.is_extended).astype(np.uint64)
    hashed = payload.view(np.uint64).ravel() ^ (key * np.uint64(0x9E3779B97F4A7C15))
    values, counts = np.unique(hashed, return_counts=True)
    out: npt.NDArray[np.uint64] = values[counts == 1]
    return out


def _drives(segments: list[FrameBatch]) -> list[list[int]]:
    """Segments grouped by drive: two segments that share most of their once-seen (id,
    payload) pairs are one recording (a capture and a relabelled or edited copy of it), and a
    held-out segment whose copy stays in training proves nothing. Different drives of ROAD's
    vehicle share at most 5 % of those pairs, copies of one drive all of them."""
    prints = [_fingerprint(s) for s in segments]
    group = list(range(len(segments)))
    for i in range(len(segments)):
        for j in range(i):
            small = min(len(prints[i]), len(prints[j]))
            common = len(np.intersect1d(prints[i], prints[j], assume_unique=True))
            if small and common >= _SAME_DRIVE * small:
                old, new = group[i], group[j]
                group = [new if g == old else g for g in group]
    drives: dict[int, list[int]] = {}
    for i, g in enumerate(group):
        drives.setdefault(g, []).append(i)
    return list(drives.values())


def _folds(drives: list[list[int]], segments: int) -> list[list[int]]:
    """Held-out sets for calibration: whole drives, at most ``_MAX_FOLDS`` of them (each
    segment alone when everything is one drive, e.g. the two halves of one capture)."""
    if len(drives) < 2:
        drives = [[i] for i in range(segments)]
    parts = np.array_split(np.arange(len(drives)), min(_MAX_FOLDS, len(drives)))
    return [[i for d in part.tolist() for i in drives[d]] for part in parts]


def _fit(
    ids: IdTable,
    segments: list[FrameBatch],
    names: tuple[str, ...],
    dbc: Database | None,
    drive_of: list[int],
    rule_drives: int,
) -> tuple[list[Detector], TimingDetector, list[Any]]:
    views = [index_batch(s, ids, StreamState(len(ids) + 1)) for s in segments]
    detectors = _new_detectors(names, dbc)
    for d in detectors:
        if isinstance(d, (CrossBitDetector, CrossValueDetector)):
            d.min_drives, d.drive_of = rule_drives, drive_of
        d.fit(ids, views)
    timing = TimingDetector()
    timing.fit(ids, views)
    return detectors, timing, views


def _collect_fired(
    segment: FrameBatch,
    ids: IdTable,
    detectors: list[Detector],
    timing: TimingDetector,
    banned: dict[str, set[tuple[int, ...]]],
) -> None:
    """Run fold-fitted detectors over a held-out benign segment, batch by batch as on the
    vehicle, and collect every cell that fired."""
    state = StreamState(len(ids) + 1)
    timing.reset()
    for start in range(0, len(segment), _CALIBRATION_BATCH):
        batch = segment.take(np.arange(start, min(start + _CALIBRATION_BATCH, len(segment))))
        view = index_batch(batch, ids, state)
        best = np.zeros(len(view))
        for d in detectors:
            banned.setdefault(d.name, set()).update(d.fired(view, ids))
            best = np.maximum(best, d.score(view) / d.floor)
        banned.setdefault(timing.name, set()).update(timing.fired(view, ids, best <= 1.0))
        advance(state, view)


def train_model(
    captures: list[FrameBatch],
    *,
    description: str = "",
    detectors: tuple[str, ...] = DEFAULT_DETECTORS,
    dbc: Database | None = None,
    rule_drives: int = RULE_DRIVES,
) -> IdsModel:
    """Train on benign traffic only (``captures``: benign frames, each in time order).
    ``detectors`` selects the payload detectors (the benchmark's baseline runs a subset;
    ``DETECTOR_NAMES`` runs every one, ``cross_value`` included). ``dbc``, the vehicle's DBC
    when it is known, adds the range and rate checks on decoded signals (``signal_range``).
    ``rule_drives``: how many different benign drives must show both sides of a learned
    cross-id rule (``cross_signal``, ``cross_value``) before it is kept (copies of one recording
    count as one drive); the model records it (``meta["rule_drives"]``).

    Raises:
        BadInputError: no frames to learn from, or an unknown detector name.
    """
    if rule_drives < 1:
        raise BadInputError(f"rule_drives must be at least 1, got {rule_drives}")
    unknown = set(detectors) - set(DETECTOR_NAMES)
    if unknown:
        raise BadInputError(
            f"unknown detectors {sorted(unknown)}; expected some of {DETECTOR_NAMES}"
        )
    segments = _segments(captures)
    if not segments or sum(len(s) for s in segments) < 100:
        raise BadInputError("training needs at least 100 benign frames; the captures hold fewer")
    all_keys = np.concatenate([IdTable.keys_of(s.frame_id, s.is_extended) for s in segments])
    ids = IdTable(all_keys)
    drives = _drives(segments)
    drive_of = [0] * len(segments)
    for number, members in enumerate(drives):
        for i in members:
            drive_of[i] = number
    banned: dict[str, set[tuple[int, ...]]] = {}
    tested: dict[str, set[tuple[int, ...]]] = {}
    for held in _folds(drives, len(segments)):
        train = [s for i, s in enumerate(segments) if i not in set(held)]
        if not train:
            continue
        fold_keys = np.concatenate([IdTable.keys_of(s.frame_id, s.is_extended) for s in train])
        fold_ids = IdTable(fold_keys)
        fold_drives = [drive_of[i] for i in range(len(segments)) if i not in set(held)]
        fold_detectors, timing, _ = _fit(fold_ids, train, detectors, dbc, fold_drives, rule_drives)
        for d in fold_detectors:
            if isinstance(d, PartnerRules):
                tested.setdefault(d.name, set()).update(d.cells(fold_ids))
        for i in held:
            _collect_fired(segments[i], fold_ids, fold_detectors, timing, banned)
    fitted, timing, _ = _fit(ids, segments, detectors, dbc, drive_of, rule_drives)
    final: list[Detector | TimingDetector] = [*fitted, timing]
    for detector in final:
        if isinstance(detector, PartnerRules):
            # a rule mined only from every drive together was never tried on a held-out drive
            untested = detector.cells(ids) - tested.get(detector.name, set())
            banned.setdefault(detector.name, set()).update(untested)
        detector.ban(banned.get(detector.name, set()), ids)
    meta = {
        "trained_frames": int(sum(len(s) for s in segments)),
        "segments": len(segments),
        "ids": len(ids),
        "banned_cells": {k: len(v) for k, v in banned.items()},
        "rule_drives": rule_drives,
        "description": description,
    }
    meta["detectors"] = [d.name for d in fitted]
    return IdsModel(ids, fitted, timing, meta)
