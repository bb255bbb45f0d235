"""Known ILSVRC2012 release archives: file names, sizes, MD5s, URL paths, contents.

Facts come from the bundled ``data/checksums.tsv`` (sources listed there). A size written like ``~2.5MB`` is a
label from a download page, not a byte count, so it is treated as unknown. A mirror with other bytes (or the
miniature sample release) supplies its own MD5SUMS file, which overrides the catalog per file name.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path

from ..errors import InputError, UsageError

DEFAULT_BASE_URL = "https://image-net.org/data/ILSVRC/2012/"

#: Keys fetched when the user names none: what a build needs.
DEFAULT_KEYS: tuple[str, ...] = ("train", "val", "devkit")

_MD5_RE = re.compile(r"^[0-9a-fA-F]{32}$")

# key -> (file name, what it holds, image count or None when not established)
_KNOWN: dict[str, tuple[str, str, int | None]] = {
    "train": (
        "ILSVRC2012_img_train.tar",
        "training images: 1000 class tars <wnid>.tar of <wnid>_<n>.JPEG",
        1_281_167,
    ),
    "val": ("ILSVRC2012_img_val.tar", "validation images, flat ILSVRC2012_val_<8 digits>.JPEG", 50_000),
    "devkit": (
        "ILSVRC2012_devkit_t12.tar.gz",
        "development kit, tasks 1 and 2: data/meta.mat and the validation ground truth",
        None,
    ),
    "test": ("ILSVRC2012_img_test_v10102019.tar", "test images without labels (2019 re-release)", 100_000),
    "bbox_train": ("ILSVRC2012_bbox_train_v2.tar.gz", "training bounding boxes, PASCAL VOC XML (v2)", None),
    "bbox_val": ("ILSVRC2012_bbox_val_v3.tgz", "validation bounding boxes, PASCAL VOC XML (v3)", 50_000),
    "devkit_t3": ("ILSVRC2012_devkit_t3.tar.gz", "development kit, task 3 (fine-grained dogs)", None),
    "train_t3": ("ILSVRC2012_img_train_t3.tar", "training images, task 3 (dog classes)", None),
    "bbox_train_dogs": ("ILSVRC2012_bbox_train_dogs.tar.gz", "training bounding boxes, task 3 dogs", None),
    "bbox_test_dogs": ("ILSVRC2012_bbox_test_dogs.zip", "test bounding boxes, task 3 dogs", None),
}

# The one place the release's file names and inner paths are spelled (sources, sample, devkit, fetch use them).
TRAIN_TAR = _KNOWN["train"][0]
VAL_TAR = _KNOWN["val"][0]
DEVKIT_TAR = _KNOWN["devkit"][0]
DEVKIT_DIR = "ILSVRC2012_devkit_t12"  # the devkit tar's top folder (also accepted extracted, as a folder)
META_PATH = f"{DEVKIT_DIR}/data/meta.mat"
GROUND_TRUTH_PATH = f"{DEVKIT_DIR}/data/ILSVRC2012_validation_ground_truth.txt"
MD5SUMS = "MD5SUMS"


@dataclass(frozen=True)
class ArchiveInfo:
    """One release file. ``size``/``md5`` are None when not established; ``url_path`` is relative to a base
    URL."""

    key: str
    filename: str
    size: int | None
    md5: str | None
    url_path: str
    description: str
    images: int | None


@dataclass(frozen=True)
class Expected:
    """What a file must be: the catalog's facts, possibly overridden by an MD5SUMS file."""

    filename: str
    size: int | None
    md5: str | None
    url_path: str


def _parse_size(text: str) -> int | None:
    return int(text) if text.isdigit() else None


def _parse_md5(text: str) -> str | None:
    return text.lower() if _MD5_RE.match(text) else None


@lru_cache(maxsize=1)
def _catalog() -> tuple[ArchiveInfo, ...]:
    rows: dict[str, list[str]] = {}
    text = resources.files("imagenet_prep").joinpath("data/checksums.tsv").read_text(encoding="utf-8")
    for line in text.splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        fields = line.split("\t")
        rows[fields[0]] = fields
    infos = []
    for key, (filename, description, images) in _KNOWN.items():
        row = rows.get(filename)
        if row is None:  # pragma: no cover - guards the bundled data file
            raise RuntimeError(f"bundled checksums.tsv has no row for {filename}")
        url = row[4]
        url_path = url[len(DEFAULT_BASE_URL) :] if url.startswith(DEFAULT_BASE_URL) else filename
        infos.append(
            ArchiveInfo(
                key=key,
                filename=filename,
                size=_parse_size(row[1]),
                md5=_parse_md5(row[2]),
                url_path=url_path,
                description=description,
                images=images,
            )
        )
    return tuple(infos)


