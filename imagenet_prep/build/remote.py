"""Shard outputs in an object store: ``--out s3://bucket/prefix`` or ``gs://bucket/prefix`` with a shard output.

A remote build is a local build into a STAGING folder (a fresh temporary folder), mirrored to the bucket:

1. **Lock**: ``<prefix>/.imagenet-prep/lock`` is created with a conditional put (``If-None-Match: *``; AWS S3
   and moto honour it, a second put gets 412): one build per prefix. The lock holds the pid and host; a lock
   left by a killed build on this host (its pid is gone) is taken over; one held on another host is reported
   with the object to delete if no build runs there. The lock is read back after the put, so a store that
   ignored the condition still cannot hand it to two builds that overlap by more than a moment.
2. **Pull**: the bucket's ``state.json`` and done markers are copied into staging, and one listing gives every
   object's size. A prefix holding objects but no state of ours is refused (not empty).
3. **Units**: ``outputs.remote.RemoteWriter`` wraps the wds/parquet writer. A unit writes its shard into staging as
   usual; ``commit`` uploads each file the unit reports (shard, ``.idx``), checks the object's size, and
   removes the staged copy; then the worker writes the done marker and ``published`` uploads it. A marker
   is in the bucket only after the unit's objects are, and an S3 PUT is all-or-nothing, so the bucket never
   holds half a shard under its name.
4. **Resume**: a unit is finished when its marker is in the bucket and its objects have the recorded sizes
   (``RemoteWriter.files_intact``, from the listing of step 2); the rest run again and overwrite their
   objects with the same bytes.
5. **Finalize**: label maps, manifests, ``_info.json`` (wds) or the dataset card (parquet) and build.json
   (with ``out`` = the URL) are written to staging and uploaded, build.json last; staging is removed.

Credentials and the endpoint come from the environment and files botocore reads (``AWS_*``, ``~/.aws``,
``AWS_ENDPOINT_URL`` for MinIO or a test server); they are never printed nor recorded.

Not here (yet): ImageFolder (one object per image: use a shard output), ``--num-shards`` and ``finalize``
into a bucket, ``--overwrite`` of a bucket prefix, ``check`` of a bucket, and Dask workers on other machines
(the staging folder is on the machine that runs the build).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import shutil
import socket
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from ..errors import BuildError, BuildInterrupted, InputError, OutputLockedError, UsageError
from ..io.atomic import TMP_MARK
from ..outputs import shard_outputs, writer_for
from ..outputs.base import STATE_DIR
from ..outputs.remote import PULLED, RemoteWriter, fs_for, list_objects, upload
from .state import write_error

if TYPE_CHECKING:
    from ..config import BuildConfig
    from ..outputs.base import Writer

Result = TypeVar("Result")

STAGING_PREFIX = "imagenet-prep-out-"  # + pid: a killed build's staging folder is removed by the next build


class ObjectUrl(str):
    """A remote OUT where a path is expected for display (``result.out / "build.json"`` -> the object's URL)."""

    def __truediv__(self, name: str) -> ObjectUrl:
        return ObjectUrl(f"{self.rstrip('/')}/{name}")

    @property
    def name(self) -> str:
        return self.rstrip("/").rsplit("/", 1)[-1]


def _pid_gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except OSError:
        return False
    return False


@contextlib.contextmanager
def _bucket_lock(fs: Any, url: str) -> Iterator[None]:
    key = f"{url}/{STATE_DIR}/lock"
    body = json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "started": time.time()}).encode()
    for attempt in range(2):
        try:
            # Create only if absent: S3's If-None-Match, GCS's ifGenerationMatch=0 (gcsfs mode="create").
            conditional = {"mode": "create"} if url.startswith("gs://") else {"IfNoneMatch": "*"}
            fs.pipe_file(key, body, **conditional)
        except FileExistsError:
            try:
                holder = json.loads(fs.cat_file(key))
            except (OSError, ValueError):
                holder = {}
            pid, host = holder.get("pid"), holder.get("host")
            if attempt == 0 and host == socket.gethostname() and isinstance(pid, int) and _pid_gone(pid):
                fs.rm_file(key)  # left by a killed build on this machine: take it over
                continue
            raise OutputLockedError(
                f"Another imagenet-prep build (pid {pid} on {host}) holds {key}. Wait for it to finish; if no "
                "build is running there, delete that object and run this command again."
            ) from None
        except FileNotFoundError:
            bucket = url.split("://", 1)[1].split("/", 1)[0]
            raise InputError(
                f"--out {url}: the bucket {bucket} does not exist (or is not visible with your credentials). "
                "Create it, or name another."
            ) from None
        except (OSError, ValueError) as exc:
            raise BuildError(
                f"Cannot create {key}: {exc}. Check the bucket name and your credentials."
            ) from None
        break
    with contextlib.suppress(OSError):
        fs.invalidate_cache(key)
    if fs.cat_file(key) != body:  # a store that ignored If-None-Match: someone else's put won
        raise OutputLockedError(
            f"Another imagenet-prep build took {key} at the same moment: run it again later."
        )
    try:
        yield
    finally:
        with contextlib.suppress(OSError):
            fs.rm_file(key)


