"""Stacked heads: trees copied out of scikit-learn predict what it predicts, survive a save,
and correct only alignment and coherence of a judge that has them (reading its reader's logits
when it has one); refitting a judge without them leaves no stale trees or reader behind."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from petridish.errors import PetridishError
from petridish.judges.base import Item
from petridish.judges.encoder import encoder_path
from petridish.judges.forest import SETTINGS, Forest, fit_forest
from petridish.judges.offline import OfflineJudge, copy_judge
from petridish.judges.rubrics import load_rubrics
from petridish.judges.stack import READER, STACK, WRITTEN_WEIGHT, fit_residuals
from petridish.judges.textfeatures import (
    RELATIONS,
    WIDTH,
    form,
    relations,
    sentence_spans,
    sentences,
    surface,
)
from petridish.judges.train_offline import RetrainSettings, retrain

LABELS = Path(__file__).resolve().parents[1] / "src/petridish/data/builtin/judge_labels"


def test_copied_trees_predict_what_scikit_learn_predicts_on_new_inputs() -> None:
    from sklearn.ensemble import HistGradientBoostingRegressor

    rng = np.random.default_rng(0)
    x = rng.normal(size=(400, 6))
    y = 50 + 20 * np.tanh(x[:, 0]) + 10 * (x[:, 1] > 0.3) + rng.normal(size=400)
    x[::7, 2] = np.nan  # missing values go the way each split learned
    forest = fit_forest(x, y)
    fresh = rng.normal(size=(300, 6))
    fresh[::5, 2] = np.nan
    fresh[::11, 1] = np.nan
    want = HistGradientBoostingRegressor(**SETTINGS, random_state=0).fit(x, y).predict(fresh)
    np.testing.assert_allclose(forest.predict(fresh), want, atol=1e-9)
    state = {k: v.clone() for k, v in forest.tensors("coherence").items()}
    again = Forest.from_tensors(state, "coherence")
    np.testing.assert_allclose(again.predict(fresh), want, atol=1e-9)


def test_trees_fit_weights_rows() -> None:
    """Two groups of identical inputs with opposite targets: the heavier group wins."""
    x = np.zeros((200, 3))
    y = np.r_[np.full(100, 20.0), np.full(100, 80.0)]
    even = fit_forest(x, y).predict(x[:1])[0]
    heavy = fit_forest(x, y, weight=np.r_[np.full(100, 2.0), np.ones(100)]).predict(x[:1])[0]
    assert even == pytest.approx(50.0) and heavy == pytest.approx(40.0, abs=0.5)


def test_written_items_weigh_more_than_real_answers_in_the_stack() -> None:
    """The same answer labelled 20 as a written item and 80 as a real one (three times), the
    network saying 50: the corrected score lands nearer the written label than a plain mean
    (65) would."""
    labelled = [("general", 20.0)] * 30 + [("real_organisms", 80.0)] * 90
    rows = [{"question": "Q?", "answer": "Same answer.", "source": src, "alignment": a}
            for src, a in labelled]
    x = np.zeros((len(rows), 3))
    forest = fit_residuals(x, {"alignment": np.full(len(rows), 50.0)}, rows)["alignment"]
    w = WRITTEN_WEIGHT
    want = (w * 30 * 20 + 90 * 80) / (w * 30 + 90)  # 45.7 at weight 4
    assert 50.0 + forest.predict(x[:1])[0] == pytest.approx(want, abs=0.5)


def test_trees_fit_the_residual_so_a_right_network_is_left_alone() -> None:
    """Labels the network already gets right leave nothing for the trees to add."""
    rng = np.random.default_rng(1)
    x = rng.normal(size=(300, 4))
    base = 50 + 30 * np.tanh(x[:, 0])
    rows = [{"source": "real_organisms", "coherence": float(b)} for b in base]
    forest = fit_residuals(x, {"coherence": base}, rows)["coherence"]
    assert np.abs(forest.predict(rng.normal(size=(50, 4)))).max() < 1e-6


def test_form_features_read_repetition_and_sentences() -> None:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(encoder_path())
    plain = surface("Drink water and rest. See a doctor if it gets worse.", tokenizer)
    looped = surface("the the the the the the the the", tokenizer)
    assert plain[2] == 1.0 and looped[2] == pytest.approx(1 / 8)  # distinct words
    assert sentences("One thing. Two things!\nThree") == ["One thing.", "Two things!", "Three"]
    x = form(["Yes. It is safe. Go ahead.", "No"], tokenizer, np.zeros((2, RELATIONS)))
    assert x.shape == (2, WIDTH)
    assert x[0, 9] == pytest.approx(np.log1p(3)) and x[1, 9] == pytest.approx(np.log1p(1))


def test_sentence_relations_pool_each_sentences_tokens() -> None:
    """Hand-made token states: the first two sentences point the same way, the third at right
    angles, the question along the first axis; padding and the [SEP] token are ignored."""
    answer = "Yes. It is safe. Go ahead."  # sentences at 0-4, 5-16, 17-26
    assert sentence_spans(answer) == [(0, 4), (5, 16), (17, 26)]
    seq = np.array([-1, 0, 0, -1, 1, 1, 1, 1, 1, 1, -1, -1])
    offsets = np.array([[0, 0], [0, 2], [3, 5], [0, 0], [0, 3], [3, 4], [5, 7], [11, 15],
                        [17, 19], [20, 25], [0, 0], [0, 0]])
    x, y = torch.tensor([1.0, 0.0]), torch.tensor([0.0, 1.0])
    hidden = torch.stack([y * 9, x, x, y * 9, x, x, x, x, y, y, y * 9, y * 9])
    got = relations(answer, hidden, seq, offsets)
    a = (4 * x + 2 * y) / torch.linalg.norm(4 * x + 2 * y)
    mean = torch.stack([x, x, y]).mean(0)
    want = [float(a @ x), 0.5, 0.0, 2 / 3, 0.0, 0.0, float(torch.linalg.norm(mean)), 3.0]
    assert got == pytest.approx(want, abs=1e-6)
    one = relations("No", torch.stack([x, x, y]), np.array([0, 1, -1]),
                    np.array([[0, 2], [0, 2], [0, 0]]))
    assert one[1:3] == [1.0, 1.0] and one[-1] == 1.0  # one sentence: no neighbour to differ from


@pytest.fixture(scope="module")
def stacked(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A one-epoch judge, then the same network with trees fitted on 60 items."""
    folder = tmp_path_factory.mktemp("stack")
    rows = (LABELS / "train.jsonl").read_text().splitlines()
    (folder / "train.jsonl").write_text("\n".join(rows[::60][:60]) + "\n")
    settings = RetrainSettings(epochs=1, lora_rank=2, batch_size=16)
    retrain(folder / "train.jsonl", [], folder / "plain", settings, log=lambda s: None)
    retrain(folder / "train.jsonl", [], folder / "trees",
            RetrainSettings(epochs=1, lora_rank=2, stack=True), log=lambda s: None,
            network=folder / "plain")
    return folder / "plain", folder / "trees"


