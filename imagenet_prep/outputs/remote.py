"""Shard outputs in an object store: ``--out s3://bucket/prefix`` or ``gs://bucket/prefix`` with a shard output.

A remote build is a local build into a STAGING folder (a fresh temporary folder), mirrored to the bucket:

1. **Lock**: ``<prefix>/.imagenet-prep/lock`` is created with a conditional put (``If-None-Match: *``; AWS S3
   and moto honour it, a second put gets 412): one build per prefix. The lock holds the pid and host; a lock
   left by a killed build on this host (its pid is gone) is taken over; one held on another host is reported
   with the object to delete if no build runs there. The lock is read back after the put, so a store that
   ignored the condition still cannot hand it to two builds that overlap by more than a moment.
2. **Pull**: the bucket's ``state.json`` and done markers are copied into staging, and one listing gives every
   object's size. A prefix holding objects but no state of ours is refused (not empty).
3. **Units**: :class:`RemoteWriter` wraps the wds/parquet writer. A unit writes its shard into staging as
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
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, cast

from ..errors import BuildError, BuildInterrupted, InputError, OutputLockedError, UsageError
from ..io.atomic import TMP_MARK
from ..records import ManifestRow, Sample, UnitResult, WorkUnit
from .base import CheckReport, Groups, UnitWriter, Writer

if TYPE_CHECKING:
    from ..build.orchestrator import BuildResult
    from ..config import BuildConfig
    from ..image import ImageResult
    from ..plan import BuildPlan

OUT_SCHEMES = ("s3", "gs")
STATE = ".imagenet-prep"
PULLED = ("state.json",)  # state files a resumed build needs (besides the done markers)
STAGING_PREFIX = "imagenet-prep-out-"  # + pid: a killed build's staging folder is removed by the next build

#: url -> {relative key: size}: the parent's listing of a remote OUT at the start of a build (step 2).
_LISTINGS: dict[str, dict[str, int]] = {}


class ObjectUrl(str):
    """A remote OUT where a path is expected for display (``result.out / "build.json"`` -> the object's URL)."""

    def __truediv__(self, name: str) -> ObjectUrl:
        return ObjectUrl(f"{self.rstrip('/')}/{name}")

    @property
    def name(self) -> str:
        return self.rstrip("/").rsplit("/", 1)[-1]


def out_url(value: str) -> str:
    """``--out`` given as a URL: an object-store prefix we can write (``s3://bucket/prefix``), else a usage error."""
    scheme, _, rest = value.partition("://")
    if scheme.lower() not in OUT_SCHEMES:
        raise UsageError(
            f"--out {value}: builds write to a local folder or to s3:// or gs://bucket/prefix (shard outputs), not to "
            f"{scheme}://. Give a folder, or build locally and copy the result."
        )
    bucket = rest.strip("/").split("/", 1)[0]
    if not bucket:
        raise UsageError(f"--out {value}: name a bucket (s3://bucket/prefix).")
    return f"{scheme.lower()}://{rest.strip('/')}"


def _fs(url: str) -> Any:
    from ..io.objectstore import _filesystem

    return _filesystem(url.split("://", 1)[0], what="--out")


def _pid_gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except OSError:
        return False
    return False


# ------------------------------------------------------------------------------------------------ the writer
class RemoteUnit(UnitWriter):
    """A shard unit written into staging, uploaded on commit; its done marker is uploaded once written."""

    def __init__(self, inner: UnitWriter, url: str, stage: str) -> None:
        self._inner = inner
        self._url = url
        self._stage = stage
        self._files: dict[str, int] = {}

    def add(self, sample: Sample, image: ImageResult) -> ManifestRow:
        return self._inner.add(sample, image)

    def commit(self) -> None:
        self._inner.commit()
        files = self._inner.files()
        fs = _fs(self._url)
        for rel, size in sorted(files.items()):
            local, remote = f"{self._stage}/{rel}", f"{self._url}/{rel}"
            _upload(fs, local, remote, size)
            os.unlink(local)
        self._files = dict(files)

    def files(self) -> dict[str, int]:
        return self._files

    def abort(self) -> None:
        self._inner.abort()

    def published(self, marker: Path) -> None:
        """Upload the done marker (written after the unit's objects are in the bucket)."""
        rel = f"{STATE}/done/{marker.name}"
        _upload(_fs(self._url), str(marker), f"{self._url}/{rel}", marker.stat().st_size)


def _upload(fs: Any, local: str, remote: str, size: int) -> None:
    """One object from a local file; its size is checked once it is there (a PUT is all-or-nothing)."""
    try:
        fs.put_file(local, remote)
        stored = int(fs.info(remote)["size"])
    except (OSError, ValueError) as exc:
        raise BuildError(
            f"Cannot upload {remote}: {exc}. Check the bucket and your credentials, then run the same command "
            "again: finished units are kept."
        ) from None
    if stored != size:
        raise BuildError(
            f"{remote} holds {stored} bytes after its upload, not {size}: run the same command again."
        )


@dataclass(frozen=True)
class RemoteWriter(Writer):
    """A shard writer (wds, parquet) whose units end up in an object store (see the module docstring)."""

    name: ClassVar[str] = "remote"
    inner: Writer
    url: str

    def group(self, split: str, groups: Groups) -> Groups:
        return self.inner.group(split, groups)

    def prepare(self, out: Path, plan: BuildPlan) -> None:
        self.inner.prepare(out, plan)
        # state.json (the fingerprint) goes up before any unit runs: a killed build's re-run recognises the prefix.
        fs = _fs(self.url)
        for name in PULLED:
            path = out / STATE / name
            _upload(fs, str(path), f"{self.url}/{STATE}/{name}", path.stat().st_size)

    def work_dirs(self, units: Sequence[WorkUnit]) -> list[str]:
        return self.inner.work_dirs(units)

    def managed_entries(self, out: Path) -> list[Path]:
        return self.inner.managed_entries(out)

    def open_unit(self, out: str, unit: WorkUnit) -> RemoteUnit:
        return RemoteUnit(self.inner.open_unit(out, unit), self.url, out)

    def finalize(self, out: Path, plan: BuildPlan, results: Sequence[UnitResult]) -> None:
        self.inner.finalize(out, plan, results)

    def check(self, out: Path, decode: bool, progress: Callable[[int], None] | None) -> CheckReport:
        return self.inner.check(out, decode, progress)

    def files_intact(self, out: Path | str, result: UnitResult) -> bool:
        """A finished unit's objects are all in the bucket with their recorded sizes (the start's listing)."""
        listing = _LISTINGS.get(self.url)
        if listing is None:
            listing = _LISTINGS[self.url] = _list(_fs(self.url), self.url)
        return all(listing.get(rel) == size for rel, size in result.files)


# ------------------------------------------------------------------------------------------------ the build
def _list(fs: Any, url: str) -> dict[str, int]:
    """Every object under the prefix: relative key -> size (one listing)."""
    with contextlib.suppress(AttributeError):
        fs.invalidate_cache()
    root = url.split("://", 1)[1].rstrip("/") + "/"
    try:
        found = fs.find(url, detail=True)
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise BuildError(f"Cannot list {url}: {exc}. Check the bucket name and your credentials.") from None
    listing = {}
    for key, info in found.items():
        key = key.split("://", 1)[-1]
        if key.startswith(root):
            listing[key[len(root) :]] = int(info.get("size") or 0)
    return listing


@contextlib.contextmanager
def _bucket_lock(fs: Any, url: str) -> Iterator[None]:
    key = f"{url}/{STATE}/lock"
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
    listing = _list(fs, url)
    state = [rel for rel in listing if rel.startswith(f"{STATE}/")]
    if f"{STATE}/state.json" not in listing:
        foreign = sorted(rel for rel in listing if rel not in state)
        if foreign:
            raise UsageError(
                f"The output prefix {url} is not empty ({', '.join(foreign[:5])}) and holds no build of ours. "
                "Use another --out prefix."
            )
    pulled = {f"{STATE}/{name}" for name in PULLED}
    wanted = [
        rel
        for rel in state
        if rel in pulled or rel.startswith(f"{STATE}/done/") and rel.endswith(".json") and rel.count("/") == 2
    ]
    contents = fs.cat([f"{url}/{rel}" for rel in wanted]) if wanted else {}  # fetched concurrently
    (staging / STATE / "done").mkdir(parents=True, exist_ok=True)
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
        and STATE not in path.relative_to(staging).parts
        and not path.name.startswith(TMP_MARK)
        and path.name != "build.json"
    )
    record = staging / "build.json"
    data = json.loads(record.read_text(encoding="utf-8"))
    data.setdefault("config", {})["out"] = url  # not the staging folder
    record.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    for path in [*files, record]:
        rel = path.relative_to(staging).as_posix()
        _upload(fs, str(path), f"{url}/{rel}", path.stat().st_size)


