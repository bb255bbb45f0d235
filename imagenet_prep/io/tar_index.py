"""The cached index of the ILSVRC2012 image archives: a tar of class tars (train) and a flat tar (val).

Cache: ``<archive>.index.json`` beside the archive, or in ``cache_dir`` when given, or in the tool's cache
folder (:func:`imagenet_prep.io.paths.cache_dir`, subfolder ``archive-index``) when the archive's folder is
not writable. It is keyed by the archive's size and mtime_ns (a stale cache is ignored) and written
atomically, by the parent process only (workers never write it).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Iterable
from pathlib import Path
from typing import IO

from ..errors import ArchiveError
from .atomic import write_bytes_atomic
from .bytesource import FileByteSource
from .paths import cache_dir as _tool_cache_dir
from .tar import ClassTar, TarMember, index_class_tar, scan_tar

# 2: hidden names (._x.JPEG) and over-long names are refused. 4: JSON lines: a header line (classes, refusals,
# where each class's members are), then one line per class, read only when that class is needed. (Not 3:
# another branch's format 3 is a different layout under the same file name.)
CACHE_FORMAT = 4
_CLASS_TAR_RE = re.compile(r"^n\d{8}\.tar$")


def _user_cache_dir() -> Path:
    return _tool_cache_dir() / "archive-index"


def _shared_cache_name(archive: Path) -> str:
    # Archives with one name in different folders must not share a cache file in a common cache folder.
    digest = hashlib.sha1(str(archive.resolve()).encode("utf-8", "surrogateescape")).hexdigest()[:12]
    return f"{archive.name}.{digest}.index.json"


def cache_path_candidates(
    archive: str | os.PathLike[str], cache_dir: str | os.PathLike[str] | None = None
) -> list[Path]:
    """Where an archive's index cache is looked for and written, in order of preference."""
    archive = Path(archive)
    if cache_dir is not None:
        return [Path(cache_dir) / _shared_cache_name(archive)]
    return [archive.with_name(archive.name + ".index.json"), _user_cache_dir() / _shared_cache_name(archive)]


def _pack(members: tuple[TarMember, ...] | list[TarMember]) -> dict[str, list]:
    # Columns, not objects: a full train index is 1.28M members, this keeps the JSON small and fast to load.
    return {
        "names": [m.name for m in members],
        "offsets": [m.offset for m in members],
        "sizes": [m.size for m in members],
    }


def _unpack(packed: dict[str, list]) -> tuple[TarMember, ...]:
    return tuple(map(TarMember, packed["names"], packed["offsets"], packed["sizes"]))


