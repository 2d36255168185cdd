"""`drivetrain edge` commands: run the vehicle agent, replay a capture through it, inspect its
store-and-forward buffer, check a collection campaign before sending it to vehicles."""

from __future__ import annotations

import contextlib
import json
import signal
import threading
import time
from importlib.resources import files
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.live import Live
from rich.table import Table
from rich.text import Text

from drivetrain.commands.db import fail, load_settings_or_exit
from drivetrain.commands.output import (
    JsonOption,
    cell,
    emit_json,
    format_cell,
    iso_from_ns,
    print_renderable,
    safe,
)

if TYPE_CHECKING:
    from drivetrain.core.transport import Transport
    from drivetrain.edge import AgentStats, EdgeAgent, FrameSource

app = typer.Typer(
    help="The edge agent: run it on a CAN bus, replay a capture through it, inspect its "
    "buffer, check campaigns.",
    no_args_is_help=True,
)

# The reference vehicle's files, found without importing drivetrain.sim (and its CAN stack):
# every `drivetrain` command imports this module.
_DATA = files("drivetrain") / "sim" / "data"
DEFAULT_DBC = Path(str(_DATA / "drivetrain_bev.dbc"))
DEFAULT_MAP = Path(str(_DATA / "drivetrain_bev_vss.toml"))
#: How long the broker keeps the vehicle's session while it is offline, seconds (7 days).
SESSION_EXPIRY_S = 7 * 86_400


def _status_line(stats: AgentStats, transport: Transport, started: float) -> Text:
    elapsed = max(time.monotonic() - started, 1e-9)
    link = "connected" if getattr(transport, "connected", True) else "offline"
    if stats.uplink.backing_off and link == "connected":
        link = "backing off"
    refused = sum(stats.downlink_refused.values())
    text = Text()
    text.append(f"{elapsed:6.0f} s ", style="dim")
    text.append(f"in {stats.samples_in:,} samples ({stats.samples_in / elapsed:,.0f}/s)  ")
    text.append(f"collected {stats.samples_collected:,}  ")
    text.append(f"sealed {stats.batches_sealed:,} batches ({stats.bytes_sealed / 1024:,.0f} KiB)  ")
    text.append(f"buffer {stats.buffered_messages:,}  ")
    text.append(f"sent {stats.uplink.confirmed:,}  ")
    text.append(f"link {link}  ", style="green" if link == "connected" else "yellow")
    text.append(
        f"downlink {sum(stats.downlink_accepted.values())} ok/{refused} refused",
        style="red" if refused else "",
    )
    return text


def _open_agent(
    credentials: Path,
    dbc: Path,
    signal_map: Path,
    broker: str | None,
    buffer: Path | None,
    max_buffer_mb: float,
    batch_s: float,
) -> tuple[EdgeAgent, Transport]:
    from drivetrain.core.errors import DrivetrainError
    from drivetrain.core.transport import MqttTransport
    from drivetrain.core.vss import builtin_catalog
    from drivetrain.edge import AgentConfig, CanDecoding, EdgeAgent, SqliteBuffer, VehicleIdentity

    settings = load_settings_or_exit()
    url = broker or settings.broker_url
    if not url:
        fail(
            "the agent needs a broker: give --broker mqtt://HOST:1883 or set DRIVETRAIN_BROKER_URL"
        )
    try:
        identity = VehicleIdentity.read(credentials)
        catalog = builtin_catalog()
        can = CanDecoding.load(dbc, signal_map, catalog)
        store = SqliteBuffer(
            buffer or settings.data_dir / "edge" / f"{identity.vin}.db",
            max_bytes=int(max_buffer_mb * 1024 * 1024),
        )
        # Start even when the broker is unreachable: the buffer holds the data meanwhile.
        transport = MqttTransport(
            url, client_id=identity.vin, session_expiry_s=SESSION_EXPIRY_S,
            wait_for_connection=False,
        )  # fmt: skip
    except DrivetrainError as e:
        fail(e)
    agent = EdgeAgent(
        identity, transport, store, catalog=catalog, can=can,
        config=AgentConfig(batch_interval_s=batch_s),
    )  # fmt: skip
    return agent, transport