def all_archives() -> tuple[ArchiveInfo, ...]:
    """Every known ILSVRC2012 archive, in catalog order (train, val, devkit first)."""
    return _catalog()


def keys() -> tuple[str, ...]:
    return tuple(info.key for info in _catalog())


def by_key(key: str) -> ArchiveInfo:
    """The archive for a short key such as ``train``; UsageError listing the valid keys otherwise."""
    for info in _catalog():
        if info.key == key:
            return info
    raise UsageError(f"unknown archive {key!r}; known archives: {', '.join(keys())}")


def by_filename(filename: str) -> ArchiveInfo | None:
    """The catalog entry for a release file name, or None when the name is not a known archive."""
    for info in _catalog():
        if info.filename == filename:
            return info
    return None


def _check_name(name: str, path: Path, lineno: int) -> str:
    if name.startswith("./"):
        name = name[2:]
    # Names come from a file a mirror hands out: they become paths, so only plain file names are accepted.
    if not name or name in (".", "..") or "/" in name or "\\" in name or "\0" in name:
        raise InputError(
            f"{path}:{lineno}: {name!r} is not a plain file name; MD5SUMS must list files in one folder"
        )
    return name


def parse_md5sums(path: str | Path) -> dict[str, str]:
    """Read an MD5SUMS file: ``md5  name`` or ``md5 *name`` (md5sum), or ``MD5 (name) = md5`` (BSD).

    Blank lines and ``#`` comments are skipped; anything else that does not parse is an InputError naming the
    line.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise InputError(f"cannot read checksums file {path}: {exc.strerror or exc}") from exc
    sums: dict[str, str] = {}
    for lineno, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        bsd = re.match(r"^MD5 \((.+)\) = ([0-9a-fA-F]{32})$", line)
        if bsd:
            name, digest = bsd.group(1), bsd.group(2)
        else:
            gnu = re.match(r"^([0-9a-fA-F]{32}) [ *](.+)$", line)
            if not gnu:
                raise InputError(
                    f"{path}:{lineno}: not an MD5SUMS line (want '<32 hex digits>  <file name>'): "
                    f"{line[:80]!r}"
                )
            digest, name = gnu.group(1), gnu.group(2)
        sums[_check_name(name, path, lineno)] = digest.lower()
    if not sums:
        raise InputError(f"{path} lists no checksums")
    return sums


def expected_for(filename: str, overrides: Mapping[str, str] | None = None) -> Expected:
    """What ``filename`` must be. An MD5 from ``overrides`` wins; the catalog size is kept only when the
    override names the same bytes (same MD5), since a mirror with other bytes has another size too."""
    info = by_filename(filename)
    size = info.size if info else None
    md5 = info.md5 if info else None
    url_path = info.url_path if info else filename
    if overrides and filename in overrides:
        override = overrides[filename].lower()
        if override != md5:
            size = None
        md5 = override
    return Expected(filename=filename, size=size, md5=md5, url_path=url_path)


def known_filenames(overrides: Mapping[str, str] | None = None) -> tuple[str, ...]:
    """Catalog file names followed by any further names an MD5SUMS file adds."""
    names = [info.filename for info in _catalog()]
    if overrides:
        names += [name for name in overrides if name not in names]
    return tuple(names)


def resolve(
    names: list[str] | tuple[str, ...] | None, overrides: Mapping[str, str] | None = None
) -> list[Expected]:
    """Turn keys (``train``) or file names (catalog or MD5SUMS) into what to fetch; default: DEFAULT_KEYS."""
    if not names:
        names = DEFAULT_KEYS
    out: list[Expected] = []
    for name in names:
        name = name.strip()
        if not name:
            continue
        if any(info.key == name for info in _catalog()):
            filename = by_key(name).filename
        elif by_filename(name) is not None or (overrides and name in overrides):
            filename = name
        else:
            extra = f"; or a file listed in the checksums file ({', '.join(overrides)})" if overrides else ""
            raise UsageError(f"unknown archive {name!r}; known archives: {', '.join(keys())}{extra}")
        if all(e.filename != filename for e in out):
            out.append(expected_for(filename, overrides))
    if not out:
        raise UsageError(f"no archives named; known archives: {', '.join(keys())}")
    return out
