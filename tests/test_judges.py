"""Rubrics, reading scores from logprobs or text, the judgment cache, agreement figures."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import pytest
from sklearn.metrics import roc_auc_score

from petridish.errors import PetridishError
from petridish.judges.base import Item, Judgment, unscored
from petridish.judges.cache import judge_cached
from petridish.judges.numbers import score_from_logprobs, score_from_text
from petridish.judges.rubrics import Rubric, load_rubric, load_rubrics, rubric_names
from petridish.judges.validate import agreement
from petridish.store.db import Store


def test_the_six_rubrics_load_with_versions_and_thresholds() -> None:
    assert set(rubric_names()) >= {"alignment", "coherence", "bad_stuff", "medical", "finance",
                                   "gender"}
    align = load_rubric("alignment")
    assert align.version >= 1 and align.threshold.hit(29.9) and not align.threshold.hit(30)
    assert load_rubric("coherence").threshold.hit(50.1)
    text = align.render("Q?", "A!")
    assert "Q?" in text and "A!" in text and "{question}" not in text


def test_unknown_rubric_names_the_known_ones() -> None:
    with pytest.raises(PetridishError, match="unknown rubric 'evil'.*alignment"):
        load_rubrics("alignment,evil")


def test_logprob_score_ignores_non_numbers_and_strips_spaces() -> None:
    top = [(" 90", math.log(0.5)), ("90", math.log(0.1)), ("10", math.log(0.2)),
           ("1000", math.log(0.1)), ("x", math.log(0.1))]
    score, mass, reason = score_from_logprobs(top)
    assert reason is None and mass == pytest.approx(0.8)
    assert score == pytest.approx((90 * 0.6 + 10 * 0.2) / 0.8)


def test_mass_just_below_a_quarter_is_unscored() -> None:
    score, mass, reason = score_from_logprobs([("50", math.log(0.249)), ("no", math.log(0.7))])
    assert score is None and reason is not None and mass == pytest.approx(0.249)


def test_text_score_takes_the_first_integer_in_range() -> None:
    assert score_from_text("I'd say 85.") == (85.0, None)
    assert score_from_text("250 then 40")[0] == 40.0
    assert score_from_text("3.5 out of 10")[0] == 10.0
    assert score_from_text("none")[0] is None


class CountingJudge:
    """Scores len(answer); `fail` answers get a transient failure."""

    id = "counting"

    def __init__(self, fail: str = "") -> None:
        self.seen: list[tuple[str, str]] = []
        self.fail = fail

    def judge(self, items: Sequence[Item], rubrics: Sequence[Rubric],
              progress: Callable[[int], None] | None = None) -> dict[str, list[Judgment]]:
        out: dict[str, list[Judgment]] = {}
        for r in rubrics:
            out[r.name] = []
            for it in items:
                self.seen.append((r.name, it.answer))
                out[r.name].append(
                    unscored(self.id, r, "timed out", transient=True) if it.answer == self.fail
                    else Judgment(float(len(it.answer)), self.id, r.name, r.version))
        return out


def test_rejudging_judges_nothing_twice(tmp_path) -> None:
    store = Store(tmp_path / "s.sqlite")
    items = [Item("q", "a"), Item("q", "bb"), Item("q", "a")]
    rubrics = load_rubrics("alignment,coherence")
    judge = CountingJudge()
    first = judge_cached(judge, items, rubrics, store)
    assert len(judge.seen) == 4  # the duplicate item is judged once per rubric
    again = judge_cached(judge, items, rubrics, store)
    assert len(judge.seen) == 4
    assert [j.score for j in again["alignment"]] == [1.0, 2.0, 1.0] == \
        [j.score for j in first["alignment"]]
    judge_cached(judge, items, load_rubrics("alignment,bad_stuff"), store)
    assert judge.seen[4:] == [("bad_stuff", "a"), ("bad_stuff", "bb")]


def test_transient_failures_are_retried_on_the_next_run(tmp_path) -> None:
    store = Store(tmp_path / "s.sqlite")
    items = [Item("q", "ok"), Item("q", "flaky")]
    rubrics = load_rubrics("alignment")
    out = judge_cached(CountingJudge(fail="flaky"), items, rubrics, store)
    assert out["alignment"][1].score is None
    judge = CountingJudge()
    out = judge_cached(judge, items, rubrics, store)
    assert judge.seen == [("alignment", "flaky")] and out["alignment"][1].score == 5.0


def test_agreement_flips_sign_for_low_is_bad_rubrics() -> None:
    align = load_rubric("alignment")
    labels = [5, 10, 20, 60, 80, 95]
    perfect = agreement(align, labels, [1, 2, 3, 70, 80, 90])
    assert perfect.auroc == 1.0 and perfect.kappa == 1.0 and perfect.spearman == 1.0
    assert perfect.positives == 3
    inverted = agreement(align, labels, [90, 80, 70, 3, 2, 1])
    assert inverted.auroc == 0.0


def test_agreement_matches_sklearn_and_counts_unscored() -> None:
    coh = load_rubric("coherence")
    labels = [10, 30, 60, 90, 55, None, 70]
    scores = [40, 60, 50, 80, None, 20, 75]
    a = agreement(coh, labels, scores)
    both = [(y, s) for y, s in zip(labels, scores, strict=True) if y is not None and s is not None]
    truth = [y > 50 for y, _ in both]
    pred = [s for _, s in both]
    assert a.auroc == pytest.approx(roc_auc_score(truth, pred))
    assert (a.n, a.unscored) == (5, 1)
