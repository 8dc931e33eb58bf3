"""A real Redis for the tests: Debian's redis-server on a free loopback port, in a temporary directory.

    pytestmark = needs_redis_server()          # tests/programs.py: skip locally, fail in CI when it is missing

    with RedisServer(tmp_path, password="s3cret") as server:
        url = server.url                       # redis://:s3cret@127.0.0.1:<port>/0
        server.stop()                          # Redis goes away (SIGTERM; kill=True for SIGKILL) ...
        server.start()                         # ... and comes back on the same port, empty
        server.freeze()                        # SIGSTOP: connections are accepted, nothing answers
        server.thaw()                          # SIGCONT

Or the `redis_server` fixture below (no password, skipped or failed as `needs_redis_server()` says): register
this module with `pytest_plugins = ["tests.redis_server"]` in tests/conftest.py to use it anywhere.
Nothing is persisted (`save ""`, `appendonly no`): a restarted server starts empty, as a Redis without
persistence does in production.
"""

from __future__ import annotations

import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from typing import Self

import pytest

from tests.programs import needs_redis_server, redis_server_path

HOST = "127.0.0.1"
READY_SECONDS = 10.0  # the most a start waits for the first PONG
STOP_SECONDS = 5.0  # the most a stop waits after SIGTERM before SIGKILL
PORT_ATTEMPTS = 5  # free ports tried when another process takes the one picked first


def free_port(host: str = HOST) -> int:
    """A port nothing listens on now (Redis takes no port 0): the kernel picks it for a socket we close."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        port: int = probe.getsockname()[1]
        return port


class RedisServer:
    """One redis-server process, started by `start()` (or `with`), stopped by `stop()`; restartable."""

    def __init__(self, directory: Path, *, password: str | None = None, host: str = HOST) -> None:
        self.directory = directory
        self.password = password
        self.host = host
        self.port = 0  # chosen at the first start, kept by every later one
        self._process: subprocess.Popen[bytes] | None = None
        self._frozen = False

    @property
    def url(self) -> str:
        """The URL to reach it, with its password when it has one."""
        auth = f":{self.password}@" if self.password is not None else ""
        return f"redis://{auth}{self.host}:{self.port}/0"

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    @property
    def log_path(self) -> Path:
        return self.directory / "redis.log"

    def log(self, since: int = 0) -> str:
        """What the server wrote (from byte `since`), for a failure's message."""
        try:
            with self.log_path.open("rb") as log:
                log.seek(since)
                return log.read().decode(errors="replace")
        except FileNotFoundError:
            return ""

    # -- life ----------------------------------------------------------------------------------------------------

    def start(self) -> None:
        """Start it and wait until it answers PING: on a new free port the first time, on the same port after."""
        if self.running:
            raise RuntimeError("redis-server is already running")
        program = redis_server_path()
        if program is None:
            raise RuntimeError("redis-server is not installed (`apt-get install -y redis-server`)")
        self.directory.mkdir(parents=True, exist_ok=True)
        if self.port:
            self._launch(program, self.port)
            return
        for attempt in range(PORT_ATTEMPTS):
            port = free_port(self.host)
            try:
                self._launch(program, port)
            except _PortTaken:
                if attempt == PORT_ATTEMPTS - 1:
                    raise
                continue
            self.port = port
            return

    def stop(self, *, kill: bool = False) -> None:
        """Stop it: SIGTERM (SIGKILL after `STOP_SECONDS`), or SIGKILL at once with `kill`. Idempotent."""
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        if self._frozen:
            process.send_signal(signal.SIGCONT)
            self._frozen = False
        if kill:
            process.kill()
        else:
            process.terminate()
        try:
            process.wait(STOP_SECONDS)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(STOP_SECONDS)

    def freeze(self) -> None:
        """SIGSTOP: the kernel still accepts connections, Redis answers nothing (a hung server, for timeouts)."""
        assert self._process is not None and self.running
        self._process.send_signal(signal.SIGSTOP)
        self._frozen = True

    def thaw(self) -> None:
        """SIGCONT: it answers again, the requests it received meanwhile included."""
        assert self._process is not None
        self._process.send_signal(signal.SIGCONT)
        self._frozen = False

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    # -- inside --------------------------------------------------------------------------------------------------

    def _config(self, port: int) -> Path:
        lines = [
            f"bind {self.host}",
            f"port {port}",
            'save ""',
            "appendonly no",
            f'dir "{self.directory}"',
            'logfile ""',  # standard output, which goes to redis.log
            "daemonize no",
            "protected-mode yes",
        ]
        if self.password is not None:
            lines.append(f'requirepass "{self.password}"')
        path = self.directory / "redis.conf"
        path.write_text("\n".join(lines) + "\n")
        path.chmod(0o600)
        return path

    def _launch(self, program: str, port: int) -> None:
        config = self._config(port)
        with self.log_path.open("ab") as log:
            since = log.tell()
            process = subprocess.Popen(  # noqa: S603 - our own program and config
                [program, str(config)],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=self.directory,
                start_new_session=True,  # a Ctrl-C of the test run is not sent to it twice
            )
        deadline = time.monotonic() + READY_SECONDS
        while True:
            if process.poll() is not None:
                log_text = self.log(since)
                if "Address already in use" in log_text:
                    raise _PortTaken(port)
                raise RuntimeError(
                    f"redis-server exited with {process.returncode} before answering; its log:\n{log_text}"
                )
            # Its own log says it listens (another Redis on the port would answer PING too), and it answers.
            if "Ready to accept connections" in self.log(since) and _answers_ping(self.host, port):
                self._process = process
                return
            if time.monotonic() > deadline:
                process.kill()
                process.wait(STOP_SECONDS)
                raise RuntimeError(
                    f"redis-server did not answer PING within {READY_SECONDS:g} s; its log:\n{self.log(since)}"
                )
            time.sleep(0.02)


class _PortTaken(RuntimeError):
    def __init__(self, port: int) -> None:
        super().__init__(f"port {port} was taken before redis-server could listen on it")


def _answers_ping(host: str, port: int) -> bool:
    """Whether a Redis answers on host:port (an inline PING; NOAUTH, from one with a password, counts)."""
    try:
        with socket.create_connection((host, port), timeout=0.5) as connection:
            connection.sendall(b"PING\r\n")
            answer = connection.recv(64)
    except OSError:
        return False
    return answer.startswith((b"+PONG", b"-NOAUTH"))


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    """A running Redis without a password, stopped after the test. Without redis-server: skipped, or in CI
    failed (tests/programs.py)."""
    if redis_server_path() is None:
        needs_redis_server()  # raises in CI
        pytest.skip("needs Debian's redis-server: `apt-get install -y redis-server`")
    with RedisServer(tmp_path / "redis") as server:
        yield server
