"""An existing ImageFolder tree: ``<root>/train/<wnid>/*`` and ``<root>/val/<wnid>/*`` (any image extension),
or a flat ``<root>/val/`` of ``ILSVRC2012_val_*`` files labelled by, in order: a devkit in the root
(``ILSVRC2012_devkit_t12.tar.gz`` or its folder), ``LOC_val_solution.csv`` in the root (or three folders up
when the root is a Kaggle tree's ``ILSVRC/Data/CLS-LOC``), or the bundled 50,000 labels when the folder holds
exactly the real 50,000 names. Use it to re-resize or re-shard a tree already made
(an imagenet-prep output tree is one).

Keys are the file stems (``n01440764_10026.png`` -> ``n01440764_10026``), so a tree written in another format
gives the same output names. Each class folder is listed in the planning workers (no cache: a listing is
cheap); a worker reads each file whole.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import ClassVar

from ..errors import InputError
from ..fetch.catalog import DEVKIT_DIR, DEVKIT_TAR
from ..records import SourceFile, WorkUnit
from . import devkit
from .base import FolderProbe, LocationReader, Runner, SourceBase, SourceRecord, SplitIndex
from .common import (
    VAL_SOLUTION,
    FileReader,
    bundled_val_labels,
    folder_files,
    has_wnid_dir,
    list_image_files,
    parse_val_solution,
    read_label_file,
    val_key,
    wnid_dirs,
)


def _looks_like_val(folder: Path) -> bool:
    """A val folder: class folders, or flat ILSVRC2012_val_* files (first entries only: cheap)."""
    if has_wnid_dir(folder):
        return True
    try:
        for count, entry in enumerate(folder.iterdir()):
            if val_key(entry.name) is not None:
                return True
            if count > 20:
                break
    except OSError:
        pass
    return False


class ImageFolderSource(SourceBase):
    """``train/<wnid>/*`` and/or ``val/<wnid>/*`` (or a flat labelled ``val/``)."""

    layout: ClassVar[str] = "imagefolder"
    needs: ClassVar[str] = (
        "train/<wnid>/* and/or val/<wnid>/* image folders (or a flat val/ of ILSVRC2012_val_* files with "
        f"{DEVKIT_TAR} or {VAL_SOLUTION} beside it)"
    )

    def __init__(self, folder: Path, cache_dir: Path | None = None) -> None:
        super().__init__(folder, cache_dir)
        self._val_flat: dict[str, list[str]] | None = None  # wnid -> file names (flat val only)
        self._val_warnings: list[str] = []
        self._val_labels_file: Path | None = None

    @classmethod
    def detect(cls, probe: FolderProbe) -> bool:
        train, val = probe.folder / "train", probe.folder / "val"
        return (probe.has("train") and has_wnid_dir(train)) or (probe.has("val") and _looks_like_val(val))

    # ------------------------------------------------------------------------------------------- parent
    def splits(self) -> tuple[str, ...]:
        out = []
        if has_wnid_dir(self.folder / "train"):
            out.append("train")
        if (self.folder / "val").is_dir() and _looks_like_val(self.folder / "val"):
            out.append("val")
        return tuple(out)

    def missing(self) -> list[str]:
        return [
            f"{split}/<wnid>/* ({split} images)" for split in ("train", "val") if split not in self.splits()
        ]

    def _split_dir(self, split: str) -> Path:
        path = self.folder / split
        if split not in self.splits():
            raise InputError(
                f"{self.folder} has no {split}/<wnid>/ image folders (the imagefolder layout); build the "
                "splits it has with --splits."
            )
        return path

    def _flat_val(self) -> bool:
        return not has_wnid_dir(self.folder / "val")

    def _flat_val_labels(self) -> dict[str, list[str]]:
        """Flat val: wnid -> file names, from a devkit, LOC_val_solution.csv, or the bundled labels."""
        if self._val_flat is not None:
            return self._val_flat
        val_dir = self._split_dir("val")
        listing, _refused, _ignored, _links = list_image_files(str(val_dir), str(self.folder))
        names = [name for name, _size in listing]
        by_key = {val_key(name): name for name in names}
        keys = [key for key in by_key if key is not None]
        labels: dict[str, str] | None = None
        kit_path = next(
            (p for p in (self.folder / DEVKIT_TAR, self.folder / DEVKIT_DIR) if p.exists()),
            None,
        )
        csv_path = self.folder / VAL_SOLUTION
        if not csv_path.is_file() and self.folder.resolve().parts[-3:] == ("ILSVRC", "Data", "CLS-LOC"):
            csv_path = self.folder.resolve().parents[2] / VAL_SOLUTION  # the Kaggle tree's CLS-LOC folder
        if kit_path is not None:
            kit = devkit.read_devkit(kit_path)
            self._val_warnings = devkit.compare_with_bundled(kit)
            ground = devkit.val_wnids([f"{key}.JPEG" for key in keys], kit)
            labels = {key: ground[f"{key}.JPEG"] for key in keys}
            self._val_labels_file = kit_path
        elif csv_path.is_file():
            root = self.folder if csv_path.parent == self.folder else csv_path.parent
            text = read_label_file(csv_path, root) or ""
            solution = parse_val_solution(text, str(csv_path))
            labels = {key: solution[key] for key in keys if key in solution}
            self._val_labels_file = csv_path
        else:
            labels = bundled_val_labels(keys)
        if labels is None:
            raise InputError(
                f"The flat folder {val_dir} holds {len(names)} images, not the real release's 50,000 "
                f"ILSVRC2012_val_* names, so the bundled labels cannot be trusted: put {DEVKIT_TAR} or the "
                f"Kaggle {VAL_SOLUTION} in {self.folder}, or sort val/ into <wnid>/ folders."
            )
        unlabelled = [name for key, name in by_key.items() if key is None or key not in labels]
        if unlabelled:
            self._val_warnings.append(
                f"{len(unlabelled)} files in {val_dir} have no label and are left out; first: {unlabelled[0]}."
            )
        out: dict[str, list[str]] = {}
        for key, name in by_key.items():
            if key is not None and key in labels:
                out.setdefault(labels[key], []).append(name)
        self._val_flat = out
        return out

    def classes(self, split: str) -> tuple[str, ...]:
        if split == "val" and self._flat_val():
            self._split_dir("val")
            return tuple(sorted(self._flat_val_labels()))
        return tuple(wnid_dirs(self._split_dir(split)))

    def index(self, split: str, wnids: Sequence[str], runner: Runner | None) -> SplitIndex:
        root = self._split_dir(split)
        if split == "val" and self._flat_val():
            return self._index_flat_val(wnids)
        folders = [(str(root / wnid), str(self.folder)) for wnid in wnids]
        if runner is not None and len(folders) > 1:
            listings = runner(list_image_files, folders)
        else:
            listings = [list_image_files(*args) for args in folders]
        files: dict[str, tuple[SourceFile, ...]] = {}
        refused: list[tuple[str, str]] = []
        ignored = 0
        for wnid, (listing, refusals, skipped, links) in zip(wnids, listings, strict=True):
            files[wnid] = folder_files(root / wnid, listing, links)
            refused.extend((f"{split}/{wnid}/{name}", reason) for name, reason in refusals)
            ignored += skipped
        warnings = [f"{split}: {ignored} hidden or non-image files were ignored."] if ignored else []
        return SplitIndex(split, files, tuple(refused), tuple(warnings))

    def _index_flat_val(self, wnids: Sequence[str]) -> SplitIndex:
        by_class = self._flat_val_labels()
        val_dir = self.folder / "val"
        listing, refusals, _ignored, links = list_image_files(str(val_dir), str(self.folder))
        sizes = dict(listing)
        files = {
            wnid: folder_files(val_dir, [(name, sizes[name]) for name in by_class.get(wnid, ())], links)
            for wnid in wnids
        }
        refused = tuple((f"val/{name}", reason) for name, reason in refusals)
        return SplitIndex("val", files, refused, tuple(self._val_warnings))

    def member_label(self, split: str, wnid: str, name: str) -> str:
        if split == "val" and self._flat_val():
            return f"val/{name}"
        return f"{split}/{wnid}/{name}"

    def records(self) -> list[SourceRecord]:
        out = [SourceRecord(self.folder / split, split) for split in self.splits()]
        if self._val_labels_file is not None:
            out.append(SourceRecord(self._val_labels_file, "labels"))
        return out

    # ------------------------------------------------------------------------------------------- worker
    @classmethod
    def open_unit(cls, unit: WorkUnit) -> LocationReader:
        return FileReader(unit)
