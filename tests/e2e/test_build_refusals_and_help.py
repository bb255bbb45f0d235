"""A build that would keep no class exits non-zero with one line (a recipe's or --min-images' threshold above
every class); `build --help` describes any layout, not only the ILSVRC2012 archives."""

from __future__ import annotations

from support import build_argv, cli

from imagenet_prep.sample.imagenet21k import write_fall11
from imagenet_prep.sources import SOURCES


def test_a_threshold_that_keeps_no_class_exits_2_with_one_line(tmp_path):
    source = tmp_path / "fall11"
    source.mkdir()
    write_fall11(source, per_class=3, seed=2)
    out = tmp_path / "out"
    for options in (("--min-images", "3"), ("--recipe", "imagenet21k-p")):
        done = cli(*build_argv(source, out, "--workers", "1", "-q", *options)[3:])
        assert done.returncode == 2, (options, done.stdout, done.stderr)
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1 and "nothing to build" in lines[0] and "--min-images" in lines[0], done.stderr
        assert "Traceback" not in done.stderr and not out.exists()
    # one image fewer than the largest class keeps it: the threshold is "more than N"
    kept = cli(*build_argv(source, out, "--workers", "1", "-q", "--min-images", "2")[3:])
    assert kept.returncode == 0, kept.stderr


def test_build_help_names_any_layout_not_only_the_ilsvrc2012_archives():
    done = cli("build", "--help")
    flat = " ".join(done.stdout.split())
    assert done.returncode == 0
    assert "from the ILSVRC2012 archives" not in flat and "Folder holding the ILSVRC2012 archives" not in flat
    assert "any layout" in flat and all(layout in flat for layout in SOURCES)
