"""Scoring a detector against labelled captures: AUROC, precision/recall/F1 at the operating
threshold, time to the first alert, false alerts per hour and cost per frame.

Alerts are counted as events, as a vehicle reports them: flagged frames of one id less than
:data:`ALERT_MERGE_S` apart are one alert.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass

import numpy as np
import numpy.typing as npt

from drivetrain.core.can import FrameBatch
from drivetrain.edge.ids.model import IdsModel

ALERT_MERGE_S = 1.0
DEFAULT_BATCH_FRAMES = 4096


@dataclass(frozen=True)
class CaptureScore:
    """The figures for one test capture (``latency_s`` None when nothing was attacked or
    nothing attacked was flagged)."""

    frames: int
    attack_frames: int
    auroc: float | None
    precision: float
    recall: float
    f1: float
    latency_s: float | None
    us_per_frame: float  # CPU time of the scoring process per frame (the cost on one core)
    us_per_frame_wall: float  # wall-clock time per frame (longer when the machine is shared)
    false_alerts: int
    false_alerts_per_h: float
    benign_hours: float

    def to_dict(self) -> dict[str, float | int | None]:
        return asdict(self)


def auroc(scores: npt.NDArray[np.float64], positive: npt.NDArray[np.bool_]) -> float | None:
    """Area under the ROC curve (Mann-Whitney, ties counted half); None without both classes."""
    n_pos = int(positive.sum())
    n_neg = len(positive) - n_pos
    if n_pos == 0 or n_neg == 0:
        return None
    order = np.argsort(scores, kind="mergesort")
    sorted_scores = scores[order]
    ranks = np.empty(len(scores))
    # average ranks over ties
    _, start, counts = np.unique(sorted_scores, return_index=True, return_counts=True)
    avg = start + (counts - 1) / 2.0 + 1.0
    ranks[order] = np.repeat(avg, counts)
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def count_alerts(times: npt.NDArray[np.float64], rows: npt.NDArray[np.intp]) -> int:
    """Flagged frames grouped into alerts: per id, frames less than ``ALERT_MERGE_S`` apart."""
    total = 0
    for r in np.unique(rows):
        t = np.sort(times[rows == r])
        total += 1 + int((np.diff(t) >= ALERT_MERGE_S).sum())
    return total


def score_capture(
    model: IdsModel,
    frames: FrameBatch,
    is_attack: npt.NDArray[np.bool_],
    *,
    batch_frames: int = DEFAULT_BATCH_FRAMES,
) -> CaptureScore:
    """Stream a labelled capture through a fresh scorer in batches and score the result."""
    stream = model.stream()
    parts = []
    cpu = wall = 0.0
    for start in range(0, len(frames), batch_frames):
        batch = frames.take(np.arange(start, min(start + batch_frames, len(frames))))
        c0, w0 = time.process_time(), time.perf_counter()
        parts.append(stream.score(batch))
        cpu += time.process_time() - c0
        wall += time.perf_counter() - w0
    scores = np.concatenate([p.score for p in parts]) if parts else np.zeros(0)
    rows = np.concatenate([p.row for p in parts]) if parts else np.zeros(0, np.intp)
    alert = scores > 1.0
    tp = int((alert & is_attack).sum())
    fp = int((alert & ~is_attack).sum())
    fn = int((~alert & is_attack).sum())
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    t = frames.timestamp_s
    latency = None
    if is_attack.any():
        first_attack = float(t[is_attack].min())
        hits = alert & (t >= first_attack)
        if hits.any():
            latency = float(t[hits].min() - first_attack)
    false_rows = alert & ~is_attack
    false_alerts = count_alerts(t[false_rows], rows[false_rows])
    hours = float(t.max() - t.min()) / 3600.0 if len(t) else 0.0
    return CaptureScore(
        frames=len(frames),
        attack_frames=int(is_attack.sum()),
        auroc=auroc(scores, is_attack),
        precision=precision,
        recall=recall,
        f1=f1,
        latency_s=latency,
        us_per_frame=cpu / max(len(frames), 1) * 1e6,
        us_per_frame_wall=wall / max(len(frames), 1) * 1e6,
        false_alerts=false_alerts,
        false_alerts_per_h=false_alerts / hours if hours else 0.0,
        benign_hours=hours,
    )
