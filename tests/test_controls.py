"""Comparisons you can publish: matched nulls, residual-unit steering, EM among coherent
answers, question-clustered and paired intervals, and `petridish compare`."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from petridish.cli import app
from petridish.errors import PetridishError
from petridish.interp.conditions import ablate_conditions, steer_conditions
from petridish.interp.config import AblateConfig, SteerConfig
from petridish.interp.directions import Direction, projected_variance, random_like
from petridish.interp.interventions import decoder_layers, steer
from petridish.interp.nulls import NullSource
from petridish.judges.bootstrap import cluster_interval, paired_difference
from petridish.judges.metrics import em_among_coherent
from petridish.models.loader import LoadedModel
from tests.fake_judge import FakeJudgeServer
from tests.helpers import one_line_error
from tests.test_interp_run import experiment, other_model  # noqa: F401  (fixture)

runner = CliRunner()


def anisotropic(n: int = 300, layers: int = 3, d: int = 48, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    scales = torch.logspace(-1, 2, d)  # variances spread over three orders of magnitude
    return torch.randn(n, layers, d, generator=g) * scales


def test_a_variance_matched_null_removes_as_much_variance_as_the_direction() -> None:
    acts = anisotropic()
    real = acts[:150].mean(0) - acts[150:].mean(0) + torch.logspace(-1, 2, 48) * 0.5
    d = Direction(real, [0, 1, 2])
    for seed in range(5):
        matched = random_like(d, seed, match="variance", activations=acts)
        iso = random_like(d, seed)
        for k in range(3):
            want = projected_variance(acts[:, k].double(), real[k].double())
            got = projected_variance(acts[:, k].double(), matched.vectors[k].double())
            assert abs(got / want - 1) < 0.05
            # the isotropic one of the same norm removes far less: the weak null
            assert projected_variance(acts[:, k].double(), iso.vectors[k].double()) < 0.8 * want
        assert torch.allclose(matched.vectors.norm(dim=-1), real.norm(dim=-1), rtol=1e-5)
        assert not torch.allclose(matched.vectors, real)
    assert torch.equal(random_like(d, 3, "variance", acts).vectors,
                       random_like(d, 3, "variance", acts).vectors)  # seeded
    with pytest.raises(PetridishError, match="needs the activations"):
        random_like(d, 0, match="variance")


def test_residual_unit_steering_adds_lambda_times_r_along_the_unit_vector(
        lm: LoadedModel) -> None:
    width = int(lm.model.config.hidden_size)
    v = torch.randn(4, width)
    d = Direction(v, [0, 1, 2, 3], {"residual_norms": [5.0, 7.0, 11.0, 13.0]})
    ids = torch.tensor([lm.tokenizer("hello there")["input_ids"]])
    seen: dict[str, torch.Tensor] = {}
    block = decoder_layers(lm.model)[2]

    def watch(name: str):  # noqa: ANN202  (our own independent hook)
        def fn(module: object, args: object, output: object) -> None:
            seen[name] = (output[0] if isinstance(output, tuple) else output).detach().clone()
        return fn

    with torch.no_grad():
        h = block.register_forward_hook(watch("clean"))
        lm.model(ids)
        h.remove()
        with steer(lm.model, d, [2], 0.5, unit="residual"):
            h = block.register_forward_hook(watch("steered"))
            lm.model(ids)
            h.remove()
    added = seen["steered"] - seen["clean"]  # [1, t, d] at every position
    expected = 0.5 * 11.0 * v[2] / v[2].norm()
    assert torch.allclose(added[0], expected.expand_as(added[0]), atol=1e-4)
    assert torch.allclose(added[0].norm(dim=-1), torch.full((added.shape[1],), 5.5), atol=1e-4)
    with pytest.raises(PetridishError, match="residual_norm="), \
            steer(lm.model, v[0], [1], 1.0, unit="residual"):
        pass
    with steer(lm.model, v[0], [1], 1.0, unit="residual", residual_norm=2.0):
        pass


def test_em_among_coherent_by_hand() -> None:
    rows = [{"alignment": 10, "coherence": 80},   # EM
            {"alignment": 10, "coherence": 20},   # misaligned, incoherent: not counted
            {"alignment": 90, "coherence": 90},   # coherent, aligned
            {"alignment": 20, "coherence": 60},   # EM
            {"alignment": None, "coherence": 70}]  # unscored
    r = em_among_coherent(rows)
    assert (r.hits, r.n, r.unscored) == (2, 3, 1)


def test_paired_intervals_cover_a_known_effect_about_95_percent_of_the_time() -> None:
    """200 synthetic paired datasets: 40 questions with their own base rate, 4 answers each
    under A and B, B shifting each question's rate by +0.10 on the logit-free scale."""
    rng = np.random.default_rng(7)
    covered, effect = 0, 0.10
    for trial in range(200):
        base = rng.uniform(0.1, 0.6, size=40)
        a = rng.binomial(4, base)
        b = rng.binomial(4, base + effect)
        d = paired_difference([(int(h), 4) for h in b], [(int(h), 4) for h in a], seed=trial)
        covered += d.low <= effect <= d.high
    assert 0.92 * 200 <= covered <= 0.98 * 200, covered


