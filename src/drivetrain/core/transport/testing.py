"""Brokers for test suites: a check of the shared Mosquitto, and private ones to stop and kill.

The shared broker (``$DRIVETRAIN_TEST_MQTT_URL``, started by scripts/test) serves every test
that only needs a broker; tests isolate themselves with ``unique_name`` topic prefixes and
client ids, since several suites use it at once. A test that disconnects, restarts or kills
the broker starts a ``PrivateBroker`` instead — its own ``mosquitto`` process on a free port,
with its own persistence directory — and never touches the shared one.
"""

from __future__ import annotations

import getpass
import os
import shutil
import signal
import subprocess
import time
import uuid
from pathlib import Path
from types import TracebackType
from typing import Self

from drivetrain.core.errors import ConfigurationError, TransportError
from drivetrain.core.transport.loopback import accepts, free_ports
from drivetrain.core.transport.mqtt import MqttTransport

#: The environment variable naming the shared test broker (scripts/test sets it).
MQTT_URL_ENV = "DRIVETRAIN_TEST_MQTT_URL"


def unique_name(prefix: str = "test") -> str:
    """A topic level / client id unique across processes and pytest-xdist workers.

    Only ``[a-z0-9_-]`` characters, so it is valid as a ``dt/v1`` topic level too.
    """
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    return f"{prefix}-{worker}-{os.getpid()}-{uuid.uuid4().hex[:10]}".lower()


def check_broker(url: str, *, timeout_s: float = 5.0) -> str:
    """Return ``url`` after an MQTT 5 connection to it succeeded (and was closed).

    Raises:
        ConfigurationError: a malformed URL.
        TransportError: the broker cannot be reached or refuses the connection.
    """
    with MqttTransport(url, client_id=unique_name("probe"), connect_timeout_s=timeout_s):
        return url


def shared_broker_url() -> str:
    """The shared test broker from ``$DRIVETRAIN_TEST_MQTT_URL``, checked to answer.

    Raises:
        ConfigurationError: the variable is not set.
        TransportError: the broker does not answer (the message says how to start it).
    """
    url = os.environ.get(MQTT_URL_ENV)
    if not url:
        raise ConfigurationError(
            f"${MQTT_URL_ENV} is not set: the MQTT tests need a real broker; run scripts/test "
            f"(it starts Mosquitto and sets {MQTT_URL_ENV}=mqtt://127.0.0.1:1883)"
        )
    try:
        return check_broker(url)
    except TransportError as e:
        raise TransportError(
            f"{e} — the MQTT tests need a real broker at ${MQTT_URL_ENV}; scripts/test starts "
            "Mosquitto (mosquitto -d -c /etc/mosquitto/mosquitto.conf)"
        ) from e


class PrivateBroker:
    """A Mosquitto process of one test, on a free port of 127.0.0.1, anonymous access.

    Its persistence directory is kept across ``stop``/``start``, so persistent sessions and
    queued QoS 1 messages survive a graceful restart (Mosquitto saves them on SIGTERM);
    ``kill`` (SIGKILL) loses what was not saved; ``pause``/``resume`` (SIGSTOP/SIGCONT) make it
    hang with its connections open — the broker a client cannot tell is gone.

    Args:
        directory: where its configuration, persistence file and log live.
        extra_config: mosquitto.conf lines for the listener (e.g. TLS settings, an
            ``acl_file`` or ``password_file``).
        anonymous: whether clients without credentials are allowed.
        port: the port to listen on; default: a free one.

    Raises:
        ConfigurationError: the ``mosquitto`` program is not installed.
    """

    def __init__(
        self,
        directory: Path,
        *,
        extra_config: str = "",
        anonymous: bool = True,
        port: int | None = None,
    ) -> None:
        program = shutil.which("mosquitto") or (
            "/usr/sbin/mosquitto" if Path("/usr/sbin/mosquitto").exists() else None
        )
        if program is None:
            raise ConfigurationError(
                "the mosquitto program is not installed: install it (apt-get install "
                "mosquitto; scripts/test does) to run the broker tests"
            )
        self.program = program
        self.directory = directory
        self.directory.mkdir(parents=True, exist_ok=True)
        self.extra_config = extra_config
        self.anonymous = anonymous
        self.port = port or free_ports(1)[0]
        self.log_file = directory / "mosquitto.log"
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """``mqtt://127.0.0.1:PORT`` (``mqtts://localhost:PORT`` when configured for TLS)."""
        if "certfile" in self.extra_config:
            return f"mqtts://localhost:{self.port}"
        return f"mqtt://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int | None:
        """The broker process's id while it runs (for CPU accounting), else None."""
        return self._process.pid if self.running and self._process is not None else None

    @property
    def running(self) -> bool:
        """True while the process runs (also while paused)."""
        return self._process is not None and self._process.poll() is None

    def _write_config(self) -> Path:
        lines = [
            f"listener {self.port} 127.0.0.1",
            f"allow_anonymous {'true' if self.anonymous else 'false'}",
            "persistence true",
            f"persistence_location {self.directory}/",
            f"log_dest file {self.log_file}",
            "log_type all",
        ]
        if os.geteuid() == 0:
            lines.append(f"user {getpass.getuser()}")  # stay who we are: it writes our files
        config = self.directory / "mosquitto.conf"
        config.write_text("\n".join(lines) + "\n" + self.extra_config.strip() + "\n")
        return config

    def start(self, *, timeout_s: float = 10.0) -> None:
        """Start the broker and wait until it accepts connections.

        Raises:
            TransportError: it exited or did not listen within ``timeout_s``; the message
                quotes the end of its log.
        """
        if self.running:
            return
        config = self._write_config()
        self._process = subprocess.Popen(
            [self.program, "-c", str(config)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                break
            if accepts(self.port):
                return
            time.sleep(0.05)
        tail = self.log_tail()
        self.kill()
        raise TransportError(
            f"private mosquitto on port {self.port} did not start within {timeout_s} s; log: {tail}"
        )

    def stop(self, *, timeout_s: float = 10.0) -> None:
        """Stop gracefully (SIGTERM: it saves its persistence file) and wait for the exit."""
        process = self._process
        if process is None or process.poll() is not None:
            self._reap()
            return
        self.resume()
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        self._reap()

    def kill(self) -> None:
        """End the process at once (SIGKILL): clients see the connection drop; unsaved
        session state is lost."""
        process = self._process
        if process is not None and process.poll() is None:
            process.kill()
            process.wait()
        self._reap()

    def restart(self, *, down_s: float = 0.0) -> None:
        """``stop``, stay down ``down_s`` seconds, ``start`` on the same port."""
        self.stop()
        if down_s:
            time.sleep(down_s)
        self.start()

    def pause(self) -> None:
        """Freeze the process (SIGSTOP): connections stay open, nothing is answered."""
        if self.running and self._process is not None:
            self._process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        """Let a paused process go on (SIGCONT)."""
        if self.running and self._process is not None:
            self._process.send_signal(signal.SIGCONT)

    def log_tail(self, lines: int = 20) -> str:
        """The last lines of its log (for failure messages)."""
        try:
            text = self.log_file.read_text(errors="replace")
        except OSError:
            text = ""
        if self._process is not None and self._process.stderr is not None and not self.running:
            text += self._process.stderr.read().decode(errors="replace")
        return " | ".join(text.strip().splitlines()[-lines:]) or "(empty)"

    def _reap(self) -> None:
        if self._process is not None and self._process.stderr is not None:
            self._process.stderr.close()
        self._process = None

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.kill()
