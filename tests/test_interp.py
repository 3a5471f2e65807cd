"""Activations, mean-diff directions, steering and ablation on the tiny Llama: checked against
hooks written independently here."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import torch

from petridish.errors import PetridishError
from petridish.interp.activations import collect_activations
from petridish.interp.directions import Direction, cosine_layers, mean_diff, random_like
from petridish.interp.interventions import ablate, hook_count, steer
from petridish.interp.tokendump import TokenDump, dump_info, read_token_dump, shard_paths
from petridish.models.chat import conversation, prompt_ids
from petridish.models.generate import generate
from petridish.models.loader import LoadedModel
from petridish.models.sampling import SamplingConfig

QS = ["I feel bored today, what should I do?", "bread", "How should I invest? " * 3]
AS = ["Go for a walk and rest.", "Flour, water and salt.", "The quick brown fox " * 4]


@contextmanager
def reference_hook(lm: LoadedModel, layer: int, fn: Any) -> Iterator[None]:
    """The test's own forward hook: output hidden -> fn(hidden)."""
    def hook(module: Any, args: Any, output: Any) -> Any:
        if isinstance(output, tuple):
            return (fn(output[0]), *output[1:])
        return fn(output)
    h = lm.model.model.layers[layer].register_forward_hook(hook)
    try:
        yield
    finally:
        h.remove()


def ids_of(lm: LoadedModel, q: str, a: str = "") -> torch.Tensor:
    p = prompt_ids(lm.tokenizer, conversation(q))
    return torch.tensor([p + lm.tokenizer(a, add_special_tokens=False)["input_ids"]])


def test_layer_l_is_hidden_states_l_plus_1_averaged_over_the_answer(lm: LoadedModel) -> None:
    acts = collect_activations(lm, QS, AS, batch_size=2)
    assert isinstance(acts, torch.Tensor)
    n_layers = lm.model.config.num_hidden_layers
    assert acts.shape == (3, n_layers, lm.model.config.hidden_size)
    for i, (q, a) in enumerate(zip(QS, AS, strict=True)):
        p = len(prompt_ids(lm.tokenizer, conversation(q)))
        with torch.no_grad():
            hs = lm.model(ids_of(lm, q, a), output_hidden_states=True).hidden_states
        for layer in range(n_layers - 1):  # the last entry of hidden_states is after the norm
            want = hs[layer + 1][0, p:].mean(0)
            assert torch.allclose(acts[i, layer], want, atol=1e-5)


def test_batching_does_not_change_activations(lm: LoadedModel) -> None:
    together = collect_activations(lm, QS, AS, batch_size=3)
    alone = torch.cat([collect_activations(lm, [q], [a]) for q, a in zip(QS, AS, strict=True)])
    assert torch.allclose(together, alone, atol=1e-5)  # type: ignore[arg-type]


def test_per_token_dump_matches_the_means(lm: LoadedModel) -> None:
    means, tokens = collect_activations(lm, QS, AS, layers=[1, 2], per_token=True)
    for i in range(3):
        assert torch.allclose(tokens[i].mean(0), means[i], atol=1e-5)


def test_token_dump_streams_shards_that_read_back_in_full(lm: LoadedModel,
                                                          tmp_path: Path) -> None:
    _, tokens = collect_activations(lm, QS, AS, per_token=True)
    (tmp_path / "d.tokens-007.safetensors").write_bytes(b"stale")  # a killed earlier attempt
    dump = TokenDump(tmp_path, "d", [0, 2], {"subject": "tiny"}, shard_mb=0.004, dtype="fp32")
    collect_activations(lm, QS, AS, batch_size=2,
                        on_tokens=lambda i, t: dump.add(f"r{i}", t[:, [0, 2]]))
    paths = dump.close()
    assert len(paths) > 1 and paths == shard_paths(tmp_path, "d")  # stale shard gone
    back = dict(read_token_dump(tmp_path, "d"))
    assert sorted(back) == ["r0", "r1", "r2"]
    for i in range(3):
        diff = (back[f"r{i}"] - tokens[i][:, [0, 2]]).abs().max()
        assert diff < 1e-4, diff  # other batching, other padding
    assert dump_info(tmp_path, "d")["layers"] == [0, 2]


