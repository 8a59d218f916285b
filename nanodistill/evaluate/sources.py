"""Where an evaluation's held-out examples come from, in the order that picks the verdict's source.

Sources, each kept out of training and out of the teacher's few-shot examples: a user test set
(when given), the seeds set aside at dataset creation (gold answers), and the teacher-labelled
test slice of the amplified data (scored as agreement with the teacher).
"""

from __future__ import annotations

from nanodistill.evaluate.run import TestExample, TestSource
from nanodistill.store import datasets as ds
from nanodistill.store.db import Store

SOURCE_SPLITS = (("holdout seeds", "holdout"), ("teacher-labelled slice", "test"))
MIN_MAIN_SIZE = 20


async def _examples(store: Store, dataset_id: str, splits: tuple[str, ...] | None) -> list[TestExample]:
    found = []
    async for example in ds.iter_examples(store, dataset_id, splits):
        teacher = example.provenance.get("teacher_answer")
        found.append(TestExample(example.input, example.output, teacher if isinstance(teacher, str) else None))
    return found


async def test_sources(store: Store, dataset_id: str | None, test_dataset_id: str | None) -> list[TestSource]:
    """The first source carries the verdict: the user's test set, else the held-out seeds, unless
    there are fewer than MIN_MAIN_SIZE of them and the teacher-labelled slice is larger."""
    sources = []
    if test_dataset_id:
        test_set = await ds.get_dataset_by_id(store, test_dataset_id)
        sources.append(TestSource(f"test set {test_set.name}", await _examples(store, test_dataset_id, None)))
    if dataset_id:
        held = [TestSource(name, await _examples(store, dataset_id, (split,))) for name, split in SOURCE_SPLITS]
        if len(held[0].examples) < MIN_MAIN_SIZE and len(held[1].examples) > len(held[0].examples):
            held.reverse()
        sources.extend(held)
    return [s for s in sources if s.examples]
