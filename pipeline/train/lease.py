"""One trainer per run: a lease in the run's sync folder, and a lock file in the workspace.

Usage:
    from pipeline.train.lease import Lease, workspace_lock
    with workspace_lock(Path("models")):          # a second `animegan train` in this workspace: UserError
        lease = Lease(fs, "bucket/animegan/dcgan-gan-1a2b3c4d5e6f7a8b/lease.json", stale_s=600)
        lease.acquire()        # UserError while another trainer's heartbeat is fresh; a stale one is taken over
        lease.start_heartbeat()                   # renews every stale_s / 4 in a daemon thread
        ...; lease.renew()     # also at each publish; LeaseLost when another trainer took the run over
        lease.release()

The lease is a small JSON file (holder, host, pid, heartbeat time) written with fsspec, so it works in a folder
(a mounted Google Drive, a network disk) and in an object store alike. Object stores have no compare-and-swap, so
acquiring writes the lease, waits a moment and reads it back: of two trainers starting together, the later write
wins and the other refuses. Staleness is judged by the heartbeat's wall-clock time, so the machines' clocks must
agree to well within stale_s (NTP keeps them within seconds). On the lease's own host a holder whose process is
gone is stale at once. stale_s = 0 takes over any lease (when you know the other machine is gone).

The workspace lock is an flock on paths.models/.train.lock: the kernel releases it when its process dies (kill -9
included), so it never goes stale, and no second trainer gets as far as cleaning up the first one's temporaries.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import logging
import os
import secrets
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pipeline.core.errors import UserError, one_line

log = logging.getLogger(__name__)

LOCK_FILE = ".train.lock"
SETTLE_S = 1.0  # between writing the lease and reading it back: longer than two writes racing on a store


class LeaseLost(UserError):
    """Another trainer holds this run's lease now: this one must stop writing to the run's folder."""


def holder_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"


class Lease:
    def __init__(self, fs: Any, path: str, stale_s: float, holder: str | None = None, settle_s: float = SETTLE_S):
        self.fs, self.path, self.stale_s, self.settle_s = fs, path, float(stale_s), settle_s
        self.holder = holder or holder_id()
        self.lost: str | None = None  # why, once another trainer took over
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._write_lock = threading.Lock()

    def read(self) -> dict[str, Any] | None:
        try:
            data = json.loads(self.fs.cat_file(self.path))
        except FileNotFoundError:
            return None
        except (ValueError, UnicodeDecodeError):
            return None  # a torn or foreign file holds no one's claim
        return data if isinstance(data, dict) else None

    def acquire(self) -> None:
        current = self.read()
        if current is not None and current.get("holder") != self.holder:
            age = time.time() - float(current.get("heartbeat", 0))
            if not self._stale(current, age):
                raise UserError(
                    f"{self.where()} is being trained by {current.get('holder')} (heartbeat {age:.0f} s ago): it "
                    f"is free once its heartbeat is {self.stale_s:.0f} s old (train.sync_stale_s; 0 takes it now)"
                )
            log.warning("taking over %s from %s, whose last heartbeat was %.0f s ago (train.sync_stale_s %.0f)",
                        self.where(), current.get("holder"), age, self.stale_s)  # fmt: skip
        self._write()
        time.sleep(self.settle_s)
        now = self.read()
        if now is None or now.get("holder") != self.holder:
            other = now.get("holder") if now else "nobody (the lease vanished)"
            raise UserError(f"{self.where()}: another trainer, {other}, took the lease as this one started")

    def renew(self) -> None:
        """Write a fresh heartbeat; LeaseLost (and no write) when the lease names another trainer."""
        if self.lost:
            raise LeaseLost(self.lost)
        current = self.read()
        if current is not None and current.get("holder") != self.holder:
            self.lost = (f"{self.where()} was taken over by {current.get('holder')}: this trainer stops; its local "
                         "checkpoint stays")  # fmt: skip
            raise LeaseLost(self.lost)
        self._write()

    def release(self) -> None:
        self.stop_heartbeat()
        with contextlib.suppress(Exception):  # a gone network leaves the lease to go stale
            current = self.read()
            if current is not None and current.get("holder") == self.holder:
                self.fs.rm_file(self.path)

    def start_heartbeat(self, interval_s: float | None = None) -> None:
        interval = interval_s if interval_s is not None else max(self.stale_s / 4, 1.0)
        self._thread = threading.Thread(target=self._beat, args=(interval,), name="lease-heartbeat", daemon=True)
        self._thread.start()

    def stop_heartbeat(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)

    def where(self) -> str:
        return f"run {self.path.rsplit('/', 2)[-2]}" if self.path.count("/") else self.path

    def _beat(self, interval: float) -> None:
        while not self._stop.wait(interval):
            try:
                self.renew()
            except LeaseLost:
                log.warning("%s", self.lost)
                return
            except Exception as e:  # the network may come back before the lease goes stale
                log.warning("could not renew the lease %s (%s): retrying in %.0f s", self.path, one_line(e, 160),
                            interval)  # fmt: skip

    def _stale(self, lease: dict[str, Any], age: float) -> bool:
        if self.stale_s <= 0 or age >= self.stale_s:
            return True
        if lease.get("host") == socket.gethostname() and lease.get("boot") == _boot_id():
            return not _pid_alive(int(lease.get("pid", 0)))
        return False

    def _write(self) -> None:
        data = {"holder": self.holder, "host": socket.gethostname(), "pid": os.getpid(), "boot": _boot_id(),
                "heartbeat": time.time(),
                "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}  # fmt: skip
        folder = self.path.rsplit("/", 1)[0]
        tmp = f"{folder}/.{self.path.rsplit('/', 1)[-1]}.{secrets.token_hex(4)}.tmp"
        with self._write_lock:  # whole or not at all: a reader must never see a torn lease as no lease
            self.fs.makedirs(folder, exist_ok=True)
            self.fs.pipe_file(tmp, json.dumps(data, sort_keys=True).encode())
            self.fs.mv(tmp, self.path)


def _boot_id() -> str:
    """This boot of this machine: two containers may share a host name, never a boot id and a host name."""
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return ""


def _pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@contextlib.contextmanager
def workspace_lock(models: Path) -> Iterator[None]:
    """Hold paths.models/.train.lock for the block; UserError at once when another process holds it."""
    path = Path(models) / LOCK_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            if e.errno in (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS):
                log.warning("%s: this filesystem has no file locks; nothing stops a second trainer here", path)
                yield
                return
            if e.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise
            other = os.pread(fd, 64, 0).decode(errors="replace").strip() or "?"
            raise UserError(
                f"another animegan train (pid {other}) is training in this workspace ({path} is locked): "
                "wait for it to finish or stop it"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield
    finally:
        os.close(fd)  # closing releases the flock
