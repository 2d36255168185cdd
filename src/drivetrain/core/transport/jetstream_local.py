"""``LocalJetStream``: real ``nats-server`` JetStream nodes on loopback, for tests and benchmarks.

One node, or a cluster of three (or more) with routes between them, each on free ports with
a store folder of its own; ``kill(i)`` SIGKILLs one node (a crash, nothing flushed) and
``start(i)`` brings it back on the same ports and store. The server program is found on PATH
or at ``/usr/sbin/nats-server`` (Debian's ``nats-server`` package; scripts/services.sh
installs it).
"""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path
from types import TracebackType
from typing import Self

from drivetrain.core.errors import ConfigurationError, TransportError
from drivetrain.core.transport.loopback import accepts, free_ports


def nats_server_program() -> str:
    """The ``nats-server`` executable.

    Raises:
        ConfigurationError: it is not installed (apt-get install nats-server).
    """
    found = shutil.which("nats-server") or (
        "/usr/sbin/nats-server" if Path("/usr/sbin/nats-server").exists() else None)
    if found is None:
        raise ConfigurationError("nats-server is not installed: apt-get install nats-server "
                                 "(or source scripts/services.sh; ensure_nats)")
    return found


class LocalJetStream:
    """``nodes`` JetStream servers on loopback under ``root`` (see the module docstring).

    Raises (``start_all``):
        ConfigurationError: nats-server is not installed.
        TransportError: a node did not accept connections within 10 s.
    """

    def __init__(self, root: Path, nodes: int = 1, *, cluster_name: str = "drivetrain") -> None:
        if nodes < 1:
            raise ValueError(f"nodes must be >= 1, got {nodes}")
        self.root = root
        self.nodes = nodes
        ports = free_ports(2 * nodes)
        self.client_ports = ports[:nodes]
        self.route_ports = ports[nodes:]
        self.cluster_name = cluster_name
        self._processes: list[subprocess.Popen[bytes] | None] = [None] * nodes

    @property
    def url(self) -> str:
        """The seed list of every node, ``nats://127.0.0.1:p1,127.0.0.1:p2,...``."""
        return "nats://" + ",".join(f"127.0.0.1:{p}" for p in self.client_ports)

    def node_url(self, index: int) -> str:
        return f"nats://127.0.0.1:{self.client_ports[index]}"

    def pid(self, index: int) -> int | None:
        """The process id of node ``index`` while it runs."""
        process = self._processes[index]
        return process.pid if process is not None and process.poll() is None else None

    def server_name(self, index: int) -> str:
        return f"n{index + 1}"

    def _config(self, index: int) -> Path:
        folder = self.root / self.server_name(index)
        (folder / "store").mkdir(parents=True, exist_ok=True)
        lines = [
            f"server_name: {self.server_name(index)}",
            f"listen: 127.0.0.1:{self.client_ports[index]}",
            (f'jetstream {{ store_dir: "{folder / "store"}", max_memory_store: 64MB, '
             "max_file_store: 2GB }"),
        ]
        if self.nodes > 1:
            routes = ", ".join(f"nats-route://127.0.0.1:{p}" for i, p in
                               enumerate(self.route_ports) if i != index)
            lines.append(f"cluster {{ name: {self.cluster_name}, "
                         f"listen: 127.0.0.1:{self.route_ports[index]}, routes: [{routes}] }}")
        path = folder / "nats.conf"
        path.write_text("\n".join(lines) + "\n")
        return path

    def start(self, index: int) -> None:
        """Start node ``index`` (again) on its ports and store; waits until it listens."""
        running = self._processes[index]
        if running is not None and running.poll() is None:
            return
        config = self._config(index)
        log = (config.parent / "server.log").open("ab")
        process = subprocess.Popen(
            [nats_server_program(), "-c", str(config)], stdout=log, stderr=subprocess.STDOUT)
        self._processes[index] = process
        log.close()
        deadline = time.monotonic() + 10.0
        while not accepts(self.client_ports[index]):
            if time.monotonic() > deadline or process.poll() is not None:
                raise TransportError(f"nats-server node {index} did not start; see {config.parent}")
            time.sleep(0.05)

    def start_all(self) -> Self:
        for index in range(self.nodes):
            self.start(index)
        return self

    def kill(self, index: int) -> None:
        """SIGKILL node ``index`` (a crash)."""
        process = self._processes[index]
        if process is not None and process.poll() is None:
            process.kill()
            process.wait(10)

    def stop(self) -> None:
        """Kill every node; idempotent."""
        for index in range(self.nodes):
            self.kill(index)

    def __enter__(self) -> Self:
        return self.start_all()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()
