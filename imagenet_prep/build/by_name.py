"""The one-call build: ``imagenet_prep.build(source=..., out=..., size=64)`` (the build package is callable:
``build/__init__.py``; also ``imagenet_prep.api.build``). The options go by their declared names
(build_options.py), as the CLI flags and the YAML keys do."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from ..plan import BuildPlan
    from .orchestrator import BuildResult


def build_by_name(
    *,
    config: str | Path | None = None,
    progress: Callable[[int], None] | None = None,
    on_plan: Callable[[BuildPlan, int], None] | None = None,
    **options: Any,
) -> BuildResult:
    """Build as ``imagenet-prep build`` does, with its options as keywords (``source=``, ``out=``, ``size=``,
    ``output="wds"``, ``train_per_class=5``, ...; docs/options.md lists them). ``config``: a YAML file of
    options, which the keywords override, as flags do. ``progress(n)`` is called as n more images finish;
    ``on_plan(plan, images_to_do)`` once planning is done. A keyword that names no option is a TypeError naming
    the valid ones; a bad value is a UsageError."""
    from ..build_options import VALID_KEYS
    from ..config import build_config, read_config_file
    from .orchestrator import build as run

    unknown = sorted(name for name in options if name.replace("-", "_") not in VALID_KEYS)
    if unknown:
        raise TypeError(
            f"build() got unknown option(s) {', '.join(map(repr, unknown))}; the options are: "
            f"{', '.join(sorted(VALID_KEYS))} (and config, progress, on_plan)."
        )
    file_values = read_config_file(Path(config)) if config is not None else {}
    return run(build_config(file_values, options), progress=progress, on_plan=on_plan)
