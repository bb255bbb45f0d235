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
    # ImageNet names come out unquoted. Extra columns (``ManifestRow.extra``, e.g. real_labels) follow the
    # standard ones, in order of first appearance; a row without one has an empty field.
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    extra: dict[str, None] = {}
    for row in rows:
        extra.update(dict.fromkeys(name for name, _ in row.extra))
    writer.writerow((*MANIFEST_FIELDS, *extra))
    for r in sorted(rows, key=lambda r: r.path):
        values = dict(r.extra)
        writer.writerow((r.path, r.label, r.wnid, r.width, r.height, *(values.get(k, "") for k in extra)))
    write_text_atomic(path, buffer.getvalue())


def write_boxes_csv(path: Path, rows: Sequence[ManifestRow]) -> int:
    """``boxes.csv``: one row per box (path, label, wnid, xmin, ymin, xmax, ymax in output pixels), rows in path
    order; returns the number of boxes written."""
    from ..image.boxes import Box, boxes_csv_rows

    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    items = [
        (r.path, r.label, [Box(*b) for b in r.boxes], (r.width, r.height))
        for r in sorted(rows, key=lambda r: r.path)
        if r.boxes
    ]
    writer.writerows(boxes_csv_rows(items))
    write_text_atomic(path, buffer.getvalue())
    return sum(len(item[2]) for item in items)
