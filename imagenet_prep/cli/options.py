"""Shared Typer option definitions (``Annotated`` aliases): each option is declared once, here, and every
command that takes it uses the same alias. The build options' names are the config keys (config.VALID_KEYS),
so a command passes them to ``build_config`` without restating them."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

RESIZE_MODES = "none, shorter, longer, square, center-crop, squish"
FORMATS = "jpeg, png, webp, original"

# ---------------------------------------------------------------------------------------------- common
Json = Annotated[bool, typer.Option("--json", help="Print one JSON document on stdout and nothing else.")]
Quiet = Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")]

# ----------------------------------------------------------------------------------------------- build
# Text, not Path: a Path folds the '//' of a URL (--source s3://bucket/prefix/, --out s3://bucket/prefix).
Source = Annotated[
    str | None,
    typer.Option(help="Folder holding the ILSVRC2012 archives (or its https://, s3:// or gs:// URL)."),
]
Out = Annotated[
    str | None, typer.Option(help="Output folder for the tree (wds/parquet: also s3://bucket/prefix).")
]
ConfigFile = Annotated[Path | None, typer.Option("--config", help="YAML file of options; flags override it.")]
Splits = Annotated[str | None, typer.Option(help="Splits to build: train,val.")]
Subset = Annotated[str | None, typer.Option(help="Named subset (imagenette, imagewoof, imagenet-100, ...).")]
Classes = Annotated[str | None, typer.Option(help="Comma-separated wnids or names, or a file of them.")]
Under = Annotated[str | None, typer.Option(help="The 1K classes under a WordNet synset (dog.n.01).")]
TrainPerClass = Annotated[int | None, typer.Option(help="Seeded sample of N train images per class.")]
ValPerClass = Annotated[int | None, typer.Option(help="Seeded sample of N val images per class.")]
Seed = Annotated[int | None, typer.Option(help="Seed for the per-class samples (default 0).")]
Resize = Annotated[
    str | None,
    typer.Option(
        help=f"Resize mode: {RESIZE_MODES} (default shorter). square and center-crop always give exactly "
        "size x size (a smaller image is enlarged); shorter and longer enlarge only with --upscale."
    ),
]
Size = Annotated[int | None, typer.Option(help="Target size in pixels (default 256).")]
Quality = Annotated[int | None, typer.Option(help="JPEG/WebP quality 1-100 (default 90).")]
Format = Annotated[
    str | None,
    typer.Option(
        "--format",
        help=f"Output format: {FORMATS}. WebP trees: torchvision's ImageFolder and datasets' imagefolder list "
        ".webp; Keras and timm do not by default (timm: add_img_extensions('.webp')).",
    ),
]
Filter = Annotated[str | None, typer.Option("--filter", help="Resampling filter (bicubic, bilinear, ...).")]
Resizer = Annotated[
    str | None,
    typer.Option(help="Resize engine: pillow (default) or fast (SIMD; pip install 'imagenet-prep[fast]')."),
]
Upscale = Annotated[
    bool | None,
    typer.Option(
        "--upscale/--no-upscale",
        help="shorter/longer: enlarge images smaller than --size (default: keep them). square and "
        "center-crop always enlarge to size x size.",
    ),
]
Workers = Annotated[int | None, typer.Option(help="Worker processes (default: all cores).")]
AllowSkips = Annotated[
    bool | None, typer.Option("--allow-skips", help="Exit 0 even when bad images were skipped.")
]
Overwrite = Annotated[
    bool | None, typer.Option("--overwrite", help="Replace a tree built with another config.")
]
WordNetDir = Annotated[Path | None, typer.Option(help="WordNet 3.0 dict folder (for --under).")]
Output = Annotated[
    str | None, typer.Option("--output", help="Output: imagefolder (default), wds or parquet (shards).")
]
Executor = Annotated[str | None, typer.Option("--executor", help="Where units run: local (default) or dask.")]
ShardSize = Annotated[
    str | None,
    typer.Option(
        "--shard-size",
        help="wds/parquet: samples per shard (5000) or bytes (1GB; planned from the source image sizes).",
    ),
]
Shuffle = Annotated[
    bool | None,
    typer.Option(
        "--shuffle/--no-shuffle", help="wds/parquet: shuffle the train split across shards (default)."
    ),
]
ShuffleSeed = Annotated[int | None, typer.Option(help="wds/parquet: seed of the train shuffle (default 0).")]
Verify = Annotated[
    bool | None,
    typer.Option(
        "--verify/--no-verify",
        help="Decode images kept as they are (--resize none) to prove them whole (default); --no-verify skips it.",
    ),
]
MaxMemberSize = Annotated[
    str | None,
    typer.Option(
        "--max-member-size",
        help="Refuse archive members larger than this (bytes, or 64MiB / 512K; default 64MiB, at most 1GiB).",
    ),
]
# ------------------------------------------------------------------------------------ beyond ImageNet-1K
LabelSpace = Annotated[
    str | None,
    typer.Option(
        help="Label space (labels = positions in it): imagenet-1k, imagenet22k, imagenet12k, imagenet21k-p, "
        "imagenet21k-p-w21, imagenet22k-ms, goog."
    ),
]
Holdout = Annotated[
    int | None, typer.Option(help="Val = N images per class held out of train (seeded; sources without val).")
]
Recipe = Annotated[str | None, typer.Option(help="Published recipe: imagenet21k-p (MIIL ImageNet-21K-P).")]
MinImages = Annotated[int | None, typer.Option(help="Keep only classes with more than N images.")]
RealLabels = Annotated[
    bool | None, typer.Option("--real-labels", help="val.csv gains a real_labels column (ReaL labels).")
]
Boxes = Annotated[
    bool | None, typer.Option("--boxes", help="Write boxes.csv from the ILSVRC2012 bounding-box archives.")
]
Scheduler = Annotated[
    str | None,
    typer.Option(
        help="For --executor dask: a scheduler address tcp://HOST:PORT, or local:N for N local workers."
    ),
]
NumShards = Annotated[
    int | None,
    typer.Option(help="Static sharding (job arrays): split the build into N shards; then `finalize`."),
]
ShardIndex = Annotated[
    int | None, typer.Option(help="Which shard this process builds: 0..N-1 (e.g. $SLURM_ARRAY_TASK_ID).")
]
Layout = Annotated[
    str | None,
    typer.Option(
        "--layout",
        help="Source layout (default: detected): ilsvrc, kaggle, kaggle-zip, hf-tar, hf-parquet, blurred, imagefolder.",
    ),
]
DryRun = Annotated[
    bool,
    typer.Option(
        "--dry-run",
        help="Plan only: print the classes, images per split, bytes to read, the estimated output size and "
        "time (a few images processed in memory) and the free space at --out; write nothing.",
    ),
]
