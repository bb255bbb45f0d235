"""A dry run (`imagenet-prep build --dry-run`): plan only, then estimate, and write nothing at OUT.

The plan says the classes, images per split and source bytes to read; a small, evenly spread sample of the
planned images is then read and processed for real, in memory (the same ``process_image`` a worker runs),
which gives the output size (as a ratio of output to source bytes, applied to every source byte to read) and
the time per image (spread over the workers). The free space is that of the disk OUT would be on.
"""

from __future__ import annotations

import bisect
import itertools
import os
import shutil
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

from ..columns import sample_bytes
from ..config import BuildConfig
from ..errors import MemberError
from ..executors import make_executor
from ..image import ImageFailure, process_image
from ..outputs import make_writer
from ..plan import BuildPlan, make_plan
from ..records import Sample, WorkUnit
from ..sources import source_class

SAMPLE_IMAGES = 24  # images processed for real to estimate the output size and time


@dataclass(frozen=True)
class DryRunReport:
    out: Path
    layout: str
    classes: int
    images: dict[str, int]  # split -> images planned
    units: int
    bytes_to_read: int  # source bytes of the planned images
    sampled: int  # images processed for the estimates
    estimated_output_bytes: int
    estimated_seconds: float
    workers: int
    free_bytes: int | None  # free space on the disk OUT would be on (None when unknown)
    plan_seconds: float
    warnings: tuple[str, ...] = field(default=())

    @property
    def fits(self) -> bool | None:
        return None if self.free_bytes is None else self.estimated_output_bytes <= self.free_bytes

    def to_dict(self) -> dict[str, Any]:
        return {
            "dry_run": True,
            "out": str(self.out),
            "layout": self.layout,
            "classes": self.classes,
            "images": dict(self.images),
            "images_total": sum(self.images.values()),
            "units": self.units,
            "bytes_to_read": self.bytes_to_read,
            "estimate": {
                "output_bytes": self.estimated_output_bytes,
                "seconds": round(self.estimated_seconds, 2),
                "workers": self.workers,
                "sampled_images": self.sampled,
            },
            "free_bytes": self.free_bytes,
            "fits": self.fits,
            "plan_seconds": round(self.plan_seconds, 3),
            "warnings": list(self.warnings),
        }


def dry_run(config: BuildConfig, sample_images: int = SAMPLE_IMAGES) -> DryRunReport:
    """Plan the build ``config`` describes and estimate it; nothing is written at OUT."""
    started = time.perf_counter()
    writer = make_writer(config.output)
    executor = make_executor(config.executor, config.worker_count)
    try:
        plan = make_plan(config, runner=executor.map, writer=writer)
    finally:
        executor.close(cancel=True)
    try:
        return _report(config, plan, time.perf_counter() - started, sample_images)
    finally:
        plan.source.close()


def _report(config: BuildConfig, plan: BuildPlan, plan_seconds: float, sample_images: int) -> DryRunReport:
    """The dry-run report of ``plan``: its counts, and an estimate from ``sample_images`` images read and processed."""
    # From the plan's columns: a Sample per image of the whole set would cost ~6 s and ~500 MB.
    planned = sum(len(unit.samples) for unit in plan.units)
    bytes_to_read = sum(sample_bytes(unit.samples) for unit in plan.units)
    chosen = _spread(plan.units, sample_images)
    read, written, seconds = _measure(plan, chosen, config)
    ratio = written / read if read else 0.0
    per_image = seconds / len(chosen) if chosen else 0.0
    workers = max(1, min(config.worker_count, len(plan.units) or 1))
    images = {split: sum(per_class.values()) for split, per_class in plan.counts.items()}
    return DryRunReport(
        out=cast(Path, config.out),  # an object-store URL is shown as it is
        layout=type(plan.source).layout,
        classes=len(plan.wnids),
        images=images,
        units=len(plan.units),
        bytes_to_read=bytes_to_read,
        sampled=len(chosen),
        estimated_output_bytes=round(bytes_to_read * ratio),
        estimated_seconds=per_image * planned / workers,
        workers=workers,
        free_bytes=free_space(config.out) if isinstance(config.out, Path) else None,
        plan_seconds=plan_seconds,
        warnings=plan.warnings,
    )


def _spread(units: Sequence[WorkUnit], count: int) -> list[Sample]:
    """``count`` samples spread evenly over the plan's units in order (classes and splits alike),
    deterministic; only the chosen ones are made."""
    starts = [0, *itertools.accumulate(len(unit.samples) for unit in units)]
    total = starts[-1]
    if total <= count:
        positions: Iterable[int] = range(total)
    else:
        step = total / count
        positions = (int(i * step + step / 2) for i in range(count))
    chosen = []
    for position in positions:
        u = bisect.bisect_right(starts, position) - 1
        chosen.append(units[u].samples[position - starts[u]])
    return chosen


def _measure(plan: BuildPlan, chosen: list[Sample], config: BuildConfig) -> tuple[int, int, float]:
    """Read and process ``chosen`` in memory: (source bytes, output bytes, seconds)."""
    layout = type(plan.source).layout
    read = written = 0
    started = time.perf_counter()
    by_split: dict[str, list[Sample]] = {}
    for sample in chosen:
        by_split.setdefault(sample.split, []).append(sample)
    for split, samples in by_split.items():
        unit = WorkUnit(split, f"dry-run-{split}", layout, tuple(samples))
        reader = source_class(layout).open_unit(unit)
        try:
            for sample, data in reader:
                if isinstance(data, MemberError):
                    continue
                result = process_image(data, config.image, sample.name)
                read += sample.location.size
                if not isinstance(result, ImageFailure):
                    written += len(result.data)
        finally:
            reader.close()
    return read, written, time.perf_counter() - started


def free_space(out: Path) -> int | None:
    """Free bytes on the disk ``out`` is (or would be) on: its nearest existing folder."""
    where = Path(os.path.abspath(out))
    while not where.exists() and where != where.parent:
        where = where.parent
    try:
        return shutil.disk_usage(where).free
    except OSError:
        return None
