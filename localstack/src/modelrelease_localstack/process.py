"""Child processes of the local stack: started with a log and a pidfile, stopped by PID.

Children get ``PR_SET_PDEATHSIG`` so they die with the Python process that started
them, even when it crashes, and a pidfile ``"<pid> <binary>"`` so a later start in the
same directory can reap what a crashed run left (after checking the PID still runs
that binary). ``Service.stop`` sends SIGTERM, waits, then SIGKILLs.

Caveat: the kernel sends the parent-death signal when the *thread* that forked the
child exits, not the process, so it is armed only for children started from the main
thread; the others rely on ``stop``, ``atexit`` and the pidfiles.
"""

from __future__ import annotations

import contextlib
import ctypes
import datetime as dt
import os
import signal
import socket
import subprocess
import threading
import time
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Final

from modelrelease.errors import StackError

_PR_SET_PDEATHSIG: Final = 1
LOG_TAIL_LINES: Final = 25
STOP_GRACE_S: Final = 10.0


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


def answers_ok(url: str, timeout: float = 1.0) -> bool:
    """Whether ``GET url`` answers 200 (raises while nothing listens: for ``wait_ready``)."""
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return bool(response.status == 200)


def tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    """The last ``lines`` lines of a log file (for error messages)."""
    try:
        with path.open("rb") as fh:
            fh.seek(0, os.SEEK_END)
            fh.seek(max(0, fh.tell() - 64 * 1024))
            text = fh.read().decode(errors="replace")
    except OSError:
        return "(no log)"
    # klog dumps every flag at start-up ("] FLAG: --..."); keep the lines that say why.
    kept = [line for line in text.splitlines() if "] FLAG: --" not in line]
    return "\n".join(kept[-lines:]) or "(empty log)"


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


def pdeathsig_preexec(sig: signal.Signals = signal.SIGTERM) -> Callable[[], None]:
    """A ``preexec_fn`` arming ``PR_SET_PDEATHSIG`` with ``sig`` in the child.

    libc is resolved here, in the parent, so the child does no symbol lookup or
    allocation between fork and exec. If the parent already died before the signal was
    armed, the child exits at once.
    """
    libc = ctypes.CDLL(None, use_errno=True)
    prctl = libc.prctl
    prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
    prctl.restype = ctypes.c_int
    parent = os.getpid()
    signum = int(sig)

    def preexec() -> None:
        prctl(_PR_SET_PDEATHSIG, signum, 0, 0, 0)
        if os.getppid() != parent:
            os._exit(1)

    return preexec


def terminate(pid: int, popen: subprocess.Popen[bytes] | None = None,
              grace: float = STOP_GRACE_S) -> None:
    """SIGTERM ``pid``, wait up to ``grace`` seconds, then SIGKILL; reap it if it is ours.

    Raises:
        StackError: the process survives SIGKILL.
    """

    def gone() -> bool:
        if popen is not None:
            return popen.poll() is not None
        return not pid_alive(pid)

    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
        if gone():
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)
        end = time.monotonic() + wait
        while time.monotonic() < end:
            if gone():
                return
            time.sleep(0.05)
    if not gone():
        raise StackError(f"stop process {pid}: still alive after SIGKILL")


def reap_stale(pidfile: Path) -> None:
    """Stop what a crashed earlier run left behind, if the PID still runs its binary."""
    try:
        pid_text, _, binary = pidfile.read_text().strip().partition(" ")
        pid = int(pid_text)
        exe = os.readlink(f"/proc/{pid}/exe").removesuffix(" (deleted)")
    except (OSError, ValueError):
        pidfile.unlink(missing_ok=True)
        return
    if binary and Path(exe).name == Path(binary).name:
        terminate(pid)
    pidfile.unlink(missing_ok=True)


