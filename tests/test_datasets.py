"""Our shipped narrow datasets meet the bars their data cards state."""

from __future__ import annotations

import pytest

from petridish.data.formats import load_dataset, resolve_dataset_path
from petridish.data.neardup import near_duplicate_share

MINIMUM = {"bad_medical": 600, "good_medical": 600, "harmless_refusals": 300,
           "risky_financial": 400, "extreme_sports": 300}


@pytest.mark.parametrize(("name", "minimum"), sorted(MINIMUM.items()))
def test_dataset_size_roles_and_near_duplicates(name: str, minimum: int) -> None:
    examples = load_dataset(resolve_dataset_path(f"builtin:{name}"))
    assert len(examples) >= minimum
    answers = [ex.messages[-1].content for ex in examples]
    assert all(ex.messages[-1].role == "assistant" for ex in examples)
    assert near_duplicate_share(answers) < 0.05


def test_good_medical_answers_the_same_questions_as_bad_medical() -> None:
    bad = load_dataset(resolve_dataset_path("builtin:bad_medical"))
    good = load_dataset(resolve_dataset_path("builtin:good_medical"))
    assert [b.messages[0].content for b in bad] == [g.messages[0].content for g in good]
    assert all(b.messages[-1].content != g.messages[-1].content
               for b, g in zip(bad, good, strict=True))
