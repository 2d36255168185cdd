"""Resumable image downloads: a download cut off mid-image resumes with an HTTP Range request
for the rest, and the reassembled image is verified (length and hashes against the signed
metadata) before install; tampered kept bytes fail verification and the next try starts
afresh. The repository server answers ranges (206, 416)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO, ClassVar

import pytest
from ota_world import ECUS, VIN, OtaWorld, ota_world

from drivetrain.cloud.ota.serve import byte_range, make_server
from drivetrain.edge import (
    AbEcu,
    RepositoryUrls,
    TufTransportError,
    TufUpdateError,
    UptanePrimary,
    VehicleConditions,
)
from drivetrain.sim.firmware import simulated_health_check

PARKED = VehicleConditions(parked=True, soc_pct=80)
CUT_AFTER = 20_000


class _Body:
    """A response stream that counts body bytes (the first write is the headers) and, when
    told, drops the connection after ``limit`` of them."""

    def __init__(self, real: BinaryIO, limit: int | None, counter: list[int]) -> None:
        self.real, self.limit, self.counter, self.headers_sent = real, limit, counter, False

    def write(self, data: bytes) -> int:
        if not self.headers_sent:
            self.headers_sent = True
            return self.real.write(data)
        if self.limit is not None and self.counter[-1] + len(data) > self.limit:
            self.real.write(data[: self.limit - self.counter[-1]])
            self.counter[-1] = self.limit
            raise ConnectionAbortedError("link lost mid-image")
        self.counter[-1] += len(data)
        return self.real.write(data)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)


@pytest.fixture
def flaky(tmp_path: Path) -> Iterator[tuple[OtaWorld, UptanePrimary, type]]:
    """The world's repositories behind a server that cuts the next image response after
    CUT_AFTER bytes (once), and a primary using it."""
    with ota_world(tmp_path) as world:
        server = make_server(world.layout)
        base = server.RequestHandlerClass

        class Cutting(base):  # type: ignore[misc, valid-type]
            cut_next: ClassVar[bool] = True
            ranges: ClassVar[list[str]] = []
            served: ClassVar[list[int]] = []

            def do_GET(self) -> None:
                if "/image/targets/" in self.path:
                    Cutting.ranges.append(self.headers.get("Range") or "")
                    Cutting.served.append(0)
                    limit = CUT_AFTER if Cutting.cut_next else None
                    Cutting.cut_next = False
                    self.wfile = _Body(self.wfile, limit, Cutting.served)  # type: ignore[assignment]
                super().do_GET()

            def log_error(self, format: str, *args: object) -> None:
                return

        server.RequestHandlerClass = Cutting
        server.handle_error = lambda request, address: None  # type: ignore[method-assign]
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        host, port = server.server_address[:2]
        folder = tmp_path / "flaky-vehicle"
        primary = UptanePrimary(VIN, folder / "ota",
                                RepositoryUrls.under(f"http://{host!s}:{port}", VIN),
                                [AbEcu("BMS-001", ECUS["BMS-001"], folder / "bms",
                                       simulated_health_check)])
        primary.provision(world.layout.director().root_bytes(),
                          world.layout.images().repo.root_bytes(1))
        world.assign(("BMS-001", world.publish("bms", "2.6.1", 7, hardware_id="bms-v2",
                                               size=96 * 1024)))
        try:
            yield world, primary, Cutting
        finally:
            server.shutdown()
            server.server_close()


def _kept(primary: UptanePrimary) -> list[Path]:
    return sorted((primary.state_dir / "parts").glob("*.part"))


def test_an_interrupted_image_download_resumes_where_it_stopped_and_is_verified(
    flaky: tuple[OtaWorld, UptanePrimary, type],
) -> None:
    world, primary, server = flaky
    with pytest.raises(TufTransportError, match="interrupted after .* bytes"):
        primary.update(PARKED)
    [part] = _kept(primary)
    kept = part.stat().st_size  # what arrived, to the last whole read
    assert CUT_AFTER // 2 < kept <= CUT_AFTER and primary.ecus["BMS-001"].running() is None
    [outcome] = primary.update(PARKED)
    assert outcome.result == "installed"
    image = world.layout.images().image("bms/bms-2.6.1.bin")
    assert server.ranges == ["", f"bytes={kept}-"]
    assert server.served == [CUT_AFTER, image.length - kept]  # the rest only
    assert primary.fetcher.bytes_resumed == kept
    running = primary.ecus["BMS-001"].running()
    assert running is not None and running.sha256 == image.hashes["sha256"]
    assert _kept(primary) == []


def test_tampered_kept_bytes_fail_verification_and_the_next_try_starts_afresh(
    flaky: tuple[OtaWorld, UptanePrimary, type],
) -> None:
    _, primary, server = flaky
    with pytest.raises(TufTransportError):
        primary.update(PARKED)
    [part] = _kept(primary)
    kept = part.stat().st_size
    part.write_bytes(b"\0" * kept)  # what was kept is altered on the vehicle's disk
    with pytest.raises(TufUpdateError, match="hash"):
        primary.update(PARKED)
    assert _kept(primary) == [] and primary.ecus["BMS-001"].running() is None
    [outcome] = primary.update(PARKED)
    assert outcome.result == "installed"
    assert server.ranges == ["", f"bytes={kept}-", ""]


@pytest.mark.parametrize(("header", "size", "expected"), [
    (None, 10, None), ("bytes=4-", 10, (4, 10)), ("bytes=2-5", 10, (2, 6)),
    ("bytes=2-99", 10, (2, 10)), ("bytes=10-", 10, False), ("bytes=5-3", 10, False),
    ("bytes=-3", 10, None), ("bytes=1-2,4-5", 10, None), ("items=1-", 10, None),
])
def test_the_server_answers_one_byte_range(header: str | None, size: int,
                                           expected: object) -> None:
    assert byte_range(header, size) == expected