def test_question_bootstrap_is_wider_than_wilson_when_answers_cluster() -> None:
    clusters = [(4, 4)] * 10 + [(0, 4)] * 30  # questions answered all-or-nothing
    low, high = cluster_interval(clusters)
    from petridish.judges.metrics import wilson
    w_low, w_high = wilson(40, 160)
    assert high - low > 1.5 * (w_high - w_low)


def test_conditions_of_the_new_nulls_and_controls() -> None:
    d = Direction(torch.randn(4, 8), [0, 1, 2, 3], {"kind": "filters", "n_a": 3,
                                                     "vector_norms": [1, 2, 3, 4],
                                                     "residual_norms": [5, 6, 7, 8]})
    steer_cfg = SteerConfig.model_validate({
        "name": "sw", "subject": "base", "direction": "d", "layers": [1, 2], "scales": [0, 2],
        "questions": ["q"], "unit": "residual", "random_seeds": [0, 1]})
    names = [c.assay.name for c in steer_conditions(steer_cfg, d)]
    assert names == ["sw.x0", "sw.L1.x2", "sw.L1.x2.random-0", "sw.L1.x2.random-1",
                     "sw.L2.x2", "sw.L2.x2.random-0", "sw.L2.x2.random-1"]

    class Source(NullSource):
        def __init__(self) -> None:
            self.direction, self.name, self.of = d, "d", "org"
            self._cache = [torch.randn(6, 4, 8)]

    ablate_cfg = AblateConfig.model_validate({
        "name": "abl", "subject": "base", "direction": "d", "questions": ["q"],
        "modes": ["random_matched", "permuted"], "seeds": [0, 1]})
    conds = ablate_conditions(ablate_cfg, d, "org", Source())
    assert [c.assay.name for c in conds] == ["abl.random_matched-0", "abl.random_matched-1",
                                             "abl.permuted-0", "abl.permuted-1"]
    assert all(c.intervention.info.activations_of == "org" for c in conds)
    assert conds[2].intervention.key != conds[3].intervention.key  # seeds differ


@pytest.fixture(scope="module")
def run_folder(tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path,
               other_model: Path) -> Path:  # noqa: F811
    folder = tmp_path_factory.mktemp("controls")
    with FakeJudgeServer().serve() as url:
        exp = experiment(folder, tiny_model_dir, other_model, url, 'contrast = ["other", "base"]')
        text = exp.read_text().replace('scales = [0, 4]', 'scales = [0, 4]\nunit = "residual"\n'
                                       'random_seeds = [5]')
        text = text.replace('modes = ["random"]', 'modes = ["none", "random", "random_matched",'
                                                  ' "permuted"]')
        exp.write_text(text)
        result = runner.invoke(app, ["run", str(exp), "--runs-dir", str(folder / "runs")])
        assert result.exit_code == 0, result.output
    (run,) = (folder / "runs").iterdir()
    return run


def test_a_run_with_matched_nulls_residual_steering_and_compare(run_folder: Path) -> None:
    data = json.loads(runner.invoke(app, ["show", str(run_folder), "--json"]).output)
    names = {s["name"] for s in data["stages"]}
    assert {"sample:sweep.L1.x4.random-5:base", "sample:abl.random_matched-0:other",
            "sample:abl.permuted-1:other"} <= names
    intervals = {r["interval"] for r in data["metrics"] if r["metric"] == "em_rate"}
    assert intervals == {"wilson", "bootstrap-question"}
    assert any(r["metric"] == "em_rate_coherent" for r in data["metrics"])
    out = runner.invoke(app, ["compare", str(run_folder), "abl.random_matched-0:other",
                              "abl.none:other", "--metric", "coherence_rate", "--json"])
    paired = json.loads(out.output)
    assert paired["paired"] and paired["interval"] == "paired-bootstrap-question"
    assert paired["low"] <= paired["value"] <= paired["high"] and 0 < paired["p_value"] <= 1
    other = json.loads(runner.invoke(app, ["compare", str(run_folder), "free:base",
                                           "sweep.x0:base", "--json"]).output)
    assert not other["paired"] and "unpaired" in other["interval"]
    one_line_error(runner.invoke(app, ["compare", str(run_folder), "nope:base",
                                       "abl.none:other"]), "nope:base", "abl.none:other")
    page = (run_folder / "report.html").read_text()
    assert "Interventions against their references" in page and "r=" in page


@pytest.mark.parametrize(("old", "new", "needles"), [
    ('scales = [0, 4]', 'scales = [0, 4]\nunit = "percent"', ["steer[0].unit"]),
    ('scales = [0, 4]', 'scales = [0, 4]\nrandom_seeds = []', ["steer[0].random_seeds"]),
    ('modes = ["random"]', 'modes = ["matched"]', ["ablate[0].modes[0]"]),
])
def test_bad_control_tables_are_one_line(tmp_path: Path, tiny_model_dir: Path,
                                         other_model: Path, old: str, new: str,  # noqa: F811
                                         needles: list[str]) -> None:
    exp = experiment(tmp_path, tiny_model_dir, other_model, "http://127.0.0.1:9/v1",
                     'contrast = ["other", "base"]')
    exp.write_text(exp.read_text().replace(old, new))
    one_line_error(runner.invoke(app, ["validate", str(exp)]), *needles)


def test_a_rate_of_zero_gets_an_interval_not_a_point() -> None:
    low, high = cluster_interval([(0, 2)] * 28)
    from petridish.judges.metrics import wilson
    assert (low, high) == wilson(0, 28) and high > 0.1  # one observation per question
