"""The published reference lists the bundled data was made from, held as digests so that a fresh clone (with
no reference data beside it) still checks the package's copy against them.

Each digest is ``sha256(repr(value))`` of the reference file parsed the way the comment says, recorded from the
published files; ``digest`` of what the package returns must equal it. Tests that need the reference files
themselves (regenerating the bundled data from them) run only when ``IMAGENET_PREP_FACTS`` names the folder
holding them (``ilsvrc2012/`` and ``imagenet21k/``), and skip with that reason otherwise.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

FACTS_ENV = "IMAGENET_PREP_FACTS"

DIGESTS = {
    # tuple(int(x) for x in imagenet21k/imagenet_{a,r}_indices.txt's words): the classes' ImageNet-1K indices
    "imagenet-a indices": "0e92eca3fc021aa9a7c77973b5d11ecca8cbe603f7ae0b4134313cd49d74582b",
    "imagenet-r indices": "f5cf5b75a2324ec5b5d352544ac356c91383ecd1776a2f1cc346ce87ce4b620e",
    # [(int(index), wnid) for each "index<TAB>wnid" line of ilsvrc2012/subsets/imagenet_{a,r}.txt]
    "imagenet-a classes": "86ec00f4aa844e84b7466dae61a82c8aecfc2951c79712cd5104d6b0d2f606b5",
    "imagenet-r classes": "bf8cf93286d91329f9a176619572491f9b6228f074b4a433cd3c16a1fade3b29",
    # [tuple(sorted(labels)) for labels in json.load(ilsvrc2012/real/real.json)]: ReaL labels of the 50,000
    "real": "d32a4e50e0ff03b70aabbf738b9a93f2070d1f523ab9f0f495ee6cb81bec68c3",
    # tuple(lines) of imagenet21k/<file>: each ImageNet-21K label space in its file's order
    "imagenet22k_synsets.txt": "d690055d1d37b2c9e566ffdda34580755cafbe448f5d88fa2a0745ee9c68179c",
    "imagenet12k_synsets.txt": "efd0f2ca03203102524fd56fdb56b4093a70f29164e699fc0604a46aae1252ac",
    "imagenet21k_miil_synsets.txt": "554c8a19f9e5a4d2b4acd798d5c2caff002bd108c9bf35193c43a6f0b38a58be",
    "imagenet21k_miil_w21_synsets.txt": "183513517aa0d081807fdb870881d300df85938da67aa890861a72c70071854c",
    "imagenet22k_ms_synsets.txt": "bcba1a2dc69a966c002c723621b16943ba68166333ca261cb635c0621df5e104",
    "imagenet21k_goog_synsets.txt": "bd078f74333e9436ec8da4ff60963d6f12034012e0bdfe0599fd683074a0acbe",
    # [(int(ilsvrc2012_id), wnid, words)] from ilsvrc2012/ilsvrc2012_id_order.txt, in the devkit's id order
    "id order": "65bc3dba46502c06db65e1a1c15b2709eb7a41eafa5253c7820f64d316996f3b",
    # [(val file name, wnid, int(ilsvrc2012_id))] from ilsvrc2012/val_labels.txt, for the 50,000 val images
    "val labels": "2f6a17940f0a11a7192fbbde9b92e677dd5089f62f940b6a11974ca24d2b13a0",
}


def digest(value: object) -> str:
    """sha256 of ``repr(value)``: tuples and lists of ints and strings have one repr, on every platform."""
    return hashlib.sha256(repr(value).encode()).hexdigest()


def facts_dir(sub: str) -> Path:
    """The reference folder ``$IMAGENET_PREP_FACTS/<sub>``; skips the test when it is not given."""
    root = os.environ.get(FACTS_ENV)
    if not root or not (Path(root) / sub).is_dir():
        pytest.skip(f"needs the published reference lists: set {FACTS_ENV} to a folder holding {sub}/")
    return Path(root) / sub


def id_order() -> list[tuple[int, str, str]]:
    """(ILSVRC2012_ID, wnid, words) in the devkit's id order, from the bundled table, after checking it is the
    published list (so a wrong bundled table cannot make a test agree with itself)."""
    from imagenet_prep import classes

    rows = [(c.ilsvrc2012_id, c.wnid, c.words) for c in sorted(classes.all_classes(), key=_by_id)]
    assert digest(rows) == DIGESTS["id order"], "the bundled class table is not the published id order"
    return rows


def val_labels() -> list[tuple[str, str, int]]:
    """(val file name, wnid, ILSVRC2012_ID) of the 50,000 validation images, from the bundled labels, after
    checking they are the published ones."""
    from imagenet_prep import classes

    rows = [
        (classes.val_file_name(k + 1), wnid, classes.by_wnid(wnid).ilsvrc2012_id)
        for k, wnid in enumerate(classes.val_labels())
    ]
    assert digest(rows) == DIGESTS["val labels"], "the bundled validation labels are not the published ones"
    return rows


def _by_id(info) -> int:
    return info.ilsvrc2012_id
