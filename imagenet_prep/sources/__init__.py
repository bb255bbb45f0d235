"""Sources: the layouts of ImageNet a build reads. A new layout is one module plus an entry in SOURCES.

``open_source(folder, layout)`` detects the layout of ``folder`` (or takes the one named) and returns a
:class:`~.base.SourceBase` (every layout derives from it); workers find a unit's reader by the layout name it
carries (``source_class``).
"""

from __future__ import annotations

from pathlib import Path

from ..errors import InputError, UsageError
from .base import FolderProbe, Source, SourceBase, SourceRecord, SplitIndex
from .blurred import BlurredSource
from .evalsets import EVAL_SOURCES
from .hf_parquet import HfParquetSource
from .hf_tar import HfTarSource
from .ilsvrc import IlsvrcSource
from .imagefolder import ImageFolderSource
from .imagenet21k import ClassTarFolderSource, Fall11Source
from .kaggle import KaggleFolderSource, KaggleZipSource
from .wds import WdsSource
from .winter21 import Winter21Source

#: layout name -> its SourceBase class (``layout``, ``needs``, ``detect(probe)`` and every hook, declared there).
SOURCES: dict[str, type[SourceBase]] = {
    IlsvrcSource.layout: IlsvrcSource,
    KaggleFolderSource.layout: KaggleFolderSource,
    KaggleZipSource.layout: KaggleZipSource,
    HfTarSource.layout: HfTarSource,
    HfParquetSource.layout: HfParquetSource,
    BlurredSource.layout: BlurredSource,
    ImageFolderSource.layout: ImageFolderSource,
    Fall11Source.layout: Fall11Source,
    ClassTarFolderSource.layout: ClassTarFolderSource,
    Winter21Source.layout: Winter21Source,
    **{cls.layout: cls for cls in EVAL_SOURCES},
    WdsSource.layout: WdsSource,
}

__all__ = [
    "SOURCES",
    "FolderProbe",
    "Source",
    "SourceBase",
    "SourceRecord",
    "SplitIndex",
    "detect_layouts",
    "layouts_needs",
    "open_source",
    "source_class",
]


def source_class(layout: str) -> type[SourceBase]:
    try:
        return SOURCES[layout]
    except KeyError:
        raise UsageError(f"Unknown source layout {layout!r}: choose one of {', '.join(SOURCES)}.") from None


def open_source(folder: Path | str, layout: str | None = None, cache_dir: Path | None = None) -> Source:
    """The source in ``folder``: the named layout, or the one layout detected there."""
    from ..io.bytesource import is_remote

    if is_remote(folder):  # a URL of a folder: the layout cannot be listed, so it is named (default ilsvrc)
        return source_class(layout or IlsvrcSource.layout)(folder, cache_dir=cache_dir)
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
        raise InputError(
            f"{folder} holds no ImageNet layout imagenet-prep knows; it needs one of: {layouts_needs()}. "
            f"Download the official archives with `imagenet-prep fetch --dest {folder}`, or make a miniature "
            f"release with `imagenet-prep sample {folder}`."
        )
    names = ", ".join(cls.layout for cls in found)
    raise UsageError(
        f"{folder} holds several layouts ({names}): choose one with --layout "
        f"({'; '.join(f'{cls.layout}: {cls.needs}' for cls in found)})."
    )


def layouts_needs() -> str:
    """What each layout needs, for the error about a folder that holds none or several."""
    return "; ".join(f"{name}: {cls.needs}" for name, cls in SOURCES.items())


def detect_layouts(folder: Path) -> list[str]:
    """The layouts detected in ``folder`` (none, one, or several)."""
    probe = FolderProbe.of(Path(folder))
    return [name for name, cls in SOURCES.items() if cls.detect(probe)]
