"""A private three-master Redis Cluster on loopback, for the cluster benchmark and test.

Three ``redis-server`` nodes in cluster mode (no replicas, persistence off, files in a
temporary directory) joined with ``redis-cli --cluster create``; :meth:`ClusterNodes.kill`
crashes one master (SIGKILL), leaving its slots uncovered: with no replica to take them
over, the cluster reports ``cluster_state:fail`` for good.
"""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType

__all__ = ["ClusterNodes", "missing"]


def missing() -> str | None:
    """Why a cluster cannot be made here (a binary is not installed), or None."""
    for binary in ("redis-server", "redis-cli"):
        if shutil.which(binary) is None:
            return f"{binary} is not installed (the Debian package redis-server has both)"
    return None


def _free_ports(count: int) -> list[int]:
    # Cluster nodes also listen on port + 10000 (the cluster bus): keep both below 65536.
    ports: list[int] = []
    while len(ports) < count:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind(("127.0.0.1", 0))
            port = int(sock.getsockname()[1])
        if port < 55000 and port not in ports:
            ports.append(port)
    return ports


def _ask(port: int, *command: str) -> str:
    done = subprocess.run(
        ["redis-cli", "-p", str(port), *command],
        capture_output=True,
        text=True,
        timeout=10,
        check=False,
    )
    return done.stdout


class ClusterNodes:
    """``with ClusterNodes() as cluster:`` then ``cluster.ports``; all stopped on exit."""

    def __init__(self, masters: int = 3, *, coverage: str = "yes") -> None:
        reason = missing()
        if reason is not None:
            raise RuntimeError(reason)
        self.count = masters
        self.coverage = coverage  # cluster-require-full-coverage
        self.ports: list[int] = []
        self.processes: list[subprocess.Popen[bytes] | None] = []
        self._directory: tempfile.TemporaryDirectory[str] | None = None

    def start(self) -> ClusterNodes:
        self._directory = tempfile.TemporaryDirectory(prefix="rllm-cluster-")
        self.ports = _free_ports(self.count)
        for port in self.ports:
            directory = Path(self._directory.name) / str(port)
            directory.mkdir()
            with (directory / "redis.log").open("ab") as log:
                self.processes.append(
                    subprocess.Popen(
                        [
                            "redis-server",
                            *("--port", str(port), "--bind", "127.0.0.1"),
                            *("--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf"),
                            *("--cluster-node-timeout", "1000"),
                            *("--cluster-require-full-coverage", self.coverage),
                            *("--save", "", "--appendonly", "no", "--dir", str(directory)),
                        ],
                        stdout=log,
                        stderr=subprocess.STDOUT,
                        stdin=subprocess.DEVNULL,
                    )
                )
        try:
            self._wait(lambda port: _ask(port, "PING").strip() == "PONG")
            created = subprocess.run(
                [
                    "redis-cli",
                    "--cluster",
                    "create",
                    *(f"127.0.0.1:{port}" for port in self.ports),
                    *("--cluster-replicas", "0", "--cluster-yes"),
                ],
                capture_output=True,
                text=True,
                timeout=30,
                check=False,
            )
            if created.returncode != 0:
                raise RuntimeError(f"redis-cli --cluster create failed: {created.stdout[-500:]}")
            self._wait(lambda port: "cluster_state:ok" in _ask(port, "CLUSTER", "INFO"))
        except BaseException:
            self.stop()
            raise
        return self

    def _wait(self, ready: object) -> None:
        assert callable(ready)
        deadline = time.monotonic() + 20.0
        while not all(ready(port) for port in self.ports):
            if time.monotonic() > deadline:
                raise RuntimeError("the Redis Cluster did not come up")
            time.sleep(0.05)

    def owner(self, key: str) -> int:
        """The port of the master holding ``key``'s slot."""
        alive = next(
            port
            for port, process in zip(self.ports, self.processes, strict=True)
            if process is not None and process.poll() is None
        )
        slot = int(_ask(alive, "CLUSTER", "KEYSLOT", key).strip())
        for line in _ask(alive, "CLUSTER", "NODES").splitlines():
            fields = line.split()
            port = int(fields[1].split("@")[0].rsplit(":", 1)[1])
            for part in fields[8:]:
                low, _, high = part.partition("-")
                if int(low) <= slot <= int(high or low):
                    return port
        raise RuntimeError(f"no master holds slot {slot}")

    def kill(self, port: int) -> None:
        """SIGKILL the node on ``port``, as a crash would."""
        process = self.processes[self.ports.index(port)]
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGKILL)
            process.wait(timeout=10)

    def stop(self) -> None:
        for process in self.processes:
            if process is not None and process.poll() is None:
                process.terminate()
                try:
                    process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait(timeout=10)
        self.processes = []
        if self._directory is not None:
            self._directory.cleanup()
            self._directory = None

    def __enter__(self) -> ClusterNodes:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