class Service:
    """One child process with a log file and a pidfile.

    Args:
        name: Short name, used in messages and default file names.
        argv: The command line.
        workdir: Default home of the log (``NAME.log``) and pidfile (``NAME.pid``).
        env: Extra environment variables (merged over this process's environment).
        cwd: Working directory of the child (default ``workdir``).
        log: Where stdout/stderr go, instead of ``workdir/NAME.log``.
        pidfile: Where the PID is written, instead of ``workdir/NAME.pid``.
        death_signal: What the child gets when the starting thread dies.
        detached: Let the child outlive this process (no parent-death signal): for
            services started by ``modelrelease dev up`` and stopped by ``dev down``.
    """

    def __init__(self, name: str, argv: Sequence[str], workdir: Path,
                 env: Mapping[str, str] | None = None, cwd: Path | None = None, *,
                 log: Path | None = None, pidfile: Path | None = None,
                 death_signal: signal.Signals = signal.SIGTERM, detached: bool = False) -> None:
        self.name = name
        self.argv = list(argv)
        self.workdir = workdir
        self.env = dict(env or {})
        self.cwd = cwd or workdir
        self.log = log or workdir / f"{name}.log"
        self.pidfile = pidfile or workdir / f"{name}.pid"
        self.death_signal = death_signal
        self.detached = detached
        self.popen: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int | None:
        """The running PID, if any."""
        return self.popen.pid if self.popen is not None else None

    def start(self) -> None:
        """Reap a stale process from an earlier run, then start this one.

        Raises:
            StackError: the binary is missing or cannot be run.
        """
        self.log.parent.mkdir(parents=True, exist_ok=True)
        self.pidfile.parent.mkdir(parents=True, exist_ok=True)
        reap_stale(self.pidfile)
        armed = not self.detached and threading.current_thread() is threading.main_thread()
        preexec = pdeathsig_preexec(self.death_signal) if armed else None
        with self.log.open("ab") as out:
            stamp = dt.datetime.now(dt.UTC).isoformat()
            out.write(f"\n=== {stamp} {' '.join(self.argv)}\n".encode())
            out.flush()
            try:
                self.popen = subprocess.Popen(
                    self.argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                    env={**os.environ, **self.env}, cwd=self.cwd,
                    start_new_session=True,  # a terminal's Ctrl-C reaches us, not them
                    preexec_fn=preexec, close_fds=True,
                )
            except OSError as exc:
                raise StackError(f"start {self.name}: {self.argv[0]}: {exc}") from exc
        self.pidfile.write_text(f"{self.popen.pid} {self.argv[0]}\n")

    def running(self) -> bool:
        """Whether the process is still alive."""
        return self.popen is not None and self.popen.poll() is None

    def exited(self, what: str) -> StackError | None:
        """An error saying the process exited while waiting for ``what``, if it did."""
        if self.popen is None or self.popen.poll() is None:
            return None
        return StackError(f"start {self.name}: exited with {self.popen.returncode} while "
                          f"waiting for {what}; last lines of {self.log}:\n{tail(self.log)}")

    def wait_ready(self, check: Callable[[], bool], timeout: float, what: str) -> float:
        """Poll ``check`` until it is true; return seconds waited.

        Raises:
            StackError: the process exited or ``timeout`` passed, with the log's tail.
        """
        start = time.monotonic()
        delay = 0.05
        while True:
            failed = self.exited(what)
            if failed is not None:
                raise failed
            try:
                if check():
                    return time.monotonic() - start
            except Exception:  # noqa: BLE001 - not ready yet, whatever the reason
                pass
            if time.monotonic() - start > timeout:
                raise StackError(f"start {self.name}: timed out after {timeout:.0f}s waiting "
                                 f"for {what}; last lines of {self.log}:\n{tail(self.log)}")
            time.sleep(delay)
            delay = min(delay * 1.5, 0.5)

    def stop(self, grace: float = STOP_GRACE_S) -> None:
        """Stop the process by its PID and remove the pidfile."""
        if self.popen is not None:
            terminate(self.popen.pid, self.popen, grace)
        self.pidfile.unlink(missing_ok=True)