class _IndexedArchive:
    """Shared plumbing: the byte source, the (size, mtime_ns) key, and the cache file."""

    _KIND = ""
    _EXPECTED = ""

    def __init__(self, path: str | os.PathLike[str], cache_dir: str | os.PathLike[str] | None = None) -> None:
        self.path = Path(path)
        self.cache_dir = Path(cache_dir) if cache_dir is not None else None
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
        self._key = {"size": st.st_size, "mtime_ns": st.st_mtime_ns}
        self.source = FileByteSource(self.path)
        self.cache_path: Path | None = None  # where the index was loaded from or saved to
        self._dirty = False
        self._cache_handle: IO[bytes] | None = None  # the loaded cache file, kept open for its sections
        self._cache_base = 0  # where its sections start (after the header line)

    def _load_cache(self) -> dict | None:
        """The cache's header line (sections are read on demand with :meth:`_section`)."""
        for candidate in cache_path_candidates(self.path, self.cache_dir):
            try:
                handle = open(candidate, "rb")  # noqa: SIM115 - kept open: it pins this version of the file
            except OSError:
                continue
            try:
                first = handle.readline()
                data = json.loads(first)
            except (OSError, ValueError):
                handle.close()
                continue
            if (
                isinstance(data, dict)
                and data.get("format") == CACHE_FORMAT
                and data.get("kind") == self._KIND
                and data.get("size") == self._key["size"]
                and data.get("mtime_ns") == self._key["mtime_ns"]
                and isinstance(data.get("sections"), dict)
            ):
                self.cache_path = candidate
                self._cache_handle, self._cache_base = handle, len(first)
                return data
            handle.close()
        return None

    def _section(self, span: list[int]) -> bytes:
        """The raw bytes of one section of the loaded cache file."""
        assert self._cache_handle is not None
        self._cache_handle.seek(self._cache_base + span[0])
        return self._cache_handle.read(span[1])

    def _write_cache(self, payload: dict, sections: dict[str, bytes] | None = None) -> Path | None:
        spans: dict[str, list[int]] = {}
        position = 0
        for name, blob in (sections or {}).items():
            spans[name] = [position, len(blob)]
            position += len(blob)
        doc = {"format": CACHE_FORMAT, "kind": self._KIND, "archive": self.path.name, **self._key, **payload}
        doc["sections"] = spans
        header = json.dumps(doc, separators=(",", ":"), ensure_ascii=True)
        text = b"".join([header.encode("ascii"), b"\n", *(sections or {}).values()])
        for candidate in cache_path_candidates(self.path, self.cache_dir):
            folder = candidate.parent
            try:
                if folder != self.path.parent:
                    folder.mkdir(parents=True, exist_ok=True)
                elif not os.access(folder, os.W_OK):
                    continue
                write_bytes_atomic(candidate, text)
            except OSError:
                continue
            self.cache_path = candidate
            self._dirty = False
            return candidate
        return None

    def close(self) -> None:
        self.source.close()
        if self._cache_handle is not None:
            self._cache_handle.close()
            self._cache_handle = None

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

    def __init__(self, path: str | os.PathLike[str], cache_dir: str | os.PathLike[str] | None = None) -> None:
        super().__init__(path, cache_dir)
        self._classes: dict[str, ClassTar] | None = None
        self._outer_refused: list[tuple[str, str]] = []
        self._members: dict[str, tuple[TarMember, ...]] = {}  # indexed in this session
        self._spans: dict[
            str, list[int]
        ] = {}  # cached inner indexes: where in the cache file, read on demand
        self._inner_refused: dict[str, list[tuple[str, str]]] = {}
        cached = self._load_cache()
        if cached is not None:
            self._classes = {row[0]: ClassTar(*row) for row in cached["classes"]}
            self._outer_refused = [tuple(r) for r in cached["refused"]]
            self._spans = dict(cached["sections"])
            for wnid, refused in cached["inner_refused"].items():
                self._inner_refused[wnid] = [tuple(r) for r in refused]

    def classes(self) -> dict[str, ClassTar]:
        """wnid -> its class tar, in archive order."""
        if self._classes is None:
            self._classes, self._outer_refused = self._index_outer()
            self._dirty = True
        return dict(self._classes)

    def _index_outer(self) -> tuple[dict[str, ClassTar], list[tuple[str, str]]]:
        label = f"The train archive {self.path}"
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
                f"{self._EXPECTED}? The train archive is a tar of 1000 class tars."
            )
        return classes, refused

    def members(self, wnid: str) -> tuple[TarMember, ...]:
        """The images of one class (built on demand from that class tar's headers only)."""
        if wnid in self._members:
            return self._members[wnid]
        if wnid in self._spans:
            # Not kept: a whole-set plan would hold 1.28M members twice (here and in its samples).
            return _unpack(json.loads(self._section(self._spans[wnid])))
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
        self._spans.pop(wnid, None)
        self._inner_refused[wnid] = list(refused or [])
        self._dirty = True

    def has_members(self, wnid: str) -> bool:
        """Whether the inner index of ``wnid`` is already known (so :meth:`members` reads nothing)."""
        return wnid in self._members or wnid in self._spans

    def indexed_wnids(self) -> tuple[str, ...]:
        """Classes whose inner index is known (from this session or the cache)."""
        return tuple(sorted({*self._members, *self._spans}))

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
        sections: dict[str, bytes] = {}
        for wnid in sorted({*self._spans, *self._members}):
            if wnid in self._members:
                sections[wnid] = (
                    json.dumps(_pack(self._members[wnid]), separators=(",", ":")).encode() + b"\n"
                )
            else:  # from the loaded cache, copied as it is
                sections[wnid] = self._section(self._spans[wnid])
        payload = {
            "classes": [[c.wnid, c.name, c.offset, c.size] for c in classes.values()],
            "refused": [list(r) for r in self._outer_refused],
            "inner_refused": {
                wnid: [list(r) for r in self._inner_refused.get(wnid, [])] for wnid in sections
            },
        }
        return self._write_cache(payload, sections)


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
