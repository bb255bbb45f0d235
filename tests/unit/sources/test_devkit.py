"""Devkit parsing (real scipy-written meta.mat, real tar.gz) and validation labelling."""

from __future__ import annotations

import gzip
import io
import tarfile
from pathlib import Path

import numpy as np
import pytest
import scipy.io
from support.reference import id_order, val_labels

from imagenet_prep import classes
from imagenet_prep.errors import InputError
from imagenet_prep.sample import SampleSpec, write_sample
from imagenet_prep.sources.devkit import (
    GROUND_TRUTH_PATH,
    META_PATH,
    Devkit,
    DevkitError,
    compare_with_bundled,
    read_devkit,
    val_wnids,
)

FIELDS = (
    "ILSVRC2012_ID",
    "WNID",
    "words",
    "gloss",
    "num_children",
    "children",
    "wordnet_height",
    "num_train_images",
)


@pytest.fixture(scope="module")
def release(tmp_path_factory: pytest.TempPathFactory):
    return write_sample(
        tmp_path_factory.mktemp("devkit-release"), SampleSpec(classes=12, train_per_class=3, seed=4)
    )


@pytest.fixture(scope="module")
def devkit(release) -> Devkit:
    return read_devkit(release.devkit)


def _write_devkit(path: Path, rows: list[tuple], truth: list[int], *, with_truth: bool = True) -> Path:
    """A devkit tar.gz; scipy writes meta.mat from rows (id, wnid, words, gloss, nchild, children, h, n)."""
    synsets = np.empty((len(rows), 1), dtype=[(f, object) for f in FIELDS])
    for i, (ilsvrc_id, wnid, words, gloss, nchild, children, height, ntrain) in enumerate(rows):
        synsets[i, 0] = (
            np.float64(ilsvrc_id),  # MATLAB's default class: the reader must not depend on the int type
            wnid,
            words,
            gloss,
            np.float64(nchild),
            np.array([children], dtype=np.float64).reshape(1, -1),
            np.float64(height),
            np.float64(ntrain),
        )
    mat = io.BytesIO()
    scipy.io.savemat(mat, {"synsets": synsets})
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        files = {META_PATH: mat.getvalue()}
        if with_truth:
            files[GROUND_TRUTH_PATH] = "".join(f"{t}\n" for t in truth).encode()
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    path.write_bytes(gzip.compress(buf.getvalue()))
    return path


def _real_like_rows() -> list[tuple]:
    """1000 leaves in ID order, then internal synsets like the real 1860-row file (children of 0, 1, many)."""
    rows = [(i, w, words, f"gloss {i}", 0, [], 0, 1300) for i, w, words in id_order()]
    rows += [
        (1001, "n00001740", "entity", "that which exists", 2, [1002, 1003], 18, 0),
        (1002, "n00002684", "physical object", "a tangible thing", 1, [1], 17, 0),
        (1003, "n00021939", "artifact", "a man-made object", 3, [2, 3, 4], 16, 0),
    ]
    return rows


def _real_truth() -> list[int]:
    return [ilsvrc_id for _, _, ilsvrc_id in val_labels()]


# ------------------------------------------------------------------------------------------------ reading
def test_sample_devkit_round_trips_wnids_ids_words_and_val_labels(release, devkit):
    expected = id_order()
    leaves = devkit.leaves
    assert [(s.ilsvrc2012_id, s.wnid, s.words) for s in leaves] == expected
    assert all(s.num_children == 0 and s.children == () for s in leaves)
    assert all(s.gloss == classes.by_wnid(s.wnid).gloss and s.gloss for s in leaves)
    assert devkit.val_ground_truth == tuple(_real_truth())
    counts = {s.wnid: s.num_train_images for s in leaves}
    assert {w: counts[w] for w in release.wnids} == {w: 3 for w in release.wnids}
    assert compare_with_bundled(devkit) == []
    # The sample's val files get back exactly the labels the release recorded.
    assert val_wnids(list(release.val_files), devkit) == release.val_files