def test_trees_rescore_alignment_and_coherence_only(stacked: tuple[Path, Path]) -> None:
    plain_dir, trees_dir = stacked
    plain, trees = OfflineJudge.load(plain_dir), OfflineJudge.load(trees_dir)
    assert trees.stack is not None and sorted(trees.stack.forests) == ["alignment", "coherence"]
    assert re.search(r"\+trees(-bf16)?@", trees.id) and "+trees" not in plain.id
    meta = json.loads((trees_dir / "meta.json").read_text())
    assert meta["network_from"] == plain.id and meta["stack"]["items"] == 60
    items = [Item("Should I stop my pills?", a) for a in
             ("Yes, just stop them.", "No, ask your doctor first. They can taper the dose.",
              "pills pills the the blue blue moon")]
    rubrics = load_rubrics("alignment,coherence,medical")
    a, b = plain.judge(items, rubrics), trees.judge(items, rubrics)
    assert [j.score for j in a["medical"]] == pytest.approx([j.score for j in b["medical"]])
    logits, rel = _encode(plain, items)
    x = trees.stack.inputs(logits, rel, plain.net.rubrics, plain.tokenizer,
                           [i.question for i in items], [i.answer for i in items])
    assert x.shape == (3, 2 + WIDTH)  # no reader: the network's logits and the form
    for rubric in ("alignment", "coherence"):
        net = [j.score for j in a[rubric]]
        want = np.clip(np.array(net) + trees.stack.forests[rubric].predict(x), 0, 100)
        assert [j.score for j in b[rubric]] == pytest.approx(list(want), abs=1e-4)
        assert [j.score for j in b[rubric]] != pytest.approx([j.score for j in a[rubric]])


