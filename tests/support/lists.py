"""A release whose train file names are chosen (from an image list): the miniature's real archives with its
train members renamed, rewritten in the official layout (a tar of class tars)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from imagenet_prep.sample import SampleSpec, write_sample
from support.tars import class_tars, member, tar, train_tar, write


def release_with_train_names(
    root: Path, names: Mapping[str, Sequence[str]], per_class: int, val_per_class: int = 2, seed: int = 5
) -> dict[str, list[str]]:
    """Write a miniature release into ``root`` whose class ``wnid`` holds ``names[wnid]`` (file names) among its
    ``per_class`` train images (the others keep the generator's names). Returns wnid -> every train name."""
    release = write_sample(
        root,
        SampleSpec(
            wnids=tuple(names),
            classes=len(names),
            train_per_class=per_class,
            val_per_class=val_per_class,
            seed=seed,
        ),
    )
    rewritten = {}
    held: dict[str, list[str]] = {}
    for wnid, members in class_tars(release.train_tar).items():
        chosen = list(names[wnid])
        assert len(chosen) <= len(members), "more names than images"
        others = [name for name, _ in members[len(chosen) :]]
        assert not set(others) & set(chosen), "a generated name equals a chosen one: pick another seed"
        renamed = [
            *zip(chosen, (data for _, data in members[: len(chosen)]), strict=True),
            *members[len(chosen) :],
        ]
        held[wnid] = [name for name, _ in renamed]
        rewritten[wnid] = tar(*(member(name, data) for name, data in renamed))
    write(release.train_tar, train_tar(rewritten))
    return held


def _tiny_jpeg() -> bytes:
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), (90, 120, 30)).save(buffer, "JPEG", quality=80)
    return buffer.getvalue()


def release_of_names(root: Path, train: Mapping[str, Sequence[str]], val: Sequence[str]) -> Path:
    """A release in the official layout holding exactly ``train`` (wnid -> file names, every 1K class may be
    given) and the ``val`` file names (labelled by the real ground truth in its devkit), each image one tiny
    JPEG: every class at list scale, cheap to write and to index (for plan-only tests)."""
    from imagenet_prep.fetch.catalog import DEVKIT_TAR, TRAIN_TAR, VAL_TAR
    from imagenet_prep.sample.ilsvrc import _devkit_tar_gz

    root.mkdir(parents=True, exist_ok=True)
    data = _tiny_jpeg()
    write(
        root / TRAIN_TAR, train_tar({w: tar(*(member(n, data) for n in names)) for w, names in train.items()})
    )
    write(root / VAL_TAR, tar(*(member(name, data) for name in val)))
    (root / DEVKIT_TAR).write_bytes(_devkit_tar_gz({w: tuple(names) for w, names in train.items()}))
    return root