def _run(
    agent: EdgeAgent,
    transport: Transport,
    source: FrameSource,
    *,
    tick_ms: int,
    duration: float | None,
    headless: bool,
) -> AgentStats:
    from drivetrain.core.errors import DrivetrainError

    console = Console(stderr=True, highlight=False, soft_wrap=True)
    stop = threading.Event()

    def request_stop(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {s: signal.signal(s, request_stop) for s in (signal.SIGINT, signal.SIGTERM)}
    started = time.monotonic()
    live = Live(console=console, refresh_per_second=4, transient=False, auto_refresh=False)
    last_print = [0.0]

    def on_status(stats: AgentStats) -> None:
        line = _status_line(stats, transport, started)
        if headless:
            if time.monotonic() - last_print[0] >= 5:
                console.print(line)
                last_print[0] = time.monotonic()
        else:
            live.update(line, refresh=True)

    console.print(f"edge agent {safe(agent.vin)}: press Ctrl-C to stop")
    try:
        with live if not headless else contextlib.nullcontext():
            return agent.run(
                source, tick_s=tick_ms / 1000, stop=stop, duration_s=duration, on_status=on_status
            )
    except DrivetrainError as e:
        fail(e)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        source.close()
        agent.stop()
        transport.close()
        agent.buffer.close()


def _summary(stats: AgentStats) -> Table:
    table = Table(title="edge agent summary", show_header=False)
    table.add_column("what")
    table.add_column("value", justify="right")
    rows = [
        ("samples in", f"{stats.samples_in:,}"),
        ("samples collected", f"{stats.samples_collected:,}"),
        ("batches sealed", f"{stats.batches_sealed:,} ({stats.bytes_sealed / 1024:,.1f} KiB)"),
        ("messages confirmed by the broker", f"{stats.uplink.confirmed:,}"),
        ("still buffered", f"{stats.buffered_messages:,} ({stats.buffered_bytes / 1024:,.1f} KiB)"),
        ("evicted (buffer full)", f"{stats.evicted_messages:,}"),
        ("triggers fired", f"{stats.triggers_fired:,}"),
        ("campaigns", ", ".join(stats.campaigns) or "default (every signal at 1 Hz)"),
        ("downlink accepted", json.dumps(dict(stats.downlink_accepted)) or "{}"),
        ("downlink refused", json.dumps(dict(stats.downlink_refused)) or "{}"),
    ]
    for what, value in rows:  # campaign ids and downlink reasons come from the cloud
        table.add_row(what, cell(value))
    return table


_CREDENTIALS = typer.Option(
    ..., "--credentials", help="Vehicle credential file from `drivetrain fleet provision`."
)
_DBC = typer.Option(DEFAULT_DBC, "--dbc", help="DBC of the vehicle's bus (default: reference BEV).")
_MAP = typer.Option(DEFAULT_MAP, "--map", help="DBC->VSS signal map (default: reference BEV's).")
_BROKER = typer.Option(
    None, "--broker", help="MQTT 5 broker, mqtt://HOST:PORT or mqtts://...; default: settings."
)
_BUFFER = typer.Option(
    None, "--buffer", help="Store-and-forward buffer (SQLite); default: DATA_DIR/edge/VIN.db."
)
_BUFFER_MB = typer.Option(256.0, "--max-buffer-mb", min=0.01, help="Bound of the buffer, MiB.")
_BATCH = typer.Option(1.0, "--batch-s", min=0.05, help="Seconds between sealed batches.")
_TICK = typer.Option(100, "--tick-ms", min=5, max=10_000, help="Milliseconds between ticks.")
_HEADLESS = typer.Option(False, "--headless", help="Plain status lines instead of a live line.")


@app.command("run")
def run(
    credentials: Path = _CREDENTIALS,
    bus: str = typer.Option(
        ..., "--bus", help="virtual:CHANNEL, socketcan:INTERFACE or log:CAPTURE_FILE."
    ),
    dbc: Path = _DBC,
    signal_map: Path = _MAP,
    broker: str | None = _BROKER,
    buffer: Path | None = _BUFFER,
    max_buffer_mb: float = _BUFFER_MB,
    batch_s: float = _BATCH,
    tick_ms: int = _TICK,
    speed: float = typer.Option(1.0, "--speed", min=0.01, help="Replay speed for log: buses."),
    duration: float | None = typer.Option(
        None, "--duration", min=0.1, help="Stop after S seconds."
    ),
    headless: bool = _HEADLESS,
) -> None:
    """Run the edge agent: read the bus, run the campaigns, buffer and send over MQTT, obey
    signed cloud messages. Ctrl-C stops it after sending what it can within 10 s."""
    from drivetrain.core.errors import DrivetrainError
    from drivetrain.edge import open_frame_source

    agent, transport = _open_agent(
        credentials, dbc, signal_map, broker, buffer, max_buffer_mb, batch_s
    )
    try:
        source = open_frame_source(bus, speed=speed)
    except DrivetrainError as e:
        transport.close()
        fail(e)
    stats = _run(agent, transport, source, tick_ms=tick_ms, duration=duration, headless=headless)
    Console(highlight=False).print(_summary(stats))


@app.command("replay")
def replay(
    capture: Path = typer.Argument(..., help="Capture file: candump .log, .asc, .blf or CSV."),
    credentials: Path = _CREDENTIALS,
    dbc: Path = _DBC,
    signal_map: Path = _MAP,
    broker: str | None = _BROKER,
    buffer: Path | None = _BUFFER,
    max_buffer_mb: float = _BUFFER_MB,
    batch_s: float = _BATCH,
    tick_ms: int = _TICK,
    speed: float = typer.Option(
        10.0,
        "--speed",
        min=0.01,
        max=10_000.0,
        help="Times faster than recorded (timestamps are compressed alike).",
    ),
    headless: bool = _HEADLESS,
) -> None:
    """Replay a CAN capture through the agent to the broker, then print a summary."""
    from drivetrain.core.errors import DrivetrainError
    from drivetrain.edge import CaptureReplaySource

    agent, transport = _open_agent(
        credentials, dbc, signal_map, broker, buffer, max_buffer_mb, batch_s
    )
    try:
        source = CaptureReplaySource(capture, speed=speed)
    except DrivetrainError as e:
        transport.close()
        fail(e)
    stats = _run(agent, transport, source, tick_ms=tick_ms, duration=None, headless=headless)
    console = Console(highlight=False)
    console.print(_summary(stats))
    if agent.can is not None and agent.can.counters.unknown_frames:
        top = sorted(agent.can.counters.unknown_ids.items(), key=lambda kv: -kv[1])[:5]
        console.print(
            f"{agent.can.counters.unknown_frames:,} frames with ids not in {safe(dbc.name)} "
            f"(not decoded); most frequent: {safe(', '.join(f'{k} ({n:,})' for k, n in top))}"
        )


@app.command("buffer")
def buffer_info(
    path: Annotated[Path, typer.Argument(help="The agent's buffer file (SQLite).")],
    as_json: JsonOption = False,
) -> None:
    """Show what an agent's store-and-forward buffer holds and the state kept with it."""
    from drivetrain.core.errors import DrivetrainError
    from drivetrain.edge import SqliteBuffer

    if not path.is_file():
        fail(f"buffer {path} does not exist")
    try:
        store = SqliteBuffer(path)
        stats, kinds, state = store.stats(), store.by_kind(), store.load_state()
        store.close()
    except (DrivetrainError, ValueError) as e:
        fail(e)
    if as_json:
        emit_json({
            "buffer": str(path), "stats": stats, "campaigns": list(state.campaigns.campaigns),
            "desired_version": state.desired.version if state.desired.version >= 0 else None,
            "downlink_ids_remembered": len(state.downlink.seen_ids),
            "by_kind": [
                {"kind": k.kind.name.lower(), "messages": k.messages, "bytes": k.bytes,
                 "oldest": iso_from_ns(k.oldest_ns), "newest": iso_from_ns(k.newest_ns)}
                for k in kinds
            ],
        })  # fmt: skip
        return
    console = Console(highlight=False, soft_wrap=True)
    table = Table(
        title=Text(f"{format_cell(str(path))}: {stats.messages:,} messages, "
                   f"{stats.bytes / 1024:,.1f} KiB of {stats.max_bytes / 1024 / 1024:,.0f} MiB")
    )
    for column in ("kind", "messages", "KiB", "oldest", "newest"):
        table.add_column(column, justify="left" if column == "kind" else "right")
    for k in kinds:
        table.add_row(
            k.kind.name.lower(), f"{k.messages:,}", f"{k.bytes / 1024:,.1f}",
            time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(k.oldest_ns / 1e9)),
            time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(k.newest_ns / 1e9)),
        )  # fmt: skip
    print_renderable(table, console)
    console.print(
        f"evicted since created: {stats.evicted_messages:,} messages "
        f"({stats.evicted_bytes / 1024:,.1f} KiB)"
    )
    desired = state.desired.version
    console.print(f"desired-state version applied: {desired if desired >= 0 else 'none'}")
    console.print(f"downlink message ids remembered: {len(state.downlink.seen_ids)}")
    if state.campaigns.campaigns:
        ctable = Table(title="installed campaigns")
        for column in ("id", "version", "priority", "signals", "period ms", "triggers"):
            ctable.add_column(column)
        for c in state.campaigns.campaigns:  # as the cloud sent them: every cell escaped
            ctable.add_row(
                cell(str(c.get("id"))), cell(str(c.get("version"))),
                cell(str(c.get("priority"))), cell(", ".join(map(str, c.get("signals", [])))),
                cell(str(c.get("period_ms"))),
                cell(", ".join(str(t.get("name")) for t in c.get("triggers", [])) or "-"),
            )  # fmt: skip
        print_renderable(ctable, console)  # into a pipe: every cell whole
    else:
        console.print("installed campaigns: none (the default campaign applies)")


