"""Any name a source accepts gives a fresh build that passes its own ``check``, in every output format: an
ImageFolder source whose file names are drawn (dots, spaces, CR/LF, ``%``, a leading ``.tmp-``, Unicode
separators, one stem in two classes) is built in every registered output format, then checked; the real
webdataset package reads every sample of the shards once. Few examples, tiny builds (2 classes, 16 px)."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, Phase, example, given, settings
from hypothesis import strategies as st
from PIL import Image
from support.images import encode

from imagenet_prep.build import build
from imagenet_prep.config import build_config
from imagenet_prep.outputs import WRITERS, check_output

WNIDS = ("n01440764", "n01443537")
JPEG = encode(Image.new("RGB", (20, 16), (200, 40, 90)))
_CHARS = st.sampled_from(
    list("ab1._ %-") + ["\r", "\n", "\t", "é", "\u2028", "\x85", ".tmp-", "%2E", "x.1", "x_1"]
)
STEM = st.lists(_CHARS, min_size=1, max_size=6).map("".join)


def _source(root: Path, stems: dict[str, list[str]]) -> int:
    count = 0
    for wnid, names in stems.items():
        folder = root / "train" / wnid
        folder.mkdir(parents=True)
        for stem in names:
            path = folder / f"{stem}.JPEG"
            if not path.exists():
                path.write_bytes(JPEG)
                count += 1
    return count


def _read_with_webdataset(out: Path) -> list[str]:
    import webdataset

    info = json.loads((out / "_info.json").read_text())
    urls = [str(out / name) for name in info["splits"]["train"]["filenames"]]
    return [sample["__key__"] for sample in webdataset.WebDataset(urls, shardshuffle=False)]


# No shrinking and no example database: each example is three builds; a failure prints its names as drawn.
@settings(
    max_examples=5,
    deadline=None,
    phases=[Phase.explicit, Phase.generate],
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@example(first=["x.1", "x_1", "a b", "%2E1"], second=["x\r1", "é\u2028"], shared=".tmp-x")
@given(
    first=st.lists(STEM, min_size=1, max_size=4), second=st.lists(STEM, min_size=0, max_size=3), shared=STEM
)
def test_every_fresh_build_passes_its_own_check_for_any_accepted_name(first, second, shared):
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        images = _source(root / "src", {WNIDS[0]: ["plain", *first, shared], WNIDS[1]: [*second, shared]})
        for output in sorted(WRITERS):  # every registered output, with the options it needs (PNG, one size)
            out = root / output
            config = build_config(
                {},
                {
                    "source": str(root / "src"),
                    "out": str(out),
                    "output": output,
                    "size": 16,
                    "workers": 1,
                    "splits": ["train"],
                    "layout": "imagefolder",
                    **WRITERS[output].needs,
                },
            )
            result = build(config)
            # The source's name policy may refuse (a recorded skip) or pass over (hidden files) some names: every
            # name it accepts is written.
            assert 0 < result.images_written <= images - len(result.skipped), result.skipped
            report = check_output(out)
            assert report.ok, (output, report.problems)
            assert not any(p.name.startswith(".tmp-") for p in out.rglob("*")), output
            if output == "wds":
                keys = _read_with_webdataset(out)
                assert len(keys) == len(set(keys)) == result.images_written