def _remove_dead_staging() -> None:
    """Staging folders that killed builds on this machine left in $TMPDIR (their pid is gone): removed."""
    root = Path(tempfile.gettempdir())
    for folder in root.glob(f"{STAGING_PREFIX}*-*"):
        pid = folder.name[len(STAGING_PREFIX) :].split("-", 1)[0]
        if pid.isdigit() and _pid_gone(int(pid)) and folder.is_dir() and not folder.is_symlink():
            shutil.rmtree(folder, ignore_errors=True)


def build_remote(
    config: BuildConfig,
    progress: Callable[[int], None] | None,
    on_plan: Callable[[BuildPlan, int], None] | None,
) -> BuildResult:
    """Build into an object-store OUT (``config.out`` is its URL): see the module docstring."""
    from ..build.orchestrator import _build
    from ..build.state import write_error
    from . import shard_outputs, writer_for

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
    fs = _fs(url)
    _remove_dead_staging()
    staging = Path(tempfile.mkdtemp(prefix=f"{STAGING_PREFIX}{os.getpid()}-"))
    try:
        with _bucket_lock(fs, url):
            _LISTINGS[url] = _pull(fs, url, staging)
            local = dataclasses.replace(config, out=staging)
            try:
                result = _build(local, progress, on_plan, [], RemoteWriter(inner, url))
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
        _LISTINGS.pop(url, None)
        shutil.rmtree(staging, ignore_errors=True)
    return dataclasses.replace(result, out=cast(Path, ObjectUrl(url)))