def _pull(fs: Any, url: str, staging: Path) -> dict[str, int]:
    """The bucket's state and done markers into staging; the listing of every object (step 2)."""
    listing = list_objects(fs, url)
    state = [rel for rel in listing if rel.startswith(f"{STATE_DIR}/")]
    if f"{STATE_DIR}/state.json" not in listing:
        foreign = sorted(rel for rel in listing if rel not in state)
        if foreign:
            raise UsageError(
                f"The output prefix {url} is not empty ({', '.join(foreign[:5])}) and holds no build of ours. "
                "Use another --out prefix."
            )
    pulled = {f"{STATE_DIR}/{name}" for name in PULLED}
    wanted = [
        rel
        for rel in state
        if rel in pulled
        or rel.startswith(f"{STATE_DIR}/done/")
        and rel.endswith(".json")
        and rel.count("/") == 2
    ]
    contents = fs.cat([f"{url}/{rel}" for rel in wanted]) if wanted else {}  # fetched concurrently
    (staging / STATE_DIR / "done").mkdir(parents=True, exist_ok=True)
    for rel in wanted:
        data = contents.get(f"{url}/{rel}", contents.get(f"{url}/{rel}".split("://", 1)[1]))
        if isinstance(data, bytes):
            (staging / rel).write_bytes(data)
    return listing


def _push_final(fs: Any, url: str, staging: Path) -> None:
    """What finalize wrote (label maps, manifests, _info.json / README.md), then build.json last."""
    files = sorted(
        path
        for path in staging.rglob("*")
        if path.is_file()
        and STATE_DIR not in path.relative_to(staging).parts
        and not path.name.startswith(TMP_MARK)
        and path.name != "build.json"
    )
    record = staging / "build.json"
    data = json.loads(record.read_text(encoding="utf-8"))
    data.setdefault("config", {})["out"] = url  # not the staging folder
    record.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    for path in [*files, record]:
        rel = path.relative_to(staging).as_posix()
        upload(fs, str(path), f"{url}/{rel}", path.stat().st_size)


def _remove_dead_staging() -> None:
    """Staging folders that killed builds on this machine left in $TMPDIR (their pid is gone): removed."""
    root = Path(tempfile.gettempdir())
    for folder in root.glob(f"{STAGING_PREFIX}*-*"):
        pid = folder.name[len(STAGING_PREFIX) :].split("-", 1)[0]
        if pid.isdigit() and _pid_gone(int(pid)) and folder.is_dir() and not folder.is_symlink():
            shutil.rmtree(folder, ignore_errors=True)


def build_remote(config: BuildConfig, build_into: Callable[[BuildConfig, Writer], Result]) -> Result:
    """Build into an object-store OUT (``config.out`` is its URL): see the module docstring. ``build_into(
    staging config, writer)`` is the local build (the orchestrator's, handed down: this module imports no
    orchestrator); its result is returned as it is (its ``out`` names the staging folder, gone by then)."""
    url = str(config.out)
    inner = writer_for(config)
    if not inner.shards:
        choices = " or ".join(f"--output {name}" for name in shard_outputs())
        raise UsageError(
            f"--out {url}: an object store takes shard outputs only ({choices}); "
            f"--output {inner.name} writes one file per image: give a local --out folder for it."
        )
    if config.sharded:
        raise UsageError(
            f"--num-shards with --out {url} is not supported yet: build into a local or shared folder."
        )
    if config.overwrite:
        raise UsageError(
            f"--overwrite does not remove objects: delete the prefix {url} yourself (or choose another), then build."
        )
    fs = fs_for(url)
    _remove_dead_staging()
    staging = Path(tempfile.mkdtemp(prefix=f"{STAGING_PREFIX}{os.getpid()}-"))
    try:
        with _bucket_lock(fs, url):
            listing = _pull(fs, url, staging)
            local = dataclasses.replace(config, out=staging)
            try:
                result = build_into(local, RemoteWriter(inner, url, listing))
            except OSError as exc:
                raise write_error(exc, staging) from None
            _push_final(fs, url, staging)
    except (UsageError, InputError, BuildInterrupted) as exc:
        # A refusal or an interrupt names the bucket, not the staging folder (a unit's failure keeps its file).
        raise type(exc)(str(exc).replace(str(staging), url)) from None
    except KeyboardInterrupt:  # outside the units (the lock, the pull, the last uploads)
        raise BuildInterrupted(
            f"Interrupted. Finished units are kept in {url}: run the same command again to resume."
        ) from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return result