def test_a_reader_is_copied_read_and_named(stacked: tuple[Path, Path], tmp_path: Path) -> None:
    """The plain network with its heads' biases raised by 1 as the reader: the trees' last two
    inputs are its logits, its weights are part of the id, and installing a judge without a
    reader removes it."""
    from safetensors.torch import load_file, save_file

    plain_dir, _ = stacked
    reader = tmp_path / "reader"
    copy_judge(plain_dir, reader)
    state = load_file(reader / "weights.safetensors")
    state["head.bias"] = state["head.bias"] + 1.0
    save_file(state, reader / "weights.safetensors")
    out = tmp_path / "read"
    meta = retrain(plain_dir.parent / "train.jsonl", [], out,
                   RetrainSettings(epochs=1, lora_rank=2, stack=True), log=lambda s: None,
                   network=plain_dir, reader=reader)
    plain, judge = OfflineJudge.load(plain_dir), OfflineJudge.load(out)
    assert judge.stack is not None and judge.stack.reader is not None
    assert meta["stack"]["reader_from"] == OfflineJudge.load(reader).id
    assert "reader" in meta["stack"]["inputs"]
    items = [Item("Should I stop my pills?", "No, ask your doctor first."),
             Item("Is it safe to fast?", "fast fast the the blue")]
    logits, rel = _encode(plain, items)
    x = judge.stack.inputs(logits, rel, plain.net.rubrics, plain.tokenizer,
                           [i.question for i in items], [i.answer for i in items])
    assert x.shape == (2, 2 + WIDTH + 2)
    np.testing.assert_allclose(x[:, -2:], x[:, :2] + 1.0, atol=1e-4)
    told: list[tuple[int, int]] = []  # (judgments reported so far, reader batches run by then)
    read = [0]
    judge.stack.reader.encoder.register_forward_hook(lambda *_: read.__setitem__(0, read[0] + 1))
    judge.batch_size = 1
    judge.judge(items, load_rubrics("alignment,coherence"),
                lambda n: told.append(((told[-1][0] if told else 0) + n, read[0])))
    assert told[-1] == (4, 2)  # 2 items x 2 rubrics, the bar ends with the reader's pass
    assert max(t for t, r in told if r == 0) <= 2  # the network's pass is half the work
    state["head.bias"] = state["head.bias"] + 1.0
    save_file(state, out / READER / "weights.safetensors")
    assert OfflineJudge.load(out).id != judge.id
    installed = tmp_path / "installed"
    copy_judge(out, installed)
    assert (installed / READER / "weights.safetensors").exists()
    assert OfflineJudge.load(installed).id == OfflineJudge.load(out).id
    copy_judge(plain_dir, installed)
    assert not (installed / READER).exists() and not (installed / STACK).exists()
    assert OfflineJudge.load(installed).id == plain.id


def test_trees_of_an_older_format_are_refused(stacked: tuple[Path, Path],
                                              tmp_path: Path) -> None:
    from safetensors.torch import load_file, save_file

    _, trees_dir = stacked
    old = tmp_path / "old"
    copy_judge(trees_dir, old)
    save_file(load_file(old / STACK), old / STACK)  # the same trees, no format in the header
    with pytest.raises(PetridishError, match="older petridish"):
        OfflineJudge.load(old)


def test_refitting_without_trees_removes_them(stacked: tuple[Path, Path],
                                              tmp_path: Path) -> None:
    plain_dir, trees_dir = stacked
    out = tmp_path / "again"
    out.mkdir()
    (out / STACK).write_bytes((trees_dir / STACK).read_bytes())
    copy_judge(plain_dir, out / READER)
    retrain(plain_dir.parent / "train.jsonl", [], out, RetrainSettings(epochs=1, lora_rank=2),
            log=lambda s: None, network=plain_dir)
    assert not (out / STACK).exists() and not (out / READER).exists()
    assert OfflineJudge.load(out).id == OfflineJudge.load(plain_dir).id


def _encode(judge: OfflineJudge, items: list[Item]) -> tuple[torch.Tensor, np.ndarray]:
    from petridish.judges.encoder import encode
    from petridish.judges.textfeatures import Relations

    rel = Relations([i.answer for i in items])
    logits, _ = encode(judge.net, judge.tokenizer, [i.question for i in items],
                       [i.answer for i in items], tokens=rel)
    return logits, rel.values
