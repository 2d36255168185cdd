"""`drivetrain can` commands: decode captures with a DBC, and inspect DBC files."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn
from rich.text import Text

from drivetrain.commands.output import Column, JsonOption, emit_json, print_table
from drivetrain.core.errors import DrivetrainError

if TYPE_CHECKING:
    from cantools.database.can import Message, Signal

app = typer.Typer(
    help="CAN tools: decode captures with a DBC (optionally to VSS), inspect DBC files.",
    no_args_is_help=True,
)

#: Malformed-line reports printed before "and N more".
SHOWN_MALFORMED = 5


def _fail(console: Console, error: DrivetrainError) -> typer.Exit:
    console.print(Text.assemble(("error:", "bold red"), f" {error}"), highlight=False)
    return typer.Exit(code=1)


@app.command("decode")
def decode(
    capture: Annotated[Path, typer.Argument(
        help="Capture file: candump .log, .asc, .blf, or CSV (t_s,bus,address,data_hex or ROAD)."
    )],
    dbc: Annotated[Path, typer.Option(
        "--dbc", help="DBC file to decode with (IMPORTs are resolved).")],
    out: Annotated[Path, typer.Option(
        "--out", help="Parquet file to write (replaced only on success).")],
    signal_map: Annotated[Path | None, typer.Option(
        "--map", help="DBC→VSS signal map (TOML/YAML): write VSS paths and converted values.",
    )] = None,
    bus: Annotated[int | None, typer.Option(
        "--bus", help="Decode only this bus (default: every bus).")] = None,
    strict: Annotated[bool, typer.Option(
        "--strict", help="Stop at the first malformed capture line instead of skipping it.",
    )] = False,
) -> None:
    """Decode a CAN capture with a DBC into Parquet, one row per signal value."""
    from drivetrain.core.can import DecodeProgress, decode_capture

    console = Console(stderr=True, soft_wrap=True)
    out_console = Console(highlight=False, soft_wrap=True)
    progress = Progress(
        TextColumn("decoding [bold]{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TextColumn("{task.fields[frames]:,} frames"),
        TimeRemainingColumn(),
        console=console,
        transient=True,
    )
    task = progress.add_task(capture.name, total=None, frames=0)

    def advance(update: DecodeProgress) -> None:
        progress.update(task, completed=update.bytes_read, total=update.bytes_total, frames=update.frames_read)

    try:
        with progress:
            summary = decode_capture(
                capture, dbc, out, signal_map=signal_map, bus=bus, progress=advance, strict=strict
            )
    except DrivetrainError as e:
        raise _fail(console, e) from e

    kind = "VSS values" if summary.vss_mapped else "signal values"
    out_console.print(
        f"{summary.frames_read:,} frames, {summary.signal_values:,} {kind} -> {summary.out_path} "
        f"in {summary.seconds:.2f} s ({summary.frames_per_s:,.0f} frames/s)"
    )
    if summary.frames_unknown_id:
        top = ", ".join(f"{fid:#x} ({n:,})" for fid, n in summary.top_unknown_ids)
        out_console.print(
            f"{summary.frames_unknown_id:,} frames with ids not in {dbc.name} (not decoded); "
            f"most frequent: {top}"
        )
    if summary.frames_truncated:
        out_console.print(
            f"{summary.frames_truncated:,} frames shorter than their DBC message: "
            f"{summary.values_missing:,} values not received, written as null"
        )
    if summary.frames_rejected:
        out_console.print(f"{summary.frames_rejected:,} multiplexed frames with no matching branch (no values)")
    if summary.frames_other_bus:
        out_console.print(f"{summary.frames_other_bus:,} frames on other buses left out (--bus {bus})")
    for report in summary.malformed[:SHOWN_MALFORMED]:
        out_console.print(f"malformed: {report}", markup=False)
    if summary.malformed_count > SHOWN_MALFORMED:
        out_console.print(f"... and {summary.malformed_count - SHOWN_MALFORMED:,} more malformed lines")


def _frame_id(message: Message) -> str:
    return f"{message.frame_id:#010x}" if message.is_extended_frame else f"{message.frame_id:#05x}"


def _signal_record(signal: Signal) -> dict[str, object]:
    return {
        "name": signal.name,
        "start_bit": signal.start,
        "length": signal.length,
        "byte_order": signal.byte_order,
        "signed": signal.is_signed,
        "float": signal.is_float,
        "scale": signal.scale,
        "offset": signal.offset,
        "minimum": signal.minimum,
        "maximum": signal.maximum,
        "unit": signal.unit,
        "receivers": list(signal.receivers),
        "multiplexer": signal.is_multiplexer,
        "multiplexer_ids": list(signal.multiplexer_ids or []),
        "choices": {str(k): str(v) for k, v in (signal.choices or {}).items()},
        "comment": signal.comment,
    }


def _message_record(message: Message) -> dict[str, object]:
    return {
        "id": message.frame_id,
        "extended": message.is_extended_frame,
        "name": message.name,
        "length": message.length,
        "senders": list(message.senders),
        "cycle_time_ms": message.cycle_time,
        "multiplexed": message.is_multiplexed(),
        "comment": message.comment,
        "signals": [_signal_record(s) for s in message.signals],
    }


def _matches(message: Message, wanted: list[str]) -> bool:
    for item in wanted:
        if item == message.name:
            return True
        try:
            if int(item, 0) == message.frame_id:
                return True
        except ValueError:
            continue
    return False


def _print_signals(console: Console, message: Message) -> None:
    from cantools.subparsers.dump.formatting import layout_string

    cycle = f", every {message.cycle_time} ms" if message.cycle_time else ""
    console.print(
        f"\n{message.name} ({_frame_id(message)}, {message.length} bytes{cycle}; sent by "
        f"{', '.join(message.senders) or 'nobody named'})", markup=False,
    )
    console.print(layout_string(message, signal_names=True),  # type: ignore[no-untyped-call]
                  markup=False)
    columns = [Column("signal", "id"), Column("start", "number"), Column("bits", "number"),
               Column("order"), Column("type"), Column("scale", "number"),
               Column("offset", "number"), Column("min", "number"), Column("max", "number"),
               Column("unit"), Column("mux"), Column("receivers")]
    rows = []
    for signal in message.signals:
        kind = "float" if signal.is_float else "signed" if signal.is_signed else "unsigned"
        mux = "selector" if signal.is_multiplexer else ",".join(
            str(i) for i in signal.multiplexer_ids or [])
        rows.append((signal.name, signal.start, signal.length,
                     "little" if signal.byte_order == "little_endian" else "big", kind,
                     signal.scale, signal.offset, signal.minimum, signal.maximum,
                     signal.unit or "", mux, ", ".join(signal.receivers)))
    print_table(None, columns, rows, console)


@app.command("info")
def info(
    dbc: Annotated[Path, typer.Argument(help="DBC file to describe.")],
    signals: Annotated[
        bool,
        typer.Option("--signals", help="Each message's bit layout and signals (start bit, "
                     "length, byte order, scale, offset, range, unit), like `cantools dump`."),
    ] = False,
    message: Annotated[
        list[str] | None,
        typer.Option("--message", "-m", help="Only this message, by name or id (repeat)."),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """List a DBC's messages and signals, and what the loader resolved (IMPORTs, repairs)."""
    from drivetrain.core.can import load_dbc

    console = Console(highlight=False, soft_wrap=True)
    try:
        loaded = load_dbc(dbc)
    except DrivetrainError as e:
        raise _fail(Console(stderr=True, soft_wrap=True), e) from e
    messages = sorted(loaded.database.messages, key=lambda m: m.frame_id)
    if message:
        messages = [m for m in messages if _matches(m, message)]
        if not messages:
            raise _fail(Console(stderr=True, soft_wrap=True), DrivetrainError(
                f"{dbc.name} has no message named or numbered {', '.join(message)}"))
    if as_json:
        emit_json({"file": str(dbc), "messages": [_message_record(m) for m in messages],
                   "loader_notes": list(loaded.notes)})
        return
    title = (f"{dbc.name}: {len(messages):,} messages, "
             f"{sum(len(m.signals) for m in messages):,} signals")
    columns = [Column("id", "id"), Column("message", "id"), Column("bytes", "number"),
               Column("signals", "number"), Column("multiplexed"), Column("senders")]
    print_table(title, columns, (
        (_frame_id(m), m.name, m.length, len(m.signals), "yes" if m.is_multiplexed() else "",
         ", ".join(m.senders)) for m in messages
    ), console)
    if signals:
        for m in messages:
            _print_signals(console, m)
    if loaded.notes:
        console.print("loader notes:")
        for note in loaded.notes:
            console.print(f"  - {note}", markup=False)
    else:
        console.print("loader notes: none (cantools read the file as it is)")
