"""Manifests: ``<split>.csv`` with one row per written image (path relative to OUT, label, wnid, width, height)."""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from pathlib import Path

from ..io.atomic import write_text_atomic
from ..records import ManifestRow

MANIFEST_FIELDS = ("path", "label", "wnid", "width", "height")


def write_manifest(path: Path, rows: Sequence[ManifestRow]) -> None:
    # The csv module quotes a path holding a comma or quote (member names come from the archive); plain
    # ImageNet names come out unquoted.
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(MANIFEST_FIELDS)
    writer.writerows((r.path, r.label, r.wnid, r.width, r.height) for r in sorted(rows, key=lambda r: r.path))
    write_text_atomic(path, buffer.getvalue())
