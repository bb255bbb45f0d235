"""The cached index of the ILSVRC2012 image archives: a tar of class tars (train) and a flat tar (val).

Cache: ``<archive>.index.json`` beside the archive, or in ``cache_dir`` when given, or in the tool's cache
folder (:func:`imagenet_prep.io.paths.cache_dir`, subfolder ``archive-index``) when the archive's folder is
not writable. It is keyed by the archive's size and mtime_ns (a stale cache is ignored) and written
atomically, by the parent process only (workers never write it). Its contents are checked when loaded (see
"cache schema"): a malformed cache is ignored and rebuilt. It records each member's header offset, so every
worker read can check the member's tar header first (sources/base.py): no cache can mislabel an image.
"""

from __future__ import annotations

import hashlib
import json
import operator
import os
import re
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import ArchiveError
from .atomic import write_text_atomic
from .bytesource import FileByteSource, is_remote, open_byte_source
from .paths import cache_dir as _tool_cache_dir
from .tar import ClassTar, TarMember, index_class_tar, scan_tar

if TYPE_CHECKING:
    from .http import HttpByteSource

CACHE_FORMAT = (
    3  # 2: hidden names (._x.JPEG) and over-long names are refused; 3: header offsets, sparse refused
)
_CLASS_TAR_RE = re.compile(r"^n\d{8}\.tar$")


def _user_cache_dir() -> Path:
    return _tool_cache_dir() / "archive-index"


def _shared_cache_name(archive: Path | str, suffix: str = ".index.json") -> str:
    # Archives with one name in different folders must not share a cache file in a common cache folder.
    if isinstance(archive, str):  # a URL
        digest = hashlib.sha1(archive.encode()).hexdigest()[:12]
        return f"{archive.rstrip('/').rsplit('/', 1)[-1]}.{digest}{suffix}"
    digest = hashlib.sha1(str(archive.resolve()).encode("utf-8", "surrogateescape")).hexdigest()[:12]
    return f"{archive.name}.{digest}{suffix}"


def cache_path_candidates(
    archive: str | os.PathLike[str],
    cache_dir: str | os.PathLike[str] | None = None,
    suffix: str = ".index.json",
) -> list[Path]:
    """Where an archive's index cache is looked for and written, in order of preference (``suffix`` tells
    apart several indexes of one file, e.g. a zip's member listing and the listing of a tar.gz inside it)."""
    if is_remote(archive):  # never beside a remote archive
        return [Path(cache_dir or _user_cache_dir()) / _shared_cache_name(str(archive), suffix)]
    archive = Path(archive)
    if cache_dir is not None:
        return [Path(cache_dir) / _shared_cache_name(archive, suffix)]
    return [archive.with_name(archive.name + suffix), _user_cache_dir() / _shared_cache_name(archive, suffix)]


def _pack(members: tuple[TarMember, ...] | list[TarMember]) -> dict[str, list]:
    # Columns, not objects: a full train index is 1.28M members, this keeps the JSON small and fast to load.
    return {
        "names": [m.name for m in members],
        "offsets": [m.offset for m in members],
        "sizes": [m.size for m in members],
        "header_offsets": [m.header_offset for m in members],
    }


def _unpack(packed: dict[str, list]) -> tuple[TarMember, ...]:
    return tuple(
        map(TarMember, packed["names"], packed["offsets"], packed["sizes"], packed["header_offsets"])
    )


# ------------------------------------------------------------------------------------------ cache schema
# A cache is a file anyone may have edited: every value is checked before it is trusted. Anything malformed
# (wrong types, negative or huge values, offsets outside the archive or outside their class tar) makes the
# cache count as absent, and the index is rebuilt from the archive's headers (and the cache rewritten).
def _is_int(value: object) -> bool:
    return type(value) is int


def _refusals_ok(rows: object) -> bool:
    return isinstance(rows, list) and all(
        isinstance(r, list) and len(r) == 2 and all(isinstance(x, str) for x in r) for r in rows
    )


