"""The ILSVRC2012 devkit (``ILSVRC2012_devkit_t12.tar.gz``): synsets from ``meta.mat`` and validation labels.

``meta.mat`` holds a MATLAB struct array ``synsets`` (1860 rows in the real devkit: the 1000 leaf classes with
IDs 1..1000, then 860 internal WordNet synsets). ``ILSVRC2012_validation_ground_truth.txt`` holds one
ILSVRC2012_ID per line, line k labelling ``ILSVRC2012_val_{k:08d}.JPEG``. Both are read straight from the
tar.gz (nothing is extracted) or from an extracted folder.

Both are read with a cap (``MAX_META_BYTES``, ``MAX_GROUND_TRUTH_BYTES``: several times the real sizes, ~2 MB
and ~190 KB), checked against the tar header or ``fstat`` first and enforced by a bounded read, so a small
devkit that inflates to gigabytes is refused without being inflated; an extracted folder's files must be
regular files (a FIFO would hang the read).
"""

from __future__ import annotations

import contextlib
import functools
import io
import json
import os
import re
import stat
import tarfile
from collections.abc import Iterable
from dataclasses import astuple, dataclass
from pathlib import Path
from typing import IO, Any

from ..errors import DevkitError
from ..fetch.catalog import DEVKIT_DIR, DEVKIT_TAR, GROUND_TRUTH_PATH, META_PATH
from ..taxonomy import classes

__all__ = [
    "DEVKIT_TAR",
    "META_PATH",
    "GROUND_TRUTH_PATH",
    "Devkit",
    "DevkitError",
    "DevkitSynset",
    "compare_with_bundled",
    "read_devkit",
    "val_wnids",
]

MAX_META_BYTES = 16 << 20  # the real meta.mat is ~2 MB
MAX_GROUND_TRUTH_BYTES = 2 << 20  # the real one: 50,000 lines of 1-4 digits, ~190 KB
_CAPS = {"meta": MAX_META_BYTES, "truth": MAX_GROUND_TRUTH_BYTES}
SYNSET_FIELDS = (
    "ILSVRC2012_ID",
    "WNID",
    "words",
    "gloss",
    "num_children",
    "children",
    "wordnet_height",
    "num_train_images",
)
_VAL_NAME_RE = re.compile(r"^ILSVRC2012_val_(\d{8})\.JPEG$")
_ALL_VAL_NAMES_RE = re.compile(r"(?:ILSVRC2012_val_\d{8}\.JPEG\n)*ILSVRC2012_val_\d{8}\.JPEG")  # joined by \n
_GET_DEVKIT = (
    f"put {DEVKIT_TAR} in the source folder (`imagenet-prep fetch --dest DIR --only devkit` downloads it)"
)


@dataclass(frozen=True)
class DevkitSynset:
    """One row of meta.mat's ``synsets``."""

    ilsvrc2012_id: int
    wnid: str
    words: str
    gloss: str
    num_children: int
    children: tuple[int, ...]
    wordnet_height: int
    num_train_images: int


@dataclass(frozen=True)
class Devkit:
    """The parsed devkit: synsets in file order and the validation ground truth (ILSVRC2012_IDs)."""

    synsets: tuple[DevkitSynset, ...]
    val_ground_truth: tuple[int, ...]

    @property
    def leaves(self) -> tuple[DevkitSynset, ...]:
        """The classes (num_children == 0), in ILSVRC2012_ID order."""
        return tuple(sorted((s for s in self.synsets if s.num_children == 0), key=lambda s: s.ilsvrc2012_id))

    @functools.cached_property
    def id_to_wnid(self) -> dict[int, str]:
        """ILSVRC2012_ID -> wnid over the leaves."""
        return {s.ilsvrc2012_id: s.wnid for s in self.leaves}


# ------------------------------------------------------------------------------------------------ reading
def read_devkit(path: str | os.PathLike[str]) -> Devkit:
    """Parse the devkit from its ``.tar.gz`` or from an extracted folder (``ILSVRC2012_devkit_t12`` or the
    folder holding it)."""
    path = Path(path)
    if path.is_dir():
        meta_bytes, gt_bytes = _read_folder(path)
    elif path.is_file():
        meta_bytes, gt_bytes = _read_tar(path)
    else:
        raise DevkitError(f"The devkit {path} does not exist; {_GET_DEVKIT}.")
    synsets = _parse_meta(meta_bytes, path)
    truth = _parse_ground_truth(gt_bytes, path)
    known = {s.ilsvrc2012_id for s in synsets if s.num_children == 0}
    for line_no, value in enumerate(truth, 1):
        if value not in known:
            raise DevkitError(
                f"{path}: line {line_no} of the validation ground truth names ILSVRC2012_ID {value}, "
                f"which is not a leaf class in meta.mat. The devkit is damaged; download it again."
            )
    return Devkit(synsets=synsets, val_ground_truth=truth)