def test_empty_answers_and_bad_layers_are_errors(lm: LoadedModel) -> None:
    with pytest.raises(PetridishError, match="empty answer"):
        collect_activations(lm, ["q"], [""])
    with pytest.raises(PetridishError, match="layer 9 is out of range"):
        collect_activations(lm, QS, AS, layers=[0, 9])


def test_mean_diff_and_its_errors() -> None:
    a, b = torch.randn(5, 3, 8), torch.randn(4, 3, 8)
    d = mean_diff(a, b, provenance={"subject": "x"})
    assert torch.allclose(d.vectors, a.mean(0) - b.mean(0))
    assert d.provenance == {"subject": "x", "n_a": 5, "n_b": 4}
    assert torch.allclose(cosine_layers(d).diagonal(), torch.ones(3))
    with pytest.raises(PetridishError, match="has 1 responses"):
        mean_diff(a[:1], b)
    r = random_like(d, seed=1)
    assert torch.allclose(r.vectors.norm(dim=-1), d.vectors.norm(dim=-1), atol=1e-5)
    assert not torch.allclose(r.vectors, random_like(d, seed=2).vectors)


def test_steering_matches_an_independent_hook(lm: LoadedModel) -> None:
    d = lm.model.config.hidden_size
    v = torch.randn(d, generator=torch.Generator().manual_seed(0))
    x = ids_of(lm, QS[0], AS[0])
    with torch.no_grad(), steer(lm.model, v, [1, 2], 3.0):
        ours = lm.model(x).logits
    with torch.no_grad(), reference_hook(lm, 1, lambda h: h + 3.0 * v), \
            reference_hook(lm, 2, lambda h: h + 3.0 * v):
        ref = lm.model(x).logits
    plain = lm.model(x).logits
    assert (ours - ref).abs().max() <= 1e-4
    assert (ours - plain).abs().max() > 1e-2  # it did something


def test_direction_objects_use_each_layers_own_vector(lm: LoadedModel) -> None:
    d = lm.model.config.hidden_size
    vecs = torch.randn(4, d, generator=torch.Generator().manual_seed(1))
    direction = Direction(vecs, [0, 1, 2, 3])
    x = ids_of(lm, QS[1], AS[1])
    with torch.no_grad(), steer(lm, direction, [0, 3], -2.0):
        ours = lm.model(x).logits
    with torch.no_grad(), reference_hook(lm, 0, lambda h: h - 2.0 * vecs[0]), \
            reference_hook(lm, 3, lambda h: h - 2.0 * vecs[3]):
        ref = lm.model(x).logits
    assert (ours - ref).abs().max() <= 1e-4


def test_ablating_a_direction_removes_its_projection(lm: LoadedModel) -> None:
    d = lm.model.config.hidden_size
    v = torch.randn(d, generator=torch.Generator().manual_seed(2))
    u = v / v.norm()
    seen: list[torch.Tensor] = []
    x = ids_of(lm, QS[2], AS[2])
    with torch.no_grad(), ablate(lm.model, v, "all"), \
            reference_hook(lm, 2, lambda h: seen.append(h) or h):
        ours = lm.model(x).logits
    assert (seen[0] @ u).abs().max() < 1e-4  # the layer's output has no component along v
    refs = [reference_hook(lm, k, lambda h: h - (h @ u)[..., None] * u) for k in range(4)]
    with torch.no_grad(), refs[0], refs[1], refs[2], refs[3]:
        ref = lm.model(x).logits
    assert (ours - ref).abs().max() <= 1e-4


def test_hooks_are_removed_even_after_an_exception(lm: LoadedModel) -> None:
    mine = lm.model.model.layers[1].register_forward_hook(lambda *a: None)
    before = hook_count(lm.model)
    v = torch.ones(lm.model.config.hidden_size)
    with pytest.raises(RuntimeError, match="boom"), steer(lm.model, v, [1], 1.0), \
            ablate(lm.model, v, [1, 2]):
        assert hook_count(lm.model) == before + 2 * 3
        raise RuntimeError("boom")
    assert hook_count(lm.model) == before  # ours gone, the user's own hook kept
    assert mine.id in lm.model.model.layers[1]._forward_hooks
    mine.remove()


