"""Child processes of the local stack: started with a log and a pidfile, stopped by PID.

Children get ``PR_SET_PDEATHSIG`` (SIGTERM) so they die with the Python process that
started them, even when it crashes; ``stop`` sends SIGTERM to the child's process
group, waits, then SIGKILLs. Start services from the main thread: the death signal
fires when the *thread* that forked them exits.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Final

from modelrelease.errors import StackError

_PR_SET_PDEATHSIG: Final = 1
LOG_TAIL_LINES: Final = 25


def free_ports(count: int) -> list[int]:
    """``count`` distinct free TCP ports on 127.0.0.1 (held open together, then freed)."""
    socks: list[socket.socket] = []
    try:
        for _ in range(count):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    """The last ``lines`` lines of a log file (for error messages)."""
    try:
        with path.open("rb") as fh:
            fh.seek(0, os.SEEK_END)
            fh.seek(max(0, fh.tell() - 64 * 1024))
            text = fh.read().decode(errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:]) or "(empty log)"


def pid_alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie counts as dead)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True
    return state != "Z"


def pdeathsig_preexec() -> Callable[[], None]:
    """A ``preexec_fn`` arming ``PR_SET_PDEATHSIG`` (SIGTERM) in the child.

    libc is resolved in the parent so the child does no lookup between fork and exec.
    If the parent already died before the signal was armed, the child exits at once.
    """
    libc = ctypes.CDLL(None, use_errno=True)
    prctl = libc.prctl
    prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
    prctl.restype = ctypes.c_int
    parent = os.getpid()
    sig = int(signal.SIGTERM)

    def preexec() -> None:
        os.setpgid(0, 0)
        prctl(_PR_SET_PDEATHSIG, sig, 0, 0, 0)
        if os.getppid() != parent:
            os._exit(1)

    return preexec


def kill_pid(pid: int, grace: float = 10.0) -> None:
    """SIGTERM ``pid``'s process group (or ``pid``), wait ``grace`` seconds, then SIGKILL."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(pid, sig)
        except (ProcessLookupError, PermissionError):
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                return
        deadline = time.monotonic() + (grace if sig == signal.SIGTERM else 5.0)
        while time.monotonic() < deadline:
            try:
                if os.waitpid(pid, os.WNOHANG)[0] == pid:
                    return
            except ChildProcessError:
                pass
            if not pid_alive(pid):
                return
            time.sleep(0.05)


class Service:
    """One child process with a log file and a pidfile in ``workdir``.

    Args:
        name: Short name, used for the log (``NAME.log``) and pidfile (``NAME.pid``).
        argv: The command line.
        workdir: Where the log and pidfile go.
        env: Extra environment variables (merged over this process's environment).
    """

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        workdir: Path,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
    ) -> None:
        self.name = name
        self.argv = list(argv)
        self.workdir = workdir
        self.env = dict(env or {})
        self.cwd = cwd
        self.popen: subprocess.Popen[bytes] | None = None

    @property
    def log(self) -> Path:
        """The service's combined stdout/stderr."""
        return self.workdir / f"{self.name}.log"

    @property
    def pidfile(self) -> Path:
        """The file holding the running PID."""
        return self.workdir / f"{self.name}.pid"

    @property
    def pid(self) -> int | None:
        """The running PID, if any."""
        return self.popen.pid if self.popen is not None else None

    def start(self) -> None:
        """Start the process; raise ``StackError`` if the binary is missing."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, **self.env}
        with self.log.open("ab") as log:
            try:
                self.popen = subprocess.Popen(
                    self.argv,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    env=env,
                    cwd=self.cwd,
                    preexec_fn=pdeathsig_preexec(),
                )
            except OSError as exc:
                raise StackError(f"start {self.name}: {self.argv[0]}: {exc}") from exc
        self.pidfile.write_text(f"{self.popen.pid}\n")

    def running(self) -> bool:
        """Whether the process is still alive."""
        return self.popen is not None and self.popen.poll() is None

    def wait_ready(self, check: Callable[[], bool], timeout: float, what: str) -> float:
        """Poll ``check`` until it is true; return seconds waited.

        Raises:
            StackError: the process exited or ``timeout`` passed, with the log's tail.
        """
        start = time.monotonic()
        while True:
            if not self.running():
                code = self.popen.returncode if self.popen else None
                raise StackError(
                    f"start {self.name}: exited with {code} before {what}; "
                    f"last log lines ({self.log}):\n{tail(self.log)}"
                )
            try:
                if check():
                    return time.monotonic() - start
            except Exception:
                pass
            if time.monotonic() - start > timeout:
                raise StackError(
                    f"start {self.name}: not {what} after {timeout:.0f}s; "
                    f"last log lines ({self.log}):\n{tail(self.log)}"
                )
            time.sleep(0.1)

    def stop(self, grace: float = 10.0) -> None:
        """Stop the process by its PID and remove the pidfile."""
        if self.popen is not None and self.popen.poll() is None:
            kill_pid(self.popen.pid, grace)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.popen.wait(timeout=5)
        self.pidfile.unlink(missing_ok=True)
