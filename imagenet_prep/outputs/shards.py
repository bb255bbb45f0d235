"""What the shard outputs (wds, parquet) share: shard planning, shard sizes, shard manifests, check helpers.

**Shards are work units.** ``plan_shards`` regroups a split's samples into shards at plan time:

- train: one seeded permutation over the whole split (``random.Random(f"{seed}:{split}").shuffle`` of the
  samples sorted by (wnid, key)), so every shard is an i.i.d. draw of the split and the same seed gives the
  same shards whatever the source layout; ``shuffle=False`` keeps (wnid, key) order;
- val (and any other split): file order (the canonical keys in natural order), never shuffled.

The sorted start makes the order independent of how the source grouped its files.

**Shard sizes** (``--shard-size``): a whole number is samples per shard (``5000``); a number with a unit is bytes
per shard (``1GB``, ``500MB``, ``512MiB``: SI units are powers of 1000, ``KiB``/``MiB``/``GiB`` of 1024). Byte
sizes are planned from the SOURCE sizes of the images (``sample.location.size``), the only sizes known before
any image is processed: a repack (``--resize none``) writes shards of about that size (plus ~1.5 KB of tar
headers and metadata per sample); a resized build writes smaller shards (shorter-256 JPEGs are ~4x smaller than
the ILSVRC2012 originals), so ask for a larger byte size, or give a sample count, when resizing.

**Manifests** (``<split>.csv``): ``shard,key,label,wnid,width,height``, one row per written sample in shard
order (the shard's path relative to OUT and the sample's key inside it). A unit's rows carry
``ManifestRow.path = "<shard path>/<key>"`` (keys hold no ``/``).
"""

from __future__ import annotations

import csv
import io
import os
import random
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from ..errors import UsageError
from ..io.atomic import write_text_atomic
from ..records import ManifestRow, Sample, UnitResult
from .base import Groups, Problems

SHARD_MANIFEST_FIELDS = ("shard", "key", "label", "wnid", "width", "height")
_NUMBER_RE = re.compile(r"(\d+)")
_SIZE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]i?b|b)?\s*$", re.IGNORECASE)
_UNITS = {
    "b": 1,
    "kb": 1000,
    "mb": 1000**2,
    "gb": 1000**3,
    "tb": 1000**4,
    "kib": 1024,
    "mib": 1024**2,
    "gib": 1024**3,
    "tib": 1024**4,
}


@dataclass(frozen=True)
class ShardSize:
    """A shard limit: ``count`` samples, or ``count`` bytes of source images when ``in_bytes``."""

    count: int
    in_bytes: bool


def parse_shard_size(value: str | int | None, default: str) -> ShardSize:
    """``5000`` -> 5000 samples; ``"1GB"`` -> 10**9 bytes; None -> ``default``. A UsageError says what is valid."""
    if value is None:
        value = default
    if isinstance(value, bool):
        value = str(value)
    if isinstance(value, int):
        if value < 1:
            raise UsageError(f"--shard-size must be at least 1 sample (got {value}).")
        return ShardSize(value, False)
    match = _SIZE_RE.match(str(value))
    if not match:
        raise UsageError(
            f"Invalid --shard-size {value!r}: give samples per shard (5000) or bytes with a unit (1GB, 500MB)."
        )
    number, unit = match.groups()
    if unit is None:
        if "." in number:
            raise UsageError(f"Invalid --shard-size {value!r}: a sample count is a whole number.")
        count, in_bytes = int(number), False
    else:
        count, in_bytes = int(float(number) * _UNITS[unit.lower()]), True
    if count < 1:
        raise UsageError(f"--shard-size must be at least 1 (got {value!r}).")
    return ShardSize(count, in_bytes)


def _natural(key: str) -> tuple:
    return tuple(int(part) if part.isdigit() else part for part in _NUMBER_RE.split(key))


def shard_order(split: str, samples: Iterable[Sample], shuffle: bool, seed: int) -> list[Sample]:
    """The order samples are written in (see the module docstring)."""
    if split == "train":
        ordered = sorted(samples, key=lambda s: (s.wnid, _natural(s.key)))
        if shuffle:
            random.Random(f"{seed}:{split}").shuffle(ordered)
        return ordered
    return sorted(samples, key=lambda s: (_natural(s.key), s.wnid))


