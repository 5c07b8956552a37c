"""A real ``redis-server`` for the state-backend tests, started and stopped by the tests.

Each xdist worker starts its own server on a free loopback port, with persistence off and
its files in a temporary directory; tests that kill Redis get a private server of their own
(:func:`own_redis`), so no other test sees it go away. ``make test`` installs the
``redis-server`` package when it is missing. Without it the tests skip with the reason, except
in CI (``CI=true``), where a missing server fails them: a backend that is never tested must
not pass for one that works.

Every test gets its own key prefix (:func:`prefix`), so no limiter log or breaker of one test
reaches another on the shared server.
"""

from __future__ import annotations

import itertools
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

_PREFIXES = itertools.count()


def redis_server_binary() -> str:
    """The ``redis-server`` path; fails the test in CI, skips it elsewhere, when missing."""
    path = shutil.which("redis-server")
    if path is not None:
        return path
    why = (
        "redis-server is not installed: the Redis backend tests start their own server "
        "(`make test` installs the Debian package redis-server)"
    )
    if os.environ.get("CI") == "true":
        pytest.fail(why + "; CI must run them", pytrace=False)
    pytest.skip(why)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class RedisServer:
    """One ``redis-server`` process on 127.0.0.1; kill it and restart it on the same port."""

    def __init__(self, binary: str, directory: Path, *, password: str | None = None) -> None:
        self.binary = binary
        self.directory = directory
        self.password = password
        self.port = _free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        auth = f":{self.password}@" if self.password else ""
        return f"redis://{auth}127.0.0.1:{self.port}/0"

    def client(self) -> redis.Redis:
        return redis.Redis(
            host="127.0.0.1",
            port=self.port,
            password=self.password,
            socket_timeout=1.0,
            socket_connect_timeout=1.0,
        )

    def start(self, *, attempts: int = 5) -> None:
        """Start and wait until it answers PING; a port taken meanwhile means a new one."""
        for _ in range(attempts):
            if self._spawn():
                return
            self.port = _free_port()
        raise RuntimeError(f"redis-server did not start; see {self.directory / 'redis.log'}")

    def _spawn(self) -> bool:
        log = (self.directory / "redis.log").open("ab")
        self.process = subprocess.Popen(
            [
                self.binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.directory),
                "--daemonize",
                "no",
                *(["--requirepass", self.password] if self.password else []),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        log.close()
        client = self.client()
        try:
            deadline = time.monotonic() + 10.0
            while time.monotonic() < deadline:
                if self.process.poll() is not None:
                    return False  # exited: most likely the port was taken
                try:
                    if client.ping():
                        return True
                except redis.RedisError:
                    time.sleep(0.02)
        finally:
            client.close()
        self.stop()
        return False

    def kill(self) -> None:
        """SIGKILL, as a crash would: no shutdown, no goodbye to clients."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=10)
        self.process = None

    def restart(self) -> None:
        """Start again on the same port (empty: persistence is off)."""
        self.kill()
        if not self._spawn():
            raise RuntimeError(f"redis-server did not restart on port {self.port}")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        self.process = None


def _started(directory: Path, password: str | None = None) -> RedisServer:
    server = RedisServer(redis_server_binary(), directory, password=password)
    server.start()
    return server


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """This worker's shared server; never killed by a test."""
    with tempfile.TemporaryDirectory(prefix="rllm-redis-") as directory:
        server = _started(Path(directory))
        try:
            yield server
        finally:
            server.stop()


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[RedisServer]:
    """A private server for a test that kills and restarts it."""
    server = _started(tmp_path)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def redis_with_password(tmp_path: Path) -> Iterator[RedisServer]:
    """A private server that wants the password ``s3cretpw``."""
    server = _started(tmp_path, password="s3cretpw")
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    return redis_server.url


@pytest.fixture
def prefix() -> str:
    """A key prefix no other test (on any worker) uses."""
    return f"t{os.getpid()}x{next(_PREFIXES)}"
