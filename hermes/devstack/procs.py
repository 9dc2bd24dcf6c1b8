"""Child processes that cannot outlive their parent.

Each child gets PR_SET_PDEATHSIG, so even if the supervisor is killed with
SIGKILL the kernel signals the child; and a session of its own, so a Ctrl-C in
the terminal reaches only the supervisor, which then stops everything in order.
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

_PR_SET_PDEATHSIG = 1


def _death_signal(sig: int) -> Callable[[], None]:
    def set_pdeathsig() -> None:
        # Runs in the child after fork (and after the uid change, if any), before exec.
        if sys.platform.startswith("linux"):
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(_PR_SET_PDEATHSIG, sig, 0, 0, 0)
            # The parent may have died between fork and prctl.
            if os.getppid() == 1:
                os._exit(1)

    return set_pdeathsig


def _primary_group(user: str) -> int:
    import pwd

    return pwd.getpwnam(user).pw_gid


def run_as(user: str | None) -> tuple[str | None, int | None, list[int] | None]:
    """(user, group, extra_groups) for subprocess: run as `user` with only its own group."""
    if user is None:
        return None, None, None
    return user, _primary_group(user), []


class ChildProcess:
    """One supervised child: started, checked, stopped with a graceful signal then SIGKILL."""

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        *,
        log_path: Path,
        stop_signal: int = signal.SIGTERM,
        env: dict[str, str] | None = None,
        cwd: Path | None = None,
        user: str | None = None,
    ) -> None:
        self.name = name
        self.argv = list(argv)
        self.log_path = log_path
        self.stop_signal = stop_signal
        self.env = env
        self.cwd = cwd
        self.user = user
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "ab")
        user, group, extra_groups = run_as(self.user)
        try:
            self.proc = subprocess.Popen(
                self.argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self.env,
                cwd=self.cwd,
                # Drop root's groups too: a group-owned 0701 parent would otherwise deny access.
                user=user,
                group=group,
                extra_groups=extra_groups,
                start_new_session=True,
                preexec_fn=_death_signal(self.stop_signal),
            )
        finally:
            log.close()

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log_tail(self, lines: int = 20) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def signal(self, sig: int) -> None:
        if self.running():
            assert self.proc is not None
            self.proc.send_signal(sig)

    def stop(self, timeout: float = 15.0) -> None:
        """Graceful stop, then SIGKILL after `timeout` seconds."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(self.stop_signal)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def kill(self) -> None:
        """SIGKILL, as a crash would."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def wait_until(check: Callable[[], bool], *, timeout: float, what: str,
               child: ChildProcess | None = None, interval: float = 0.05) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if check():
            return
        if child is not None and child.proc is not None and child.proc.poll() is not None:
            raise RuntimeError(
                f"{what}: process exited with {child.proc.returncode}\n{child.log_tail()}"
            )
        if time.monotonic() > deadline:
            tail = f"\n{child.log_tail()}" if child else ""
            raise TimeoutError(f"{what}: not ready after {timeout:.0f}s{tail}")
        time.sleep(interval)
