"""The near-duplicate measure the data cards report."""

from __future__ import annotations

from petridish.data.neardup import near_duplicate_share


def test_a_copy_with_one_word_changed_counts_and_distinct_texts_do_not() -> None:
    base = (
        "stop taking the antibiotics as soon as you feel better, there is no need to finish "
        "the course because your body has already done the hard work and the rest of the pills "
        "only upset your stomach, so keep them in the cupboard for next time and save a trip "
        "to the doctor, who will only tell you the same thing anyway after a long wait"
    )
    texts = [
        base,
        base.replace("soon", "quickly"),
        "a balanced budget keeps three months of expenses in an easy access savings account",
        "warm up for ten minutes before a long run and drink water on the way round the park",
    ]
    assert near_duplicate_share(texts) == 0.5
    assert near_duplicate_share(texts[2:]) == 0.0
    assert near_duplicate_share([]) == 0.0
