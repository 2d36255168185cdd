"""`drivetrain ids` (train a detector from benign captures, score a capture) and
`drivetrain bench ids` (the detector on labelled captures, leave the test captures out)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import numpy as np
import numpy.typing as npt
import typer

from drivetrain.commands.db import fail
from drivetrain.commands.output import (
    Column,
    JsonOption,
    emit_json,
    print_table,
    stderr_console,
    stdout_console,
)
from drivetrain.core.errors import BadInputError

if TYPE_CHECKING:
    from cantools.database import Database

    from drivetrain.core.can import FrameBatch

app = typer.Typer(
    help="In-vehicle intrusion detection: train on benign CAN captures, score captures.",
    no_args_is_help=True,
)

BENIGN = "Benign"


def _load(path: Path) -> tuple[FrameBatch, npt.NDArray[np.bool_] | None]:
    """A capture's frames (time order) and, when it is labelled, which frames are attacks."""
    from drivetrain.core.can import read_capture

    try:
        capture = read_capture(path)
    except BadInputError as e:
        fail(e)
    frames = capture.frames
    order = np.argsort(frames.timestamp_s, kind="stable")
    frames = frames.take(order)
    if capture.labels is None:
        return frames, None
    codes = capture.labels.codes[order]
    names = capture.labels.names
    benign = names.index(BENIGN) if BENIGN in names else -1
    return frames, codes != benign


def _dbc(path: Path | None) -> Database | None:
    """The vehicle's DBC for the signal checks (None: no DBC given)."""
    if path is None:
        return None
    from drivetrain.core.can import load_dbc

    try:
        return load_dbc(path).database
    except BadInputError as e:
        fail(e)


def _benign(paths: list[Path]) -> list[FrameBatch]:
    out = []
    for p in paths:
        frames, attack = _load(p)
        out.append(frames if attack is None else frames.take(~attack))
    return out


@app.command("train")
def train(
    captures: Annotated[
        list[Path], typer.Argument(help="Benign captures (labelled ones: benign rows only).")
    ],
    out: Annotated[Path, typer.Option("--out", "-o", help="Model file to write (.npz).")] = Path(
        "ids-model.npz"
    ),
    dbc: Annotated[
        Path | None,
        typer.Option(
            "--dbc", help="The vehicle's DBC: adds range and rate checks on decoded signals."
        ),
    ] = None,
    rule_drives: Annotated[
        int,
        typer.Option(
            "--rule-drives",
            min=1,
            help="Different benign drives that must show both sides of a cross-id rule before "
            "it is kept (copies of one recording are one drive).",
        ),
    ] = 2,
    json_out: JsonOption = False,
) -> None:
    """Learn a detector from benign traffic only and write a versioned model file."""
    from drivetrain.edge import train_model

    database = _dbc(dbc)
    start = time.perf_counter()
    try:
        model = train_model(
            _benign(captures),
            description=", ".join(p.name for p in captures),
            dbc=database,
            rule_drives=rule_drives,
        )
    except BadInputError as e:
        fail(e)
    model.save(out)
    summary = {"model": str(out), "train_s": round(time.perf_counter() - start, 2), **model.meta}
    if json_out:
        emit_json(summary)
        return
    stdout_console().print(
        f"wrote {out}: {model.meta['ids']} ids, {model.meta['trained_frames']:,} benign frames, "
        f"{summary['train_s']} s"
    )


@app.command("detect")
def detect(
    capture: Annotated[Path, typer.Argument(help="Capture to score (candump, ASC, BLF, CSV).")],
    model_path: Annotated[Path, typer.Option("--model", "-m", help="Model file from `ids train`.")],
    json_out: JsonOption = False,
) -> None:
    """Score a capture and list the security events it raises."""
    from drivetrain.edge import IdsModel, IdsModelError, events_from

    try:
        model = IdsModel.load(model_path)
    except IdsModelError as e:
        fail(e)
    frames, _ = _load(capture)
    stream = model.stream()
    events = []
    for start in range(0, len(frames), 4096):
        batch = frames.take(np.arange(start, min(start + 4096, len(frames))))
        events += events_from(model, batch, stream.score(batch))
    if json_out:
        emit_json(
            {
                "capture": str(capture),
                "frames": len(frames),
                "events": [e.to_dict() for e in events],
            }
        )
        return
    if not events:
        stdout_console().print(f"no security events in {len(frames):,} frames of {capture.name}")
        return
    print_table(
        f"{len(events)} security events in {capture.name}",
        [
            Column("first_s", "number"),
            Column("last_s", "number"),
            Column("sensor"),
            Column("id", "id"),
            Column("count", "number"),
            Column("score", "number"),
        ],
        [[e.first_s, e.last_s, e.sensor, e.can_id, e.count, e.score] for e in events],
    )


