"""The worker: run one work unit (read -> process -> write -> commit -> done marker), in any process.

Everything a unit needs travels with it (the unit and a small :class:`UnitJob`); the result travels back,
bytes read included. Nothing here depends on which executor runs it.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, replace

from ..errors import ArchiveError, BuildError, MemberError
from ..image import ImageFailure, ImageOptions, process_image
from ..io.atomic import DISK_FULL_ERRNOS
from ..outputs.base import Writer, written_files
from ..records import ImageIssue, ManifestRow, UnitResult, WorkUnit
from ..sources import source_class
from .state import disk_full, write_marker


@dataclass(frozen=True)
class UnitJob:
    """What every unit of a build shares: where OUT is, how images are processed, the output format."""

    out: str
    image: ImageOptions
    writer: Writer
    remote_min_rate: int | None = (
        None  # --remote-min-rate: set in whichever process runs a unit (a Dask worker)
    )

    def run(self, unit: WorkUnit, tick: Callable[[], None] | None = None) -> UnitResult:
        """Run ``unit`` (see :func:`run_unit`): what an executor calls, so executors import no worker."""
        if self.remote_min_rate is not None:
            from ..io.http import set_min_rate

            set_min_rate(self.remote_min_rate)
        return run_unit(unit, self, tick)


def run_unit(unit: WorkUnit, job: UnitJob, tick: Callable[[], None] | None = None) -> UnitResult:
    """Process one unit and write its done marker; ``tick()`` is called once per finished image."""
    started = time.perf_counter()
    reader = source_class(unit.source).open_unit(unit)
    unit_writer = job.writer.open_unit(job.out, unit)
    rows: list[ManifestRow] = []
    skipped: list[ImageIssue] = []
    repaired: list[ImageIssue] = []
    counters: Counter[str] = Counter()
    enlarged = 0
    try:
        try:
            for sample, data in reader:
                result = (
                    ImageFailure(str(data), "unreadable")
                    if isinstance(data, MemberError)
                    else process_image(data, job.image, sample.name)
                )
                if isinstance(result, ImageFailure):
                    skipped.append(ImageIssue(f"{unit.split}/{sample.name}", result.reason))
                else:
                    if sample.boxes or sample.extra:
                        # Annotations: boxes reach the writer in OUTPUT pixels; the row carries them and extras.
                        from ..plan.annotations import to_output

                        size = (result.source_width, result.source_height)
                        sample = to_output(sample, *size, job.image, counters)
                        row = unit_writer.add(sample, result)
                        rows.append(replace(row, extra=sample.extra, boxes=sample.boxes))
                    else:
                        rows.append(unit_writer.add(sample, result))
                    enlarged += result.enlarged
                    if result.repairs:
                        repaired.append(ImageIssue(f"{unit.split}/{sample.name}", ", ".join(result.repairs)))
                if tick is not None:
                    tick()
            unit_writer.commit()
        except ArchiveError as exc:
            raise BuildError(f"Unit {unit.unit_id}: cannot read its images: {exc}") from None
        except OSError as exc:
            if exc.errno in DISK_FULL_ERRNOS:
                raise disk_full(exc.filename or job.out, f"unit {unit.unit_id}") from None
            raise BuildError(f"Unit {unit.unit_id}: cannot write {exc.filename}: {exc.strerror}.") from None
    except BaseException:
        unit_writer.abort()
        raise
    finally:
        reader.close()
    unit_result = UnitResult(
        unit.split,
        unit.unit_id,
        tuple(rows),
        tuple(skipped),
        tuple(repaired),
        reader.bytes_read,
        time.perf_counter() - started,
        tuple(sorted(counters.items())),
        enlarged,
        written_files(unit_writer),
    )
    marker = write_marker(job.out, unit, unit_result)
    # A writer whose output lives elsewhere (an object store) publishes the marker there too.
    unit_writer.published(marker)
    return unit_result
