"""Checkpoints that outlive the machine: publish each to a sync location, resume from the newest good one anywhere.

Usage:
    from pipeline.train.sync import SyncFolder, Publisher
    folder = SyncFolder.open("s3://bucket/animegan", signature)   # or a local folder; these params' folder under it
    folder.resume(local_step=0, signature=signature, dest=Path("models/checkpoint.pt"))  # -> step installed, or None
    with Publisher(folder, staging=Path("models/.sync"), lease=lease, meta={"fingerprint": fp}) as publisher:
        publisher.publish(Path("models/checkpoint.pt"), step=500)   # returns at once; uploads in a thread
    # leaving the with waits for the last upload (retried once unless an exception ends it) and frees the lease

A training's folder is `<train.sync>/<model>-<loss>-<16 hex of the signature's sha256>/`, so trainings of other
params share one location safely. It holds `checkpoint-<step>.pt` files (the last two), `latest.json` and the lease.
Publishing one checkpoint: upload under a temporary name `.checkpoint-<step>.pt.<random>.tmp`, read it back and
check its size and sha256, rename it to its final name, and only then rewrite `latest.json` (step, file, sha256,
size, signature, fingerprint, host, time, and the same for the previous checkpoint), so the pointer never names
a file that is not complete: a kill or a lost network mid-upload leaves at most a temporary, which the next
publish removes. The pointer is itself written under a temporary name and renamed (one rename in a folder, one
PUT in an object store), so a reader sees the old or the new pointer, whole.

Resuming: the newest pointer entry whose step is higher than the local checkpoint's is a candidate. It is
downloaded to a temporary beside `dest`, its size and sha256 verified, the caller's checks of its content run (the
trainer's: a checkpoint of these params, the step and fingerprint latest.json records), and only then renamed over
`dest`; a candidate that fails any check is skipped with one warning for the previous entry, then the local
checkpoint, which nothing has touched. Steps decide, never file times (a copy changes times, not steps).

Locations are fsspec URLs: a local folder (a mounted Google Drive), `s3://` (s3fs; an S3-compatible store with
FSSPEC_S3_ENDPOINT_URL=http://host:port), `gs://` (gcsfs) or `hf://` (huggingface_hub): the extras are optional
(`pip install 'animegan-pipeline[sync]'`).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import secrets
import shutil
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from pipeline.core.atomic import atomic_path
from pipeline.core.errors import UserError, one_line
from pipeline.core.hashing import sha256_file
from pipeline.train.checkpoint import signature_differences
from pipeline.train.lease import Lease, LeaseLost

log = logging.getLogger(__name__)

POINTER = "latest.json"
LEASE = "lease.json"
CHECKPOINT = re.compile(r"checkpoint-(\d{9,})\.pt")
BLOCK = 8 << 20
EXTRAS = {"s3": "s3fs", "s3a": "s3fs", "gs": "gcsfs", "gcs": "gcsfs", "hf": "huggingface_hub"}


class SyncError(Exception):
    """A publish that did not complete (upload, read-back or pointer); the local checkpoint is untouched."""


def folder_name(signature: dict[str, Any]) -> str:
    """The folder of these params: a readable prefix, then the signature's hash (equal params and data, equal
    folder)."""
    digest = hashlib.sha256(json.dumps(signature, sort_keys=True, default=str).encode()).hexdigest()[:16]
    return f"{signature.get('train.model', 'run')}-{signature.get('train.loss', '')}-{digest}"


def open_location(url: str, key: str = "train.sync") -> tuple[Any, str]:
    """(fsspec filesystem, root path inside it) for train.sync (or key); UserError naming the missing extra or bad
    URL."""
    import fsspec.core

    if "://" not in url:
        url = str(Path(url).expanduser().resolve())
    scheme = url.split("://", 1)[0] if "://" in url else "file"
    try:
        fs, root = fsspec.core.url_to_fs(url)
    except ImportError:
        extra = EXTRAS.get(scheme, f"the fsspec package for {scheme}://")
        raise UserError(f"{key} {url}: {scheme}:// needs {extra}: pip install 'animegan-pipeline[sync]'") from None
    except ValueError as e:
        raise UserError(f"{key} {url}: not a location fsspec knows ({one_line(e, 160)})") from None
    return fs, root.rstrip("/") or "/"


@contextlib.contextmanager
def store_errors(key: str, url: str, verb: str = "read") -> Iterator[None]:
    """A store's own errors inside the block (no network, no bucket, no permission) as one UserError naming key and
    url; a UserError passes as it is."""
    try:
        yield
    except UserError:
        raise
    except Exception as e:
        raise UserError(f"{key} {url}: cannot {verb} it ({type(e).__name__}: {one_line(e, 200)})") from None


class SyncFolder:
    """The folder of one training's params at the sync location: its checkpoints, latest.json and lease."""

    def __init__(self, fs: Any, root: str, name: str, url: str):
        self.fs, self.name = fs, name
        self.path = f"{root.rstrip('/')}/{name}"
        self.url = f"{url.rstrip('/')}/{name}"
        self.newest_step: int | None = None  # the pointer's step, once resume() has read it
        self.other_params: list[str] = []  # candidates resume() skipped as recording other params than its own

    @classmethod
    def open(cls, url: str, signature: dict[str, Any]) -> SyncFolder:
        fs, root = open_location(url)
        return cls(fs, root, folder_name(signature), url)

    def lease(self, stale_s: float) -> Lease:
        return Lease(self.fs, f"{self.path}/{LEASE}", stale_s)

    # ---------- reading ----------

    def pointer(self) -> dict[str, Any] | None:
        """latest.json, or None when the folder has none yet; UserError when it cannot be read as a pointer."""
        path = f"{self.path}/{POINTER}"
        try:
            data = json.loads(self.fs.cat_file(path))
        except FileNotFoundError:
            return None
        except (ValueError, UnicodeDecodeError) as e:
            raise UserError(f"{self.url}/{POINTER} is not a pointer ({one_line(e, 100)}): delete it to "
                            "resume from the local checkpoint and publish afresh") from None  # fmt: skip
        if not isinstance(data, dict) or not isinstance(data.get("step"), int):
            raise UserError(f"{self.url}/{POINTER} is not a pointer (no step): delete it to publish afresh")
        return data

    def resume(
        self,
        local_step: int,
        signature: dict[str, Any],
        dest: Path,
        max_step: int | None = None,
        check: Callable[[Path, dict[str, Any]], str | None] | None = None,
    ) -> int | None:
        """Install the newest synced checkpoint above local_step that passes every check as dest; its step, or None.

        The candidates are the pointer's entry, then its previous one. An entry that records other params than
        signature is skipped undownloaded (and listed in self.other_params). Any other is downloaded to a
        temporary beside dest, its size and sha256 verified, then check(temporary, entry) run (the caller's checks
        of the content: a problem, or None), and only then renamed over dest: a candidate that fails never costs
        dest. A failing candidate is skipped with one warning, for the next."""
        pointer = self.pointer()
        if pointer is None:
            return None
        self.newest_step = int(pointer["step"])
        entries = [e for e in (pointer, pointer.get("previous")) if isinstance(e, dict)]
        for i, entry in enumerate(entries):
            step = int(entry["step"])
            if step <= local_step:
                log.info("the local checkpoint (step %d) is as new as %s's (step %d): keeping it", local_step,
                         self.url, step)  # fmt: skip
                return None
            if max_step is not None and step > max_step:
                log.warning("%s holds step %d, more than the %d asked: not resuming from it", self.url, step,
                            max_step)  # fmt: skip
                continue
            problem = self._other_params(entry, signature) or self._download(entry, dest, check)
            if problem is None:
                log.info("resuming from %s/%s (step %d), written by %s at %s", self.url, entry["file"], step,
                         entry.get("host"), entry.get("time"))  # fmt: skip
                return step
            then = (f"falling back to step {entries[i + 1]['step']}" if i + 1 < len(entries)
                    else f"falling back to the local checkpoint (step {local_step})")  # fmt: skip
            log.warning("%s/%s names %s (step %d), but it %s: %s", self.url, POINTER, entry["file"], step,
                        problem, then)  # fmt: skip
        return None

    def _other_params(self, entry: dict[str, Any], signature: dict[str, Any]) -> str | None:
        """What differs when the entry records the params of its checkpoint and they are not signature's."""
        diffs = signature_differences(entry["signature"], signature) if "signature" in entry else []
        if not diffs:
            return None
        self.other_params.append(f"{self.url}/{entry['file']} ({'; '.join(diffs)})")
        return f"is from other params ({'; '.join(diffs)}), says {POINTER}"

    def _download(self, entry: dict[str, Any], dest: Path, check: Any = None) -> str | None:
        """Copy entry's file to dest through a temporary beside it if it verifies and passes check; else what is
        wrong with it (dest untouched)."""
        if not {"size", "sha256"} <= entry.keys():
            return f"has no size and sha256 in {POINTER} to verify it by"
        return install_verified(self.fs, f"{self.path}/{entry['file']}", dest, entry, check)

    # ---------- writing (only the lease's holder) ----------

    def publish(self, local: Path, step: int, meta: dict[str, Any], check: Any = None) -> dict[str, Any]:
        """Upload local as step's checkpoint, verify it, then point latest.json at it; the new pointer.

        check() runs before the upload and before the pointer is written (the lease's renew: a trainer that lost
        the trainer stops before it writes). SyncError or the store's own error when any part fails."""
        sha, size = sha256_file(local), local.stat().st_size
        name = f"checkpoint-{step:09d}.pt"
        final = f"{self.path}/{name}"
        tmp = f"{self.path}/.{name}.{secrets.token_hex(4)}.tmp"
        if check is not None:
            check()
        self.fs.makedirs(self.path, exist_ok=True)
        try:
            self.fs.put_file(str(local), tmp)
            got_size, got_sha = self._remote_digest(tmp)
            if (got_size, got_sha) != (size, sha):
                raise SyncError(f"{name} read back as {got_size} bytes, sha256 {got_sha[:12]}, not {size} bytes, "
                                f"{sha[:12]}")  # fmt: skip
            self.fs.mv(tmp, final)
        finally:
            if self.fs.exists(tmp):
                self.fs.rm_file(tmp)
        if self.fs.size(final) != size:
            raise SyncError(f"{name} is {self.fs.size(final)} bytes after its rename, not {size}")
        if check is not None:
            check()
        old = self.pointer()
        entry = {"step": step, "file": name, "sha256": sha, "size": size, "host": socket.gethostname(),
                 "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), **meta}  # fmt: skip
        previous = None
        if old is not None and old.get("file") != name and int(old["step"]) < step:
            previous = {k: v for k, v in old.items() if k not in ("previous", "signature")}
        elif old is not None and old.get("file") == name:
            previous = old.get("previous")
        pointer = {**entry, "previous": previous}
        ptmp = f"{self.path}/.{POINTER}.{secrets.token_hex(4)}.tmp"
        self.fs.pipe_file(ptmp, (json.dumps(pointer, indent=2, sort_keys=True) + "\n").encode())
        self.fs.mv(ptmp, f"{self.path}/{POINTER}")
        self._prune(keep={name, previous["file"] if previous else name})
        return pointer

    def _remote_digest(self, path: str) -> tuple[int, str]:
        digest, size = hashlib.sha256(), 0
        with self.fs.open(path, "rb", block_size=BLOCK) as f:
            while chunk := f.read(BLOCK):
                digest.update(chunk)
                size += len(chunk)
        return size, digest.hexdigest()

    def _prune(self, keep: set[str]) -> None:
        """Remove checkpoints the pointer no longer names and temporaries of killed publishes. Only the lease's
        holder publishes, so no temporary here belongs to a live upload."""
        for path in self.fs.ls(self.path, detail=False):
            base = path.rstrip("/").rsplit("/", 1)[-1]
            if (CHECKPOINT.fullmatch(base) and base not in keep) or (base.startswith(".") and base.endswith(".tmp")):
                try:
                    self.fs.rm_file(path)
                except FileNotFoundError:
                    pass


def install_verified(
    fs: Any, remote: str, dest: Path, entry: dict[str, Any], check: Callable[[Path, dict[str, Any]], str | None] | None
) -> str | None:
    """Copy remote (opened for reading only) to dest through a temporary beside it, and rename it over dest only if
    it has the size and sha256 entry records (each checked where entry has it) and check(temporary, entry) finds no
    problem; else what is wrong with it, dest untouched. An exception out of check also leaves dest untouched."""
    digest, size = hashlib.sha256(), 0
    try:
        with atomic_path(dest) as tmp, fs.open(remote, "rb", block_size=BLOCK) as src, open(tmp, "wb") as out:
            while chunk := src.read(BLOCK):
                digest.update(chunk)
                size += len(chunk)
                out.write(chunk)
            out.flush()
            if "size" in entry and size != entry["size"]:
                raise _Rejected(f"is {size} bytes, not {entry['size']} (truncated or replaced)")
            if "sha256" in entry and digest.hexdigest() != entry["sha256"]:
                raise _Rejected("does not match its sha256 (corrupt)")
            if check is not None and (problem := check(tmp, entry)) is not None:
                raise _Rejected(problem)
    except FileNotFoundError:
        return "is missing"
    except _Rejected as r:
        return r.problem
    return None


class _Rejected(Exception):
    """A candidate that failed a check: the with of atomic_path removes its temporary, dest stays."""

    def __init__(self, problem: str):
        self.problem = problem


class Publisher:
    """Publishes checkpoints in a background thread, one at a time; training waits only for an unfinished one."""

    def __init__(self, folder: SyncFolder, staging: Path, lease: Lease | None, meta: dict[str, Any]):
        self.folder, self.staging, self.lease, self.meta = folder, Path(staging), lease, meta
        self.waited_s = 0.0
        self.publish_s: list[float] = []  # how long each successful publish took, in its thread
        self.published: int | None = None  # the last step that reached latest.json
        self.failed: str | None = None  # why the last publish failed, until one succeeds
        self._thread: threading.Thread | None = None
        self._pending: tuple[Path, int] | None = None  # the checkpoint and step of the last publish() call
        self._lost: LeaseLost | None = None
        self.staging.mkdir(parents=True, exist_ok=True)
        for leftover in self.staging.iterdir():  # snapshots of a killed trainer (we hold the workspace lock)
            leftover.unlink(missing_ok=True)

    def publish(self, checkpoint: Path, step: int) -> None:
        """Start publishing checkpoint (as written now) as step; waits, and says so, if the last one is unfinished.
        LeaseLost when another trainer took the folder over."""
        self._wait(f"checkpoint at step {step}")
        if self._lost is not None:
            raise self._lost
        self._pending = (Path(checkpoint), step)
        snapshot = self._snapshot(Path(checkpoint), step)
        self._thread = threading.Thread(target=self._upload, args=(snapshot, step), name="sync-publish", daemon=True)
        self._thread.start()

    def __enter__(self) -> Publisher:
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        """The with's end: close, retrying a failed last upload only when the with ended without an exception."""
        self.close(retry=exc_type is None)

    def close(self, retry: bool = True) -> None:
        """Wait for the last upload; retry it once if it failed, else warn that the synced copy is behind. Releases
        the lease. (Called by the with; a script without one calls it itself.)"""
        self._wait("the end of training")
        if retry and self._lost is None and self._pending is not None and self.published != self._pending[1]:
            checkpoint, step = self._pending
            log.info("retrying the publish of step %d once", step)
            self._upload(self._snapshot(checkpoint, step), step)
            if self.published != step:
                log.warning("%s stays at step %s: rerun `animegan train` with network to publish step %d",
                            self.folder.url, self.published, step)  # fmt: skip
        if self.lease is not None:
            self.lease.release()

    def _wait(self, why: str) -> None:
        if self._thread is None or not self._thread.is_alive():
            return
        t0 = time.perf_counter()
        log.info("%s: waiting for the upload of the previous checkpoint to %s", why, self.folder.url)
        self._thread.join()
        waited = time.perf_counter() - t0
        self.waited_s += waited
        log.info("%s: waited %.1f s for the upload", why, waited)

    def _snapshot(self, checkpoint: Path, step: int) -> Path:
        """A name of its own for this checkpoint's bytes: the next local save renames a new file over
        checkpoint.pt, so a hard link keeps this one intact without a copy (a copy where links are not possible)."""
        snapshot = self.staging / f"checkpoint-{step:09d}.pt"
        snapshot.unlink(missing_ok=True)
        try:
            os.link(checkpoint, snapshot)
        except OSError:
            shutil.copyfile(checkpoint, snapshot)
        return snapshot

    def _upload(self, snapshot: Path, step: int) -> None:
        check = self.lease.renew if self.lease is not None else None
        t0 = time.perf_counter()
        try:
            self.folder.publish(snapshot, step, self.meta, check=check)
            self.published, self.failed = step, None
            self.publish_s.append(time.perf_counter() - t0)
            log.info("published step %d to %s in %.1f s", step, self.folder.url, time.perf_counter() - t0)
        except LeaseLost as e:
            self._lost = e
            log.warning("%s", one_line(e, 300))
        except Exception as e:  # network gone, quota, read-only: training goes on, the next checkpoint retries
            self.failed = one_line(e, 200)
            log.warning("could not publish step %d to %s (%s: %s): the local checkpoint is kept; retrying at the "
                        "next checkpoint", step, self.folder.url, type(e).__name__, self.failed)  # fmt: skip
        finally:
            snapshot.unlink(missing_ok=True)
