"""Planning a build (see make.py): ``make_plan(config) -> BuildPlan``; selection, sampling, recipes and
annotations are its parts."""

from .make import BuildPlan, make_plan

__all__ = ["BuildPlan", "make_plan"]