@app.command("check-campaign")
def check_campaign(
    file: Annotated[Path, typer.Argument(help="A collection campaign as JSON.")],
) -> None:
    """Check a campaign against the VSS catalog as a vehicle would; exit 1 naming the problem."""
    from drivetrain.core.errors import DrivetrainError
    from drivetrain.core.vss import builtin_catalog
    from drivetrain.edge import Campaign

    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except OSError as e:
        fail(f"cannot read campaign {file}: {e.strerror or e}")
    except UnicodeDecodeError as e:
        fail(f"{file}: not UTF-8 text (byte {e.object[e.start]:#04x} at offset {e.start}); "
             "expected a campaign as JSON")
    except json.JSONDecodeError as e:
        fail(f"{file}:{e.lineno}:{e.colno}: not valid JSON ({e.msg}); expected a campaign as "
             "a JSON object")
    try:
        campaign = Campaign.from_dict(data, builtin_catalog())
    except DrivetrainError as e:
        fail(f"{file}: {e}")
    console = Console(highlight=False, soft_wrap=True)
    console.print(
        f"campaign {safe(repr(campaign.id))} version {campaign.version}: valid; priority "
        f"{campaign.priority}, signals {safe(', '.join(campaign.signals))}, sampling "
        f"{'every ' + str(campaign.period_ms) + ' ms' if campaign.period_ms else 'off'}"
    )
    for trigger in campaign.triggers:
        console.print(
            f"  trigger {safe(repr(trigger.name))}: {safe(trigger.expression)} "
            f"(pre {trigger.pre_s:g} s, post {trigger.post_s:g} s)"
        )