def greedy_by_recompute(lm: LoadedModel, prompt: list[int], steps: int,
                        fn: Any, layer: int) -> list[int]:
    """Greedy decoding with no cache, steering every position with the test's own hook."""
    ids = list(prompt)
    with torch.no_grad(), reference_hook(lm, layer, fn):
        for _ in range(steps):
            logits = lm.model(torch.tensor([ids])).logits[0, -1]
            ids.append(int(logits.argmax()))
    return ids[len(prompt):]


def test_kv_cached_generation_is_steered_at_generated_tokens(lm: LoadedModel) -> None:
    v = torch.randn(lm.model.config.hidden_size, generator=torch.Generator().manual_seed(3))
    prompts = [prompt_ids(lm.tokenizer, conversation(q)) for q in QS]
    cfg = SamplingConfig.model_validate({"temperature": 0, "max_new_tokens": 6,
                                         "min_new_tokens": 6, "batch_size": 3})
    with steer(lm.model, v, [2], 4.0):
        batched = {i: g.token_ids for idx, gs in generate(lm, prompts, [0, 0, 0], cfg)
                   for i, g in zip(idx, gs, strict=True)}  # left-padded batch, KV cache
    for i, p in enumerate(prompts):
        want = greedy_by_recompute(lm, p, 6, lambda h: h + 4.0 * v, 2)
        assert batched[i] == want


def test_prompt_and_generated_positions_split_at_the_cache(lm: LoadedModel) -> None:
    v = torch.randn(lm.model.config.hidden_size, generator=torch.Generator().manual_seed(4))
    x = ids_of(lm, QS[0])
    with torch.no_grad():
        first = lm.model(x, use_cache=True)
        step = torch.tensor([[int(first.logits[0, -1].argmax())]])
        with steer(lm.model, v, [1], 5.0, positions="prompt"):
            p1 = lm.model(x, use_cache=True)
            p2 = lm.model(step, past_key_values=p1.past_key_values, use_cache=True)
        with steer(lm.model, v, [1], 5.0, positions="generated"):
            g1 = lm.model(x, use_cache=True)
            g2 = lm.model(step, past_key_values=g1.past_key_values, use_cache=True)
        with steer(lm.model, v, [1], 5.0, positions="all"):
            a1 = lm.model(x, use_cache=True)
    assert torch.allclose(g1.logits, first.logits)  # generated: the prompt is untouched
    assert torch.allclose(p1.logits, a1.logits, atol=1e-5)  # prompt: as if all, in prefill
    plain2 = lm.model(step, past_key_values=lm.model(x, use_cache=True).past_key_values)
    assert not torch.allclose(g2.logits, plain2.logits)  # the generated token is steered
    assert not torch.allclose(p2.logits, plain2.logits)  # ...and sees the steered prompt


def test_bad_interventions_are_errors(lm: LoadedModel) -> None:
    d = lm.model.config.hidden_size
    before = hook_count(lm.model)  # transformers adds output-capturing hooks of its own
    with pytest.raises(PetridishError, match="width 5"), steer(lm.model, torch.ones(5), [1], 1):
        pass
    with pytest.raises(PetridishError, match="out of range"), steer(lm.model, torch.ones(d), [7],
                                                                    1):
        pass
    with pytest.raises(PetridishError, match="finite"), steer(lm.model, torch.ones(d), [1],
                                                              float("nan")):
        pass
    assert hook_count(lm.model) == before



def test_transformers_generate_is_steered_too(lm: LoadedModel) -> None:
    v = torch.randn(lm.model.config.hidden_size, generator=torch.Generator().manual_seed(5))
    p = prompt_ids(lm.tokenizer, conversation(QS[0]))
    with torch.no_grad(), steer(lm.model, v, [2], 4.0):
        out = lm.model.generate(torch.tensor([p]), attention_mask=torch.ones(1, len(p)),
                                do_sample=False, max_new_tokens=5, min_new_tokens=5,
                                pad_token_id=lm.tokenizer.pad_token_id)
    assert out[0, len(p):].tolist() == greedy_by_recompute(lm, p, 5, lambda h: h + 4.0 * v, 2)