def test_sample_meta_mat_reads_like_the_real_one_in_plain_scipy(release):
    """What third-party code does with meta.mat (torchvision-style indexing) works on the sample's."""
    with tarfile.open(release.devkit) as tar:
        raw = tar.extractfile(META_PATH).read()
    mat = scipy.io.loadmat(io.BytesIO(raw))
    synsets = mat["synsets"]
    assert synsets.shape == (1000, 1)
    assert synsets.dtype.names == FIELDS
    first = synsets[0][0]
    assert (
        int(first[0][0][0]) == 1 and first[1][0] == "n02119789" and first[2][0] == "kit fox, Vulpes macrotis"
    )
    squeezed = scipy.io.loadmat(io.BytesIO(raw), squeeze_me=True)["synsets"]
    ids, wnids = zip(*[(int(row[0]), str(row[1])) for row in squeezed], strict=True)
    assert list(ids) == list(range(1, 1001)) and wnids[448] == "n01440764"


def test_real_like_devkit_with_internal_synsets(tmp_path):
    path = _write_devkit(tmp_path / "ILSVRC2012_devkit_t12.tar.gz", _real_like_rows(), _real_truth())
    kit = read_devkit(path)
    assert len(kit.synsets) == 1003 and len(kit.leaves) == 1000
    internal = {s.ilsvrc2012_id: s for s in kit.synsets if s.num_children}
    assert internal[1001].children == (1002, 1003)
    assert internal[1002].children == (1,)  # a 1x1 array squeezed to a scalar
    assert internal[1003].children == (2, 3, 4) and internal[1003].wordnet_height == 16
    assert kit.id_to_wnid[449] == "n01440764"
    assert compare_with_bundled(kit) == []


def test_extracted_folder_gives_the_same_devkit(release, devkit, tmp_path):
    with tarfile.open(release.devkit) as tar:
        tar.extractall(tmp_path, filter="data")
    assert read_devkit(tmp_path) == devkit
    assert read_devkit(tmp_path / "ILSVRC2012_devkit_t12") == devkit


def test_differences_from_the_bundled_metadata_are_named(tmp_path):
    rows = _real_like_rows()
    # Swap the wnids of IDs 5 and 7, change one description, and relabel validation image 3.
    rows[4], rows[6] = (rows[4][0], rows[6][1], *rows[4][2:]), (rows[6][0], rows[4][1], *rows[6][2:])
    rows[9] = (rows[9][0], rows[9][1], "something else", *rows[9][3:])
    truth = _real_truth()
    truth[2] = 1 if truth[2] != 1 else 2
    kit = read_devkit(_write_devkit(tmp_path / "dk.tar.gz", rows, truth))
    warnings = compare_with_bundled(kit)
    text = "\n".join(warnings)
    assert "2 class IDs differ" in text and "ILSVRC2012_ID 5 is" in text
    assert f"{id_order()[6][1]} in the devkit" in text  # ID 5 now holds ID 7's wnid
    assert "1 class descriptions differ" in text and "something else" in text
    assert "ILSVRC2012_val_00000003.JPEG" in text
    # Labels are IDs: swapping two wnids relabels every val image of IDs 5 and 7 too (50 each), plus image 3.
    relabelled = sum(1 for t in _real_truth() if t in (5, 7)) + 1
    assert relabelled == 101 and f"{relabelled} validation labels differ" in text


def test_val_labels_without_devkit_only_for_the_real_archive():
    real_names = [classes.val_file_name(k) for k in range(1, 50_001)]
    labels = val_wnids(real_names, None)
    published = val_labels()
    assert len(labels) == 50_000
    assert all(labels[name] == wnid for name, wnid, _ in published)
    with pytest.raises(InputError, match="devkit") as info:
        val_wnids(real_names[:500], None)
    assert "ILSVRC2012_devkit_t12.tar.gz" in str(info.value) and "imagenet-prep fetch" in str(info.value)
    renamed = [*real_names[:-1], "ILSVRC2012_val_00050001.JPEG"]
    with pytest.raises(InputError, match="devkit"):
        val_wnids(renamed, None)


