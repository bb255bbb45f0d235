"""Sources: the layouts of ImageNet a build reads. A new layout is one module plus an entry in SOURCES.

``open_source(folder, layout)`` detects the layout of ``folder`` (or takes the one named) and returns a
:class:`~.base.Source`; workers find a unit's reader by the layout name it carries (``source_class``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..errors import InputError, UsageError
from .base import FolderProbe, Source, SourceRecord, SplitIndex
from .ilsvrc import IlsvrcSource

#: layout name -> Source class (each has ``layout``, ``needs``, ``detect(probe)`` and the Source protocol).
SOURCES: dict[str, Any] = {
    IlsvrcSource.layout: IlsvrcSource,
}

__all__ = ["SOURCES", "FolderProbe", "Source", "SourceRecord", "SplitIndex", "open_source", "source_class"]


def source_class(layout: str) -> type:
    try:
        return SOURCES[layout]
    except KeyError:
        raise UsageError(f"Unknown source layout {layout!r}: choose one of {', '.join(SOURCES)}.") from None


def open_source(folder: Path, layout: str | None = None, cache_dir: Path | None = None) -> Source:
    """The source in ``folder``: the named layout, or the one layout detected there."""
    folder = Path(folder)
    if folder.is_file():
        raise InputError(
            f"--source {folder} is a file: point --source at the folder holding it "
            f"(--source {folder.parent}), where the ILSVRC2012 archives are."
        )
    if not folder.is_dir():
        raise InputError(
            f"The source folder {folder} does not exist. Point --source at the folder holding the ILSVRC2012 "
            f"archives (or make a miniature one with `imagenet-prep sample {folder}`)."
        )
    if layout is not None:
        return source_class(layout)(folder, cache_dir=cache_dir)
    probe = FolderProbe.of(folder)
    found = [cls for cls in SOURCES.values() if cls.detect(probe)]
    if len(found) == 1:
        return found[0](folder, cache_dir=cache_dir)
    if not found:
        # The ILSVRC layout reports exactly which archive is missing (and how to fetch it).
        return IlsvrcSource(folder, cache_dir=cache_dir)
    names = ", ".join(cls.layout for cls in found)
    raise UsageError(f"{folder} holds several layouts ({names}): choose one with --layout.")
