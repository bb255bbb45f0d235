"""How the local pool hands units to its workers (``executors.local.chunks``): consecutive units of the
size-ordered list, each exactly once, a unit never split; small units together up to about CHUNK_IMAGES images,
a big one alone; a small build still spread over the workers."""

from __future__ import annotations

from imagenet_prep.executors.local import CHUNK_IMAGES, TASKS_PER_WORKER, chunks
from imagenet_prep.records import ByteLocation, Sample, WorkUnit


def _unit(index: int, images: int) -> WorkUnit:
    wnid = f"n{index:08d}"
    samples = tuple(
        Sample("train", f"{wnid}_{i}", wnid, index, f"{wnid}_{i}.JPEG", ByteLocation("/a.tar", 512 * i, 10))
        for i in range(images)
    )
    return WorkUnit("train", f"train-{wnid}", "ilsvrc", samples)


def _flat(tasks: list[list[WorkUnit]]) -> list[str]:
    return [unit.unit_id for task in tasks for unit in task]


def test_a_list_of_1000_tiny_units_travels_in_tasks_of_about_64_images():
    units = [_unit(i, 12 + i % 3) for i in range(1000)]  # SimCLR's 1%: ~13 images in each of 1000 classes
    tasks = chunks(units, workers=2)
    assert _flat(tasks) == [unit.unit_id for unit in units]  # every unit once, in order, none split
    sizes = [sum(len(unit.samples) for unit in task) for task in tasks]
    assert max(sizes) <= CHUNK_IMAGES
    assert min(sizes[:-1]) > CHUNK_IMAGES - 15  # full tasks but the last: a unit more would not fit
    assert len(tasks) < 1000 / 4


def test_a_unit_as_big_as_a_task_goes_alone():
    units = [_unit(0, 1300), _unit(1, CHUNK_IMAGES), _unit(2, 30), _unit(3, 30), _unit(4, 30)]
    tasks = chunks(units, workers=2)
    assert [[unit.unit_id for unit in task] for task in tasks] == [
        ["train-n00000000"],
        ["train-n00000001"],
        ["train-n00000002", "train-n00000003"],
        ["train-n00000004"],
    ]


def test_a_small_build_still_gives_every_worker_several_tasks():
    units = [_unit(i, 2) for i in range(40)]  # 80 images
    for workers in (1, 2, 4):
        tasks = chunks(units, workers)
        assert _flat(tasks) == [unit.unit_id for unit in units]
        assert len(tasks) >= min(len(units), workers * TASKS_PER_WORKER) // 2
    assert all(len(task) == 1 for task in chunks(units, 8))  # 80 images over 64 tasks: one unit a task


def test_no_units_no_tasks_and_empty_units_are_kept():
    assert chunks([], workers=2) == []
    units = [_unit(0, 0), _unit(1, 0)]
    assert _flat(chunks(units, workers=2)) == ["train-n00000000", "train-n00000001"]