def _members_ok(packed: object, start: int, end: int) -> bool:
    """Columns of members whose header chains and data all lie within [start, end) of the archive."""
    if not isinstance(packed, dict):
        return False
    columns: list[list] = []
    for key in ("names", "offsets", "sizes", "header_offsets"):
        column = packed.get(key)
        if not isinstance(column, list):
            return False
        columns.append(column)
    names, offsets, sizes, headers = columns
    if not len(names) == len(offsets) == len(sizes) == len(headers):
        return False
    if not names:
        return "refused" not in packed or _refusals_ok(packed["refused"])
    # Whole-column checks (C loops: a full train index is 1.28M members).
    if set(map(type, names)) != {str} or not all(names):
        return False
    if not set(map(type, offsets)) | set(map(type, sizes)) | set(map(type, headers)) <= {int}:
        return False
    if min(headers) < start or min(sizes) < 0 or max(map(operator.add, offsets, sizes)) > end:
        return False
    if not all(map(operator.lt, headers, offsets)) or any(map((512).__rmod__, offsets)):
        return False
    return "refused" not in packed or _refusals_ok(packed["refused"])


class _IndexedArchive:
    """Shared plumbing: the byte source, the (size, mtime_ns) key, and the cache file."""

    _KIND = ""
    _EXPECTED = ""
    _SUFFIX = ".index.json"

    def __init__(self, path: str | os.PathLike[str], cache_dir: str | os.PathLike[str] | None = None) -> None:
        self.cache_dir = Path(cache_dir) if cache_dir is not None else None
        self.cache_path: Path | None = None  # where the index was loaded from or saved to
        self._dirty = False
        if is_remote(path):
            self._open_remote(str(path))
            return
        self.path = Path(path)
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            raise ArchiveError(
                f"The archive {self.path} is missing: run `imagenet-prep fetch --dest {self.path.parent}` or "
                f"point --source at the folder that holds {self._EXPECTED}."
            ) from None
        except OSError as exc:
            raise ArchiveError(f"Cannot read the archive {self.path}: {exc.strerror}.") from None
        if not self.path.is_file():
            raise ArchiveError(f"{self.path} is not a file; expected the archive {self._EXPECTED}.")
        self._key: dict[str, object] = {"size": st.st_size, "mtime_ns": st.st_mtime_ns}
        self.source: FileByteSource | HttpByteSource = FileByteSource(self.path)
        self.locator = str(self.path)  # what the build's ByteLocations name
        self._cache_id: str | Path = self.path

    def _open_remote(self, url: str) -> None:
        """An archive on an HTTP(S) server or in an object store: read by ranges; the cache is keyed by URL +
        size + ETag or Last-Modified (pinned at first contact) and lives in the cache folder."""
        source: Any = open_byte_source(url)  # HttpByteSource, ObjectByteSource
        self.source = source
        self.path = Path(source.name)
        from .http import redact  # the cache file never holds a user:password@ from the URL

        self._key = {"url": redact(source.url), **source.validator}  # HEAD: size and validator
        self.locator = source.locator  # url#etag=...: workers check they read this very version
        self._cache_id = source.url

    def _load_cache(self) -> dict | None:
        for candidate in cache_path_candidates(self._cache_id, self.cache_dir, self._SUFFIX):
            try:
                data = json.loads(candidate.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                continue
            if (
                isinstance(data, dict)
                and data.get("format") == CACHE_FORMAT
                and data.get("kind") == self._KIND
                and all(data.get(key) == value for key, value in self._key.items())
                and self._schema_ok(data)
            ):
                self.cache_path = candidate
                return data
        return None

    def _schema_ok(self, data: dict) -> bool:
        """Whether a cache's contents are well-formed for this archive (see "cache schema" above)."""
        raise NotImplementedError

    def _write_cache(self, payload: dict) -> Path | None:
        doc = {"format": CACHE_FORMAT, "kind": self._KIND, "archive": self.path.name, **self._key, **payload}
        text = json.dumps(doc, separators=(",", ":"), ensure_ascii=True)
        for candidate in cache_path_candidates(self._cache_id, self.cache_dir, self._SUFFIX):
            folder = candidate.parent
            try:
                if not isinstance(self._cache_id, Path) or folder != self.path.parent:
                    folder.mkdir(parents=True, exist_ok=True)
                elif not os.access(folder, os.W_OK):
                    continue
                write_text_atomic(candidate, text)
            except OSError:
                continue
            self.cache_path = candidate
            self._dirty = False
            return candidate
        return None

    def close(self) -> None:
        self.source.close()

    def __enter__(self) -> _IndexedArchive:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class TrainArchive(_IndexedArchive):
    """``ILSVRC2012_img_train.tar``: an outer index of class tars and, on demand, an inner index per class.

    Only headers are read: listing the classes reads ~1 KB per class; indexing one class reads ~512 bytes per
    image of that class. Call :meth:`save` to keep the index for next time.
    """

    _KIND = "train"
    _EXPECTED = "ILSVRC2012_img_train.tar"
    _LABEL = "The train archive"
    _WHAT = "The train archive is a tar of 1000 class tars."

    def __init__(self, path: str | os.PathLike[str], cache_dir: str | os.PathLike[str] | None = None) -> None:
        super().__init__(path, cache_dir)
        self._classes: dict[str, ClassTar] | None = None
        self._outer_refused: list[tuple[str, str]] = []
        self._members: dict[str, tuple[TarMember, ...]] = {}
        self._packed: dict[str, dict[str, list]] = {}  # cached inner indexes, unpacked on first use
        self._inner_refused: dict[str, list[tuple[str, str]]] = {}
        cached = self._load_cache()
        if cached is not None:
            self._classes = {row[0]: ClassTar(*row) for row in cached["classes"]}
            self._outer_refused = [tuple(r) for r in cached["refused"]]
            for wnid, packed in cached["members"].items():
                self._packed[wnid] = packed
                self._inner_refused[wnid] = [tuple(r) for r in packed.get("refused", [])]

    def _schema_ok(self, data: dict) -> bool:
        size = self.source.size
        classes, members = data.get("classes"), data.get("members")
        if not (
            isinstance(classes, list) and isinstance(members, dict) and _refusals_ok(data.get("refused"))
        ):
            return False
        spans: dict[str, tuple[int, int]] = {}
        for row in classes:
            if not (isinstance(row, list) and len(row) == 4):
                return False
            wnid, name, offset, length = row
            if not (isinstance(wnid, str) and _CLASS_TAR_RE.match(f"{wnid}.tar") and name == f"{wnid}.tar"):
                return False
            if not (_is_int(offset) and _is_int(length) and offset > 0 and 0 <= length <= size - offset):
                return False
            spans[wnid] = (offset, offset + length)
        return all(wnid in spans and _members_ok(packed, *spans[wnid]) for wnid, packed in members.items())

    def classes(self) -> dict[str, ClassTar]:
        """wnid -> its class tar, in archive order."""
        if self._classes is None:
            self._classes, self._outer_refused = self._index_outer()
            self._dirty = True
        return dict(self._classes)

    def _index_outer(self) -> tuple[dict[str, ClassTar], list[tuple[str, str]]]:
        label = f"{self._LABEL} {self.path}"
        members, refused = scan_tar(self.source, 0, self.source.size, label, tolerate_cut_last=False)
        classes: dict[str, ClassTar] = {}
        for m in members:
            if _CLASS_TAR_RE.match(m.name):
                classes[m.name[:-4]] = ClassTar(m.name[:-4], m.name, m.offset, m.size)
            else:
                refused.append((m.name, "not a class tar (expected <wnid>.tar, e.g. n01440764.tar)"))
        if not classes:
            raise ArchiveError(
                f"{self.path} holds no <wnid>.tar class tars ({len(members)} other members): is it "
                f"{self._EXPECTED}? {self._WHAT}"
            )
        return classes, refused

    def members(self, wnid: str) -> tuple[TarMember, ...]:
        """The images of one class (built on demand from that class tar's headers only)."""
        if wnid in self._members:
            return self._members[wnid]
        if wnid in self._packed:
            self._members[wnid] = _unpack(self._packed.pop(wnid))
            return self._members[wnid]
        classes = self.classes()
        if wnid not in classes:
            raise ArchiveError(
                f"The class {wnid} is not in {self.path} (it holds {len(classes)} class tars)."
            )
        members, refused = index_class_tar(self.source, classes[wnid])
        self.add_members(wnid, members, refused)
        return members

    def add_members(
        self, wnid: str, members: tuple[TarMember, ...], refused: list[tuple[str, str]] | None = None
    ) -> None:
        """Merge an inner index built elsewhere (e.g. by :func:`index_class_tar` in a worker process)."""
        if wnid not in self.classes():
            raise ArchiveError(f"The class {wnid} is not in {self.path}.")
        self._members[wnid] = tuple(members)
        self._packed.pop(wnid, None)
        self._inner_refused[wnid] = list(refused or [])
        self._dirty = True

    def has_members(self, wnid: str) -> bool:
        """Whether the inner index of ``wnid`` is already known (so :meth:`members` reads nothing)."""
        return wnid in self._members or wnid in self._packed

    def indexed_wnids(self) -> tuple[str, ...]:
        """Classes whose inner index is known (from this session or the cache)."""
        return tuple(sorted({*self._members, *self._packed}))

    @property
    def refused(self) -> list[tuple[str, str]]:
        """Refused members (name, reason): outer ones by name, inner ones as ``<wnid>.tar/<name>``."""
        out = list(self._outer_refused)
        for wnid in sorted(self._inner_refused):
            out.extend((f"{wnid}.tar/{name}", reason) for name, reason in self._inner_refused[wnid])
        return out

    def refused_for(self, wnids: Iterable[str]) -> list[tuple[str, str]]:
        """Like :attr:`refused`, but only what concerns a build of ``wnids``: every outer refusal, and the
        inner ones of those classes (the cache may hold refusals of classes indexed for another build)."""
        chosen = set(wnids)
        out = list(self._outer_refused)
        for wnid in sorted(chosen & set(self._inner_refused)):
            out.extend((f"{wnid}.tar/{name}", reason) for name, reason in self._inner_refused[wnid])
        return out

    def save(self) -> Path | None:
        """Write the index cache (atomically) if anything new was indexed; returns where, or None if no cache
        folder is writable (the index then simply is not kept)."""
        classes = self.classes()
        if not self._dirty and self.cache_path is not None:
            return self.cache_path
        packed = dict(self._packed)
        packed.update({wnid: _pack(members) for wnid, members in self._members.items()})
        for wnid, entry in packed.items():
            entry["refused"] = [list(r) for r in self._inner_refused.get(wnid, [])]
        payload = {
            "classes": [[c.wnid, c.name, c.offset, c.size] for c in classes.values()],
            "refused": [list(r) for r in self._outer_refused],
            "members": packed,
        }
        return self._write_cache(payload)


class Fall11Archive(TrainArchive):
    """``fall11_whole.tar`` (ImageNet-21K): the same layout as the ILSVRC train tar, with 21,841 class tars."""

    _KIND = "fall11"
    _EXPECTED = "fall11_whole.tar"
    _LABEL = "The ImageNet-21K archive"
    _WHAT = "fall11_whole.tar is a tar of 21,841 <wnid>.tar class tars."


class ValArchive(_IndexedArchive):
    """``ILSVRC2012_img_val.tar``: a flat tar of images."""

    _KIND = "val"
    _EXPECTED = "ILSVRC2012_img_val.tar"

    def __init__(self, path: str | os.PathLike[str], cache_dir: str | os.PathLike[str] | None = None) -> None:
        super().__init__(path, cache_dir)
        self._members: tuple[TarMember, ...] | None = None
        self._refused: list[tuple[str, str]] = []
        cached = self._load_cache()
        if cached is not None:
            self._members = _unpack(cached["members"])
            self._refused = [tuple(r) for r in cached["refused"]]

    def _schema_ok(self, data: dict) -> bool:
        return _members_ok(data.get("members"), 0, self.source.size) and _refusals_ok(data.get("refused"))

    def members(self) -> tuple[TarMember, ...]:
        """The images, in archive order."""
        if self._members is None:
            label = f"The val archive {self.path}"
            members, self._refused = scan_tar(
                self.source, 0, self.source.size, label, tolerate_cut_last=False
            )
            if not members:
                raise ArchiveError(f"{self.path} holds no images: is it {self._EXPECTED}?")
            self._members = tuple(members)
            self._dirty = True
        return self._members

    @property
    def refused(self) -> list[tuple[str, str]]:
        return list(self._refused)

    def save(self) -> Path | None:
        """Write the index cache (atomically); returns where, or None if no cache folder is writable."""
        members = self.members()
        if not self._dirty and self.cache_path is not None:
            return self.cache_path
        return self._write_cache({"members": _pack(members), "refused": [list(r) for r in self._refused]})