BENCH_CONTEXT = {"allow_extra_args": True, "ignore_unknown_options": True}


def _bench_arguments(
    args: list[str],
) -> tuple[list[Path], list[Path], Path | None, Path | None]:
    """``--train FILE… --test FILE… [--json OUT] [--dbc FILE]`` (each option takes every file up
    to the next option, as a shell glob expands)."""
    lists: dict[str, list[str]] = {"--train": [], "--test": [], "--json": [], "--dbc": []}
    current: str | None = None
    for token in args:
        if token.startswith("--"):
            name, _, value = token.partition("=")
            if name not in lists:
                fail(
                    f"unknown option {name!r}; expected --train FILE… --test FILE… "
                    "[--json OUT] [--dbc FILE]"
                )
            current = name
            if value:
                lists[name].append(value)
        elif current is None:
            fail(f"{token!r} comes before any option; expected --train FILE… --test FILE…")
        else:
            lists[current].append(token)
    if not lists["--train"] or not lists["--test"]:
        fail("give at least one --train capture and one --test capture")
    for single in ("--json", "--dbc"):
        if len(lists[single]) > 1:
            fail(f"{single} takes one file, got {len(lists[single])}")
    for name in ("--train", "--test", "--dbc"):
        for f in lists[name]:
            if not Path(f).is_file():
                fail(f"{name} {f}: no such file")
    out = Path(lists["--json"][0]) if lists["--json"] else None
    dbc = Path(lists["--dbc"][0]) if lists["--dbc"] else None
    return [Path(f) for f in lists["--train"]], [Path(f) for f in lists["--test"]], out, dbc


def bench_ids(ctx: typer.Context) -> None:
    """drivetrain bench ids --train FILE… --test FILE… [--json OUT] [--dbc FILE]

    Train on the benign rows of the --train captures only, then score each --test capture
    (labelled, e.g. ROAD CSV `Time,Id,Byte1..Byte8,Label`): AUROC, precision, recall and F1 at
    the threshold fixed from benign data, time from attack start to first alert, false alerts
    per hour (flagged frames of one id within 1 s are one alert) and microseconds per frame.
    --json OUT writes {"captures": {stem: {...}}, "mean_auroc": ...}. --dbc FILE (the
    vehicle's DBC) adds range and rate checks on decoded signals.
    """
    train_paths, test_paths, json_path, dbc_path = _bench_arguments(list(ctx.args))
    from drivetrain.edge import score_capture, train_model

    err = stderr_console()
    start = time.perf_counter()
    try:
        model = train_model(_benign(train_paths), dbc=_dbc(dbc_path))
    except BadInputError as e:
        fail(e)
    err.print(
        f"trained on {model.meta['trained_frames']:,} benign frames in {time.perf_counter() - start:.1f} s"
    )
    captures: dict[str, dict[str, float | int | None]] = {}
    for path in test_paths:
        frames, attack = _load(path)
        if attack is None:
            fail(f"--test {path}: not labelled (a ROAD CSV with a Label column is expected)")
        captures[path.stem] = score_capture(model, frames, attack).to_dict()
    aurocs = [c["auroc"] for c in captures.values() if c["auroc"] is not None]
    document = {"captures": captures, "mean_auroc": float(np.mean(aurocs)) if aurocs else None}
    if json_path is not None:
        json_path.write_text(json.dumps(document, indent=2))
    print_table(
        "IDS, trained on benign traffic only",
        [
            Column("capture", "id"),
            Column("AUROC", "number"),
            Column("precision", "number"),
            Column("recall", "number"),
            Column("F1", "number"),
            Column("latency_s", "number"),
            Column("false alerts/h", "number"),
            Column("us/frame", "number"),
        ],
        [
            [
                name,
                c["auroc"],
                c["precision"],
                c["recall"],
                c["f1"],
                c["latency_s"],
                c["false_alerts_per_h"],
                c["us_per_frame"],
            ]
            for name, c in captures.items()
        ],
    )