def _too_large(where: Path | str, member: str, size: int | str, cap: int) -> DevkitError:
    return DevkitError(
        f"{where}: {member} is {size} bytes, too large to be the real one (at most {cap} bytes are read); "
        f"the devkit is damaged or not {DEVKIT_TAR}: download it again"
    )


def _read_capped(handle: IO[bytes], cap: int) -> bytes | None:
    """At most ``cap`` bytes from ``handle``; None when there are more."""
    data = handle.read(cap + 1)
    return None if len(data) > cap else data


def _read_regular(path: Path, cap: int) -> bytes:
    """A regular file of at most ``cap`` bytes (checked with fstat on a non-blocking open, then a bounded
    read)."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    with os.fdopen(fd, "rb") as handle:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise DevkitError(f"{path} is not a regular file; {_GET_DEVKIT}.")
        if st.st_size > cap:
            raise _too_large(path.parent.parent, f"data/{path.name}", st.st_size, cap)
        os.set_blocking(fd, True)
        data = _read_capped(handle, cap)
    if data is None:
        raise _too_large(path.parent.parent, f"data/{path.name}", f"more than {cap}", cap)
    return data


# ------------------------------------------------------------------------------------------ parsed cache
PARSED_CACHE_FORMAT = 1


def read_devkit_cached(
    path: str | os.PathLike[str], cache_dir: str | os.PathLike[str] | None = None
) -> Devkit:
    """:func:`read_devkit`, through a cache of the parsed result keyed by the devkit's size and mtime_ns (in
    the tool's cache folder, ``~/.cache/imagenet-prep/archive-index``, or ``cache_dir``). Parsing meta.mat
    needs scipy (~0.3 s to import and parse); a warm cache is a small JSON read."""
    from ..io.atomic import write_text_atomic
    from ..io.tar_index import cache_path_candidates

    path = Path(path)
    try:
        st = path.stat()
    except OSError:
        return read_devkit(path)  # its own message for a missing devkit
    key = [st.st_size, st.st_mtime_ns, str(path.resolve()) if path.is_dir() else path.name]
    # The tool's cache folder only (or ``cache_dir``): the source folder keeps only the archive index caches.
    shared = cache_path_candidates(path, cache_dir)[-1]
    candidates = [shared.with_name(shared.name.replace(".index.json", ".parsed.json"))]
    for candidate in candidates:
        with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
            payload = json.loads(candidate.read_text())
            if payload["format"] == PARSED_CACHE_FORMAT and payload["key"] == key:
                return _from_payload(payload)
    devkit = read_devkit(path)
    if path.is_dir():
        return devkit  # a folder's mtime does not follow its files: parse it each time
    text = json.dumps(_to_payload(devkit, key), separators=(",", ":"))
    for candidate in candidates:
        try:
            candidate.parent.mkdir(parents=True, exist_ok=True)
            write_text_atomic(candidate, text)
            break
        except OSError:
            continue
    return devkit


def _to_payload(devkit: Devkit, key: list[Any]) -> dict[str, Any]:
    return {
        "format": PARSED_CACHE_FORMAT,
        "key": key,
        "synsets": [list(astuple(s)) for s in devkit.synsets],
        "truth": list(devkit.val_ground_truth),
    }


def _from_payload(payload: dict[str, Any]) -> Devkit:
    synsets = tuple(
        DevkitSynset(int(i), str(w), str(words), str(gloss), int(n), tuple(map(int, kids)), int(h), int(t))
        for i, w, words, gloss, n, kids, h, t in payload["synsets"]
    )
    return Devkit(synsets=synsets, val_ground_truth=tuple(map(int, payload["truth"])))


def _read_folder(folder: Path) -> tuple[bytes, bytes]:
    for root in (folder, folder / DEVKIT_DIR):
        meta = root / Path(META_PATH).relative_to(DEVKIT_DIR)
        truth = root / Path(GROUND_TRUTH_PATH).relative_to(DEVKIT_DIR)
        if meta.exists() and truth.exists():
            return _read_regular(meta, MAX_META_BYTES), _read_regular(truth, MAX_GROUND_TRUTH_BYTES)
    raise DevkitError(
        f"{folder} does not hold data/meta.mat and data/ILSVRC2012_validation_ground_truth.txt "
        f"(the extracted ILSVRC2012_devkit_t12 folder); {_GET_DEVKIT}."
    )


def _read_tar(path: Path) -> tuple[bytes, bytes]:
    wanted = {"meta": META_PATH, "truth": GROUND_TRUTH_PATH}
    found: dict[str, bytes] = {}
    try:
        with tarfile.open(path, mode="r:*") as tar:
            for info in tar:
                name = info.name[2:] if info.name.startswith("./") else info.name
                for key, target in wanted.items():
                    # Exact name, or the same data/ file under a renamed top folder; regular files only
                    # (a link could point anywhere in the archive). Nothing is extracted to disk.
                    tail = target.split("/", 1)[1]
                    if (name == target or name.endswith("/" + tail)) and info.isreg() and key not in found:
                        # The header's size first: a bomb is refused before a byte of it is inflated.
                        if info.size > _CAPS[key]:
                            raise _too_large(path, tail, info.size, _CAPS[key])
                        handle = tar.extractfile(info)
                        assert handle is not None
                        data = _read_capped(handle, _CAPS[key])
                        if data is None:  # pragma: no cover - tarfile never reads past the header's size
                            raise _too_large(path, tail, f"more than {_CAPS[key]}", _CAPS[key])
                        found[key] = data
                if len(found) == len(wanted):
                    break
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise DevkitError(
            f"The devkit {path} cannot be read as a tar.gz ({exc}); download it again "
            f"(`imagenet-prep fetch --dest DIR --only devkit`) or check it with `imagenet-prep verify`."
        ) from None
    missing = [target for key, target in wanted.items() if key not in found]
    if missing:
        raise DevkitError(f"The devkit {path} does not hold {', '.join(missing)}: is it {DEVKIT_TAR}?")
    return found["meta"], found["truth"]


def _as_int_tuple(value: object) -> tuple[int, ...]:
    import numpy as np

    # squeeze_me turns a 1x0 array into an empty array, a 1x1 into a scalar and 1xN into a vector.
    return tuple(int(v) for v in np.atleast_1d(np.asarray(value)).ravel())


def _as_int(value: object) -> int:
    import numpy as np

    return int(np.asarray(value).ravel()[0])


def _as_str(value: object) -> str:
    if isinstance(value, str):
        return str(value)
    import numpy as np

    arr = np.asarray(value).ravel()
    return str(arr[0]) if arr.size else ""  # an empty MATLAB string loads as an empty array


def _parse_meta(data: bytes, where: Path) -> tuple[DevkitSynset, ...]:
    import numpy as np
    import scipy.io  # heavy import: only when a devkit is actually read (not from a warm parsed cache)

    try:
        mat = scipy.io.loadmat(io.BytesIO(data), squeeze_me=True, struct_as_record=True)
    except Exception as exc:  # scipy raises several types for a bad file; all mean the same to the user
        raise DevkitError(
            f"{where}: meta.mat is not a readable MATLAB file ({exc}); download the devkit again."
        ) from None
    synsets = mat.get("synsets")
    if synsets is None or synsets.dtype.names is None:
        raise DevkitError(f"{where}: meta.mat has no 'synsets' struct array; is it the ILSVRC2012 devkit?")
    missing = [f for f in SYNSET_FIELDS if f not in synsets.dtype.names]
    if missing:
        raise DevkitError(f"{where}: meta.mat's synsets lack the fields {', '.join(missing)}.")
    rows = []
    for row in np.atleast_1d(synsets):
        try:
            rows.append(
                DevkitSynset(
                    ilsvrc2012_id=_as_int(row["ILSVRC2012_ID"]),
                    wnid=_as_str(row["WNID"]),
                    words=_as_str(row["words"]),
                    gloss=_as_str(row["gloss"]),
                    num_children=_as_int(row["num_children"]),
                    children=_as_int_tuple(row["children"]),
                    wordnet_height=_as_int(row["wordnet_height"]),
                    num_train_images=_as_int(row["num_train_images"]),
                )
            )
        except (TypeError, ValueError) as exc:
            raise DevkitError(f"{where}: a synsets row of meta.mat is malformed ({exc}).") from None
    return tuple(rows)


def _parse_ground_truth(data: bytes, where: Path) -> tuple[int, ...]:
    values = []
    for line_no, line in enumerate(data.decode("ascii", errors="replace").splitlines(), 1):
        text = line.strip()
        if not text:
            continue
        if not text.isdigit():
            raise DevkitError(
                f"{where}: line {line_no} of the validation ground truth is {text!r}, not an ILSVRC2012_ID."
            )
        values.append(int(text))
    return tuple(values)


# -------------------------------------------------------------------------------------------- checking
def compare_with_bundled(devkit: Devkit) -> list[str]:
    """Differences between the devkit and the bundled ImageNet-1K metadata, as readable warnings (empty =
    they agree). Each warning counts the differences and names the first one."""
    warnings: list[str] = []
    leaves = devkit.leaves
    if len(leaves) != classes.NUM_CLASSES:
        warnings.append(f"The devkit has {len(leaves)} leaf classes; ILSVRC2012 has {classes.NUM_CLASSES}.")
    by_id = {s.ilsvrc2012_id: s for s in leaves}
    wnid_diffs = []
    word_diffs = []
    for info in sorted(classes.all_classes(), key=lambda c: c.ilsvrc2012_id):
        leaf = by_id.get(info.ilsvrc2012_id)
        if leaf is None:
            wnid_diffs.append(f"ILSVRC2012_ID {info.ilsvrc2012_id} ({info.wnid}, {info.name}) is missing")
        elif leaf.wnid != info.wnid:
            wnid_diffs.append(
                f"ILSVRC2012_ID {info.ilsvrc2012_id} is {leaf.wnid} in the devkit but {info.wnid} "
                f"({info.name}) in the bundled metadata"
            )
        elif leaf.words != info.words:
            word_diffs.append(f"{info.wnid}: devkit says {leaf.words!r}, bundled says {info.words!r}")
    if wnid_diffs:
        warnings.append(
            f"{len(wnid_diffs)} class IDs differ from the bundled ILSVRC2012 metadata; first: "
            f"{wnid_diffs[0]}. Labels follow the devkit; check that it is the ILSVRC2012 devkit_t12."
        )
    if word_diffs:
        warnings.append(f"{len(word_diffs)} class descriptions differ; first: {word_diffs[0]}.")
    truth = devkit.val_ground_truth
    bundled = classes.val_labels()
    if len(truth) != len(bundled):
        warnings.append(
            f"The devkit's validation ground truth has {len(truth)} lines; ILSVRC2012 has {len(bundled)}."
        )
    ids = devkit.id_to_wnid
    devkit_labels = list(map(ids.get, truth))
    label_diffs = (
        []  # the usual case, checked in one C-level comparison (every build compares 50,000 labels)
        if devkit_labels == list(bundled)
        else [k for k, (w, b) in enumerate(zip(devkit_labels, bundled, strict=False)) if w != b]
    )
    if label_diffs:
        k = label_diffs[0]
        warnings.append(
            f"{len(label_diffs)} validation labels differ from the bundled ones; first: "
            f"{classes.val_file_name(k + 1)} is {ids.get(truth[k])} in the devkit, {bundled[k]} bundled."
        )
    return warnings


def val_wnids(
    val_member_names: Iterable[str], devkit: Devkit | None, joined: str | None = None
) -> dict[str, str]:
    """Label validation files: file name -> wnid.

    With a devkit, line k of its ground truth labels ``ILSVRC2012_val_{k:08d}.JPEG``. Without one, the bundled
    50,000 labels are used only when the names are exactly the real val archive's 50,000; anything else needs
    the devkit (a mirror or re-packed archive could number files differently). ``joined``: the names joined
    by "\n", every one ``ILSVRC2012_val_<8 digits>.JPEG`` (checked by the caller): read with a few string
    operations instead of one by one.
    """
    names = list(val_member_names)
    if devkit is None:
        expected = {classes.val_file_name(k) for k in range(1, classes.NUM_VAL_IMAGES + 1)}
        if len(names) == classes.NUM_VAL_IMAGES and set(names) == expected:
            bundled = classes.val_labels()
            return {name: bundled[int(name[15:23]) - 1] for name in names}
        raise DevkitError(
            f"The validation images need the devkit to be labelled: this val archive holds {len(names)} "
            f"files, not the real release's {classes.NUM_VAL_IMAGES} ILSVRC2012_val_*.JPEG, so the bundled "
            f"labels cannot be trusted for it; {_GET_DEVKIT}."
        )
    truth = devkit.val_ground_truth
    ids = devkit.id_to_wnid
    if joined is None and names:
        text = "\n".join(names)
        joined = text if _ALL_VAL_NAMES_RE.fullmatch(text) else None  # every name valid: one regex
    if names and joined is not None:  # C loops
        digits = joined.replace("ILSVRC2012_val_", "").replace(".JPEG", "")
        numbers = list(map(int, digits.split("\n")))
        if min(numbers) >= 1 and max(numbers) <= len(truth):
            lines = map(truth.__getitem__, map((-1).__add__, numbers))
            wnids = list(map(ids.__getitem__, lines))
            return dict(zip(names, wnids, strict=True))
    out: dict[str, str] = {}
    for name in names:
        match = _VAL_NAME_RE.match(name)
        if match is None:
            raise DevkitError(
                f"Cannot label the validation file {name!r}: the devkit labels "
                f"ILSVRC2012_val_<8 digits>.JPEG files only."
            )
        number = int(match.group(1))
        if not 1 <= number <= len(truth):
            raise DevkitError(
                f"Cannot label {name}: the devkit's ground truth has {len(truth)} lines, no line {number}."
            )
        out[name] = ids[truth[number - 1]]
    return out