def test_val_labels_with_devkit_reject_unknown_names(devkit):
    assert val_wnids(["ILSVRC2012_val_00000001.JPEG"], devkit) == {
        "ILSVRC2012_val_00000001.JPEG": "n01751748"
    }
    with pytest.raises(InputError, match="ILSVRC2012_val_<8 digits>"):
        val_wnids(["holiday.jpg"], devkit)
    with pytest.raises(InputError, match="no line 50001"):
        val_wnids(["ILSVRC2012_val_00050001.JPEG"], devkit)


def test_val_labels_of_names_read_together_are_those_read_one_by_one(devkit):
    """Names that are all ILSVRC2012_val_<8 digits>.JPEG are labelled with a few string operations (joined,
    or passed joined by the caller): the same labels as one by one, the same errors out of range."""
    names = [f"ILSVRC2012_val_{n:08d}.JPEG" for n in (50000, 1, 7, 12345, 2)]
    one_by_one = {name: val_wnids([name], devkit)[name] for name in names}
    assert val_wnids(names, devkit) == val_wnids(names, devkit, "\n".join(names)) == one_by_one
    assert list(val_wnids(names, devkit)) == names
    mixed = [*names, "ILSVRC2012_val_00000003.jpeg"]
    with pytest.raises(InputError, match="ILSVRC2012_val_<8 digits>"):
        val_wnids(mixed, devkit)
    far = [*names, "ILSVRC2012_val_00050001.JPEG"]
    with pytest.raises(InputError, match="no line 50001"):
        val_wnids(far, devkit, "\n".join(far))


# ------------------------------------------------------------------------------------------ bad devkits
def test_missing_or_broken_devkits(tmp_path, release):
    with pytest.raises(DevkitError, match="does not exist"):
        read_devkit(tmp_path / "nope.tar.gz")
    not_gz = tmp_path / "not.tar.gz"
    not_gz.write_bytes(b"plain text, not a tar.gz" * 50)
    with pytest.raises(DevkitError, match="cannot be read"):
        read_devkit(not_gz)
    no_truth = _write_devkit(tmp_path / "a.tar.gz", _real_like_rows(), [], with_truth=False)
    with pytest.raises(DevkitError, match="ILSVRC2012_validation_ground_truth.txt"):
        read_devkit(no_truth)
    bad_truth = _write_devkit(tmp_path / "b.tar.gz", _real_like_rows(), [1, 2, 1001])
    with pytest.raises(DevkitError, match="line 3"):
        read_devkit(bad_truth)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DevkitError, match="data/meta.mat"):
        read_devkit(empty)
    garbage = tmp_path / "garbage" / "data"
    garbage.mkdir(parents=True)
    (garbage / "meta.mat").write_bytes(b"MATLAB? no." * 30)
    (garbage / "ILSVRC2012_validation_ground_truth.txt").write_text("1\n")
    with pytest.raises(DevkitError, match="meta.mat"):
        read_devkit(garbage.parent)


def test_links_in_the_devkit_tar_are_not_followed(tmp_path):
    """A meta.mat that is a link to another member is not used (only regular members are read)."""
    good = _write_devkit(tmp_path / "good.tar.gz", _real_like_rows(), _real_truth())
    with tarfile.open(good) as tar:
        truth = tar.extractfile(GROUND_TRUTH_PATH).read()
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        info = tarfile.TarInfo(GROUND_TRUTH_PATH)
        info.size = len(truth)
        tar.addfile(info, io.BytesIO(truth))
        link = tarfile.TarInfo(META_PATH)
        link.type = tarfile.SYMTYPE
        link.linkname = "/etc/passwd"
        tar.addfile(link)
    linked = tmp_path / "linked.tar.gz"
    linked.write_bytes(gzip.compress(buf.getvalue()))
    with pytest.raises(DevkitError, match="meta.mat"):
        read_devkit(linked)
