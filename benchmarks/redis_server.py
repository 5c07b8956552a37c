"""A private ``redis-server`` on a free loopback port, for the benchmarks that need Redis.

Persistence is off and its files live in a temporary directory, so nothing outlives the run.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType

__all__ = ["RedisServer"]


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _pong(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1.0) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


class RedisServer:
    """``with RedisServer() as server:`` then ``server.port``; stopped on exit."""

    def __init__(self, binary: str = "redis-server") -> None:
        path = shutil.which(binary)
        if path is None:
            raise RuntimeError(f"{binary} is not installed (`make redis-server` installs it)")
        self.binary = path
        self.port = 0
        self._process: subprocess.Popen[bytes] | None = None
        self._directory: tempfile.TemporaryDirectory[str] | None = None

    def start(self, *, attempts: int = 5) -> RedisServer:
        """Start and wait until it answers PING; a port taken meanwhile means another one."""
        self._directory = tempfile.TemporaryDirectory(prefix="rllm-bench-redis-")
        for _ in range(attempts):
            self.port = _free_port()
            if self._spawn(Path(self._directory.name)):
                return self
        self.stop()
        raise RuntimeError("redis-server did not start")

    def _spawn(self, directory: Path) -> bool:
        with (directory / "redis.log").open("ab") as log:
            process = subprocess.Popen(
                [
                    self.binary,
                    *("--port", str(self.port), "--bind", "127.0.0.1"),
                    *("--save", "", "--appendonly", "no"),
                    *("--dir", str(directory), "--daemonize", "no"),
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        self._process = process
        deadline = time.monotonic() + 10.0
        while time.monotonic() < deadline:
            if process.poll() is not None:
                return False  # exited: most likely the port was taken
            if _pong(self.port):
                return True
            time.sleep(0.02)
        self._terminate()
        return False

    def _terminate(self) -> None:
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)

    def kill(self) -> None:
        """SIGKILL, as a crash would: no shutdown, no goodbye to clients."""
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.kill()
            process.wait(timeout=10)

    def restart(self) -> None:
        """Start again on the same port, empty (persistence is off)."""
        self.kill()
        assert self._directory is not None, "start() first"
        if not self._spawn(Path(self._directory.name)):
            raise RuntimeError(f"redis-server did not restart on port {self.port}")

    def stop(self) -> None:
        self._terminate()
        if self._directory is not None:
            self._directory.cleanup()
            self._directory = None

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
