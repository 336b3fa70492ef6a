"""Run the simulator as a real server process, for tests and benchmarks."""

import os
import re
import signal
import subprocess
import sys
import threading
from collections import deque
from pathlib import Path
from types import TracebackType

from ctiboard.simulator.control import SimulatorControl

REPO_ROOT = Path(__file__).resolve().parents[2]
# NFON's OpenAPI spec, the project's own copy (where it comes from is said in its first lines).
SPEC = Path(__file__).resolve().parent / "spec" / "nfon-cti-api.yaml"
LISTENING = re.compile(r"^listening on (http://\S+)$")
API_BASE = re.compile(r"^NFON API base URL: (http://\S+)$")


class SimulatorProcess:
    """``python manage.py simulate`` on a free port of 127.0.0.1, stopped on exit::

    with SimulatorProcess("--seed", "7") as simulator:
        simulator.control.create_tenant("K1000", "K1000/api", "secret")
        httpx.post(f"{simulator.api_url}/login", json=...)
    """

    def __init__(self, *args: str, startup_timeout: float = 20.0) -> None:
        self.args = args
        self.startup_timeout = startup_timeout
        self._lines: deque[str] = deque(maxlen=500)
        self._listening = threading.Event()
        self._base_url: str | None = None
        self._api_url: str | None = None
        self._control: SimulatorControl | None = None
        self._process: subprocess.Popen[str] | None = None
        self._reader: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        if self._base_url is None:
            raise RuntimeError("the simulator is not running")
        return self._base_url

    @property
    def api_url(self) -> str:
        """The base URL to configure in an NFON client, as the command printed it."""
        if self._api_url is None:
            raise RuntimeError("the simulator is not running")
        return self._api_url

    @property
    def control(self) -> SimulatorControl:
        if self._control is None:
            raise RuntimeError("the simulator is not running")
        return self._control

    @property
    def output(self) -> str:
        """The process's recent stdout and stderr, for diagnosing failures."""
        return "\n".join(self._lines)

    @property
    def returncode(self) -> int | None:
        return None if self._process is None else self._process.poll()

    def __enter__(self) -> "SimulatorProcess":
        command = [sys.executable, "manage.py", "simulate", "--host", "127.0.0.1", "--port", "0"]
        self._process = subprocess.Popen(  # noqa: S603 - our own interpreter and manage.py
            [*command, *self.args],
            cwd=REPO_ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1", "CTIBOARD_ALLOW_SIMULATOR": "1"},
        )
        # Keep draining the pipe for the process's whole life, or its logging would block on a
        # full pipe buffer.
        self._reader = threading.Thread(target=self._read, args=(self._process,), daemon=True)
        self._reader.start()
        if not self._listening.wait(self.startup_timeout) or self._base_url is None:
            self.stop()
            raise RuntimeError(
                f"the simulator did not start within {self.startup_timeout} s:\n{self.output}"
            )
        self._control = SimulatorControl(self._base_url)
        return self

    def _read(self, process: "subprocess.Popen[str]") -> None:
        assert process.stdout is not None
        for raw in process.stdout:
            line = raw.rstrip("\n")
            self._lines.append(line)
            api = API_BASE.match(line)
            if api and self._api_url is None:
                self._api_url = api[1]
            match = LISTENING.match(line)
            if match and self._base_url is None:
                self._base_url = match[1]
                self._listening.set()
        # The process ended: wake a startup wait at once instead of letting it time out.
        self._listening.set()

    def stop(self, timeout: float = 10.0, sig: signal.Signals = signal.SIGTERM) -> int | None:
        """``sig`` (SIGTERM), then SIGKILL if it does not exit; returns the exit code."""
        if self._control is not None:
            self._control.close()
            self._control = None
        process = self._process
        if process is None:
            return None
        if process.poll() is None:
            process.send_signal(sig)
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if self._reader is not None:
            self._reader.join(timeout)
        return process.returncode

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()