def cut_shards(samples: Sequence[Sample], size: ShardSize) -> list[tuple[Sample, ...]]:
    """Consecutive runs of ``samples``: ``size.count`` samples each, or as many as fit in ``size.count`` source
    bytes (at least one sample per shard, so an image larger than the limit is a shard of its own)."""
    if not size.in_bytes:
        return [tuple(samples[i : i + size.count]) for i in range(0, len(samples), size.count)]
    shards: list[tuple[Sample, ...]] = []
    current: list[Sample] = []
    total = 0
    for sample in samples:
        if current and total + sample.location.size > size.count:
            shards.append(tuple(current))
            current, total = [], 0
        current.append(sample)
        total += sample.location.size
    if current:
        shards.append(tuple(current))
    return shards


def plan_shards(
    split: str,
    groups: Groups,
    size: ShardSize,
    shuffle: bool,
    seed: int,
    name_of: Callable[[str, int, int], str],
) -> Groups:
    """The source's groups regrouped into shards; ``name_of(split, index, total)`` names each (the unit id)."""
    samples = [sample for _, group in groups for sample in group]
    shards = cut_shards(shard_order(split, samples, shuffle, seed), size)
    return [(name_of(split, index, len(shards)), shard) for index, shard in enumerate(shards)]


def wds_key(key: str) -> str:
    """A sample key for a shard: webdataset splits a member name at its first dot, so keys hold none
    (ILSVRC2012 keys never do; a dotted stem from another source gets ``_`` for each dot)."""
    return key.replace(".", "_")


# ---------------------------------------------------------------------------------------------- manifests
def row_location(row: ManifestRow) -> tuple[str, str]:
    """(shard path, key) of a shard output's manifest row."""
    shard, _, key = row.path.rpartition("/")
    return shard, key


def write_shard_manifests(out: Path, splits: Sequence[str], results: Sequence[UnitResult]) -> None:
    """``<split>.csv`` per split, rows in shard order then write order (results come in plan order)."""
    for split in splits:
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(SHARD_MANIFEST_FIELDS)
        for result in results:
            if result.split != split:
                continue
            for row in result.rows:
                shard, key = row_location(row)
                writer.writerow((shard, key, row.label, row.wnid, row.width, row.height))
        write_text_atomic(out / f"{split}.csv", buffer.getvalue())


def read_shard_manifest(path: Path) -> dict[str, list[dict[str, str]]]:
    """shard path -> its rows in order."""
    by_shard: dict[str, list[dict[str, str]]] = {}
    with path.open(newline="") as handle:
        for row in csv.DictReader(handle):
            by_shard.setdefault(row["shard"], []).append(row)
    return by_shard


def check_label_maps(out: Path, problems: Problems) -> dict[str, int]:
    """wnid -> label from labels.txt (the label maps checked against each other); raises when OUT has none."""
    from ..errors import InputError
    from .imagefolder_check import _check_label_maps

    labels_file = out / "labels.txt"
    if not labels_file.is_file():
        raise InputError(f"{out} is not an output built by imagenet-prep (no labels.txt). Check the path.")
    wnids = labels_file.read_text().split()
    if wnids != sorted(set(wnids)):
        problems.add("labels.txt is not sorted and unique")
    _check_label_maps(out, wnids, problems)
    return {wnid: i for i, wnid in enumerate(wnids)}


def check_image(data: bytes, row: dict[str, str], where: str, decode: bool, problems: Problems) -> None:
    """An image's bytes against its manifest row: RGB, the recorded size, fully decodable when ``decode``."""
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as image:
            if image.size != (int(row["width"]), int(row["height"])):
                problems.add(
                    f"{where}: size {image.size} but the manifest says {row['width']}x{row['height']}"
                )
            if image.mode != "RGB":
                problems.add(f"{where}: mode {image.mode}, expected RGB")
            if decode:
                image.load()
    except Exception as exc:  # noqa: BLE001 - any decoder error is a finding, not a crash
        problems.add(f"{where}: cannot be read as an image ({exc})")


def check_recorded_sizes(out: Path, problems: Problems) -> None:
    """Every file the done markers recorded (shards, indexes) against its size now, one stat each: a truncated,
    emptied or deleted shard is found without reading it (the repair: the same build command)."""
    from ..build.state import recorded_file_sizes

    for rel, size in sorted(recorded_file_sizes(out).items()):
        if rel.startswith("/") or ".." in rel.split("/"):
            continue  # markers name files inside OUT only: never stat outside it
        try:
            now = os.stat(out / rel).st_size
        except OSError:
            problems.add(f"{rel}: missing (its build wrote {size} bytes)")
            continue
        if now != size:
            problems.add(f"{rel}: {now} bytes but its build wrote {size} (truncated or changed)")
