"""The object-store writer wrapper: a shard writer whose units are uploaded to ``--out s3://...`` or ``gs://...``.

The remote build that stages, locks, pulls and pushes around it is ``build/remote.py`` (its docstring tells the
whole story). Here: :class:`RemoteWriter` wraps the wds/parquet writer; a unit writes its shard into staging as
usual, ``commit`` uploads each file the unit reports (shard, ``.idx``), checks the object's size and removes the
staged copy; then the worker writes the done marker and ``published`` uploads it. A marker is in the bucket only
after the unit's objects are, and an S3 PUT is all-or-nothing, so the bucket never holds half a shard under its
name. A finished unit counts when its objects have the recorded sizes (``files_intact``, from the listing the
build took at its start).
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from ..errors import BuildError
from ..io.objectstore import filesystem
from ..records import ManifestRow, Sample, UnitResult, WorkUnit
from .base import STATE_DIR, CheckReport, Groups, UnitWriter, Writer, WriterContext

if TYPE_CHECKING:
    from ..image import ImageResult

PULLED = ("state.json",)  # state files a resumed build needs (besides the done markers)


def fs_for(url: str) -> Any:
    """The object-store file system of ``url`` (an --out URL)."""
    return filesystem(url.split("://", 1)[0], what="--out")


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
        fs = fs_for(self._url)
        for rel, size in sorted(files.items()):
            local, remote = f"{self._stage}/{rel}", f"{self._url}/{rel}"
            upload(fs, local, remote, size)
            os.unlink(local)
        self._files = dict(files)

    def files(self) -> dict[str, int]:
        return self._files

    def abort(self) -> None:
        self._inner.abort()

    def published(self, marker: Path) -> None:
        """Upload the done marker (written after the unit's objects are in the bucket)."""
        rel = f"{STATE_DIR}/done/{marker.name}"
        upload(fs_for(self._url), str(marker), f"{self._url}/{rel}", marker.stat().st_size)


def upload(fs: Any, local: str, remote: str, size: int) -> None:
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
    #: relative key -> size of every object under the prefix, as the build listed it at its start (None: list
    #: on first use). Not compared: the same writer whatever the bucket holds.
    listing: dict[str, int] | None = dataclasses.field(default=None, compare=False, repr=False)

    def group(self, split: str, groups: Groups) -> Groups:
        return self.inner.group(split, groups)

    def prepare(self, out: Path, context: WriterContext) -> None:
        self.inner.prepare(out, context)
        # state.json (the fingerprint) goes up before any unit runs: a killed build's re-run recognises the prefix.
        fs = fs_for(self.url)
        for name in PULLED:
            path = out / STATE_DIR / name
            upload(fs, str(path), f"{self.url}/{STATE_DIR}/{name}", path.stat().st_size)

    def work_dirs(self, units: Sequence[WorkUnit]) -> list[str]:
        return self.inner.work_dirs(units)

    def managed_entries(self, out: Path) -> list[Path]:
        return self.inner.managed_entries(out)

    def open_unit(self, out: str, unit: WorkUnit) -> RemoteUnit:
        return RemoteUnit(self.inner.open_unit(out, unit), self.url, out)

    def finalize(self, out: Path, context: WriterContext, results: Sequence[UnitResult]) -> None:
        self.inner.finalize(out, context, results)

    def check(self, out: Path, decode: bool, progress: Callable[[int], None] | None) -> CheckReport:
        return self.inner.check(out, decode, progress)

    def plan_warnings(self, units: Sequence[WorkUnit]) -> list[str]:
        return self.inner.plan_warnings(units)

    def files_intact(self, out: Path | str, result: UnitResult) -> bool:
        """A finished unit's objects are all in the bucket with their recorded sizes (the start's listing)."""
        listing = self.listing
        if listing is None:
            listing = list_objects(fs_for(self.url), self.url)
            object.__setattr__(self, "listing", listing)  # a cache: one listing per writer
        return all(listing.get(rel) == size for rel, size in result.files)


def list_objects(fs: Any, url: str) -> dict[str, int]:
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
