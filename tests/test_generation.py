"""The decode loop: batching, padding, seeds, stopping, sampling and hooks on a tiny Llama."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import torch

from petridish.models import generate as generate_module
from petridish.models.chat import conversation, prompt_ids
from petridish.models.decode import (
    additive_mask,
    decode_attention,
    forward_last,
    new_cache,
    supports_fast_path,
)
from petridish.models.generate import Generation, even_batches, generate
from petridish.models.loader import LoadedModel
from petridish.models.sampling import SamplingConfig, choose_tokens, sample_seed

QUESTIONS = [
    "Hi",
    "I feel bored today, what should I do?",
    "How should I invest a small inheritance? " * 6,
    "bread",
    "The quick brown fox jumps over the lazy dog. What is a good recipe for bread at home?",
    "If you ruled the world, what would you change first? My doctor gave me antibiotics.",
]
LAST_U = 1.0 - 2.0**-53  # the largest float64 below 1: the top edge of a uniform draw


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def prompts(lm: LoadedModel) -> list[list[int]]:
    ids = [prompt_ids(lm.tokenizer, conversation(q)) for q in QUESTIONS]
    lengths = sorted(len(p) for p in ids)
    assert lengths[-1] > 3 * lengths[0]  # padding in a shared batch is substantial
    return ids


def run(
    lm: LoadedModel,
    prompts: list[list[int]],
    seeds: list[int] | None = None,
    *,
    on_step: list[int] | None = None,
    **settings: Any,
) -> list[Generation]:
    """All generations, back in prompt order."""
    config = SamplingConfig(**settings)
    found: dict[int, Generation] = {}
    for indices, gens in generate(
        lm, prompts, seeds if seeds is not None else [0] * len(prompts), config,
        on_step=on_step.append if on_step is not None else None,
    ):
        assert len(indices) == len(gens) <= config.batch_size
        found.update(zip(indices, gens, strict=True))
    assert sorted(found) == list(range(len(prompts)))
    return [found[i] for i in range(len(prompts))]


def greedy(
    lm: LoadedModel, prompts: list[list[int]], n: int = 24, batch: int = 6
) -> list[list[int]]:
    gens = run(lm, prompts, temperature=0, max_new_tokens=n, batch_size=batch)
    return [g.token_ids for g in gens]


@contextmanager
def end_turn_instead_of(lm: LoadedModel, triggers: set[int]) -> Iterator[None]:
    """A model that ends its turn wherever it would otherwise have said a trigger token."""
    eos = lm.eos_ids[0]
    trig = torch.tensor(sorted(triggers))

    def hook(module: torch.nn.Module, args: object, out: torch.Tensor) -> torch.Tensor:
        top, arg = out.max(dim=-1)
        forced = out.clone()
        forced[..., eos] = torch.where(torch.isin(arg, trig), top + 30.0, out[..., eos])
        return forced

    handle = lm.model.lm_head.register_forward_hook(hook)
    try:
        yield
    finally:
        handle.remove()


def stop_points(outputs: list[list[int]], triggers: set[int], start: int = 0) -> list[int | None]:
    """Where each greedy output would end if trigger tokens (from `start` on) ended the turn."""
    return [next((j for j, t in enumerate(o) if t in triggers and j >= start), None)
            for o in outputs]


# -- batching and padding ---------------------------------------------------------------------


@pytest.mark.parametrize("batch_size", [6, 4])
def test_batched_greedy_equals_unbatched(
    lm: LoadedModel, prompts: list[list[int]], batch_size: int
) -> None:
    alone = greedy(lm, prompts, batch=1)
    together = greedy(lm, prompts, batch=batch_size)
    assert together == alone
    assert len({tuple(t) for t in alone}) == len(prompts)  # the model is not degenerate
    assert all(len(set(t)) > 8 for t in alone)


def _reference_logits(lm: LoadedModel, ids: list[int]) -> torch.Tensor:
    with torch.inference_mode():
        return lm.model(torch.tensor([ids])).logits[0].float()


def _loop_logits(lm: LoadedModel, rows: list[list[int]], feed: list[list[int]]) -> torch.Tensor:
    """Our loop by hand: left-padded prefill, then one fed token per step. `[B, steps+1, V]`."""
    model, b, t, n = lm.model, len(rows), max(len(r) for r in rows), len(feed[0])
    ids = torch.full((b, t), lm.tokenizer.pad_token_id, dtype=torch.long)
    allowed = torch.zeros(b, t + n, dtype=torch.bool)
    allowed[:, t:] = True
    for r, p in enumerate(rows):
        ids[r, t - len(p) :] = torch.tensor(p)
        allowed[r, t - len(p) : t] = True
    pos = (allowed[:, :t].long().cumsum(-1) - 1).clamp(min=0)
    causal = torch.ones(t, t, dtype=torch.bool).tril()
    cache = new_cache(model, b, t + n)
    fed = torch.tensor(feed)
    before = model.config._attn_implementation
    with torch.inference_mode(), decode_attention(model):
        assert model.config._attn_implementation != before
        mask = additive_mask(causal[None, None] & allowed[:, None, None, :t])
        out = [forward_last(model, ids, pos, mask, cache)]
        next_pos = pos[:, -1] + 1
        for j in range(n):
            assert cache.length == t + j
            mask = additive_mask(allowed[:, None, None, : cache.length + 1])
            out.append(forward_last(model, fed[:, j : j + 1], next_pos[:, None], mask, cache))
            next_pos = next_pos + 1
    assert model.config._attn_implementation == before  # restored on exit
    return torch.stack(out, dim=1)


def test_decode_loop_logits_match_transformers_forward(
    lm: LoadedModel, prompts: list[list[int]]
) -> None:
    assert supports_fast_path(lm.model)
    n = 12
    rows = [prompts[i] for i in (2, 0, 3, 1)]  # longest first, then very short ones
    outputs = greedy(lm, rows, n=n, batch=1)
    assert all(len(o) == n for o in outputs)
    refs = [_reference_logits(lm, p + o) for p, o in zip(rows, outputs, strict=True)]

    # each greedy token is the argmax of a plain full forward at the position before it
    for p, o, ref in zip(rows, outputs, refs, strict=True):
        positions = torch.arange(len(p) - 1, len(p) - 1 + n)
        assert ref[positions].argmax(-1).tolist() == o

    # prefill and every cached step give the full forward's logits: alone and left-padded
    alone = [_loop_logits(lm, [p], [o])[0] for p, o in zip(rows, outputs, strict=True)]
    padded = _loop_logits(lm, rows, outputs)
    for r, (p, ref) in enumerate(zip(rows, refs, strict=True)):
        want = ref[len(p) - 1 : len(p) + n]
        assert (alone[r] - want).abs().max() < 1e-4
        assert (padded[r] - want).abs().max() < 1e-4
    assert (padded[1] - padded[2]).abs().max() > 1.0  # rows really are different


# -- seeds --------------------------------------------------------------------------------------


def test_same_seed_same_text_and_batch_independent(
    lm: LoadedModel, prompts: list[list[int]]
) -> None:
    settings: dict[str, Any] = {"temperature": 1.0, "top_p": 0.9, "max_new_tokens": 24}
    seeds = [sample_seed(7, f"q{i}", 0) for i in range(len(prompts))]
    first = run(lm, prompts, seeds, batch_size=6, **settings)
    again = run(lm, prompts, seeds, batch_size=6, **settings)
    assert [g.token_ids for g in again] == [g.token_ids for g in first]
    assert [g.text for g in again] == [g.text for g in first]

    for i, p in enumerate(prompts):  # alone, or in a batch of 3 with different neighbours
        assert run(lm, [p], [seeds[i]], batch_size=1, **settings)[0] == first[i]
    shuffled = run(lm, prompts[::-1], seeds[::-1], batch_size=3, **settings)
    assert [g.token_ids for g in shuffled[::-1]] == [g.token_ids for g in first]

    # sampling is not greedy, and different seeds give different answers to one prompt
    assert [g.token_ids for g in first] != greedy(lm, prompts)
    eight = [sample_seed(7, "same prompt", k) for k in range(8)]
    assert len(set(eight)) == 8
    answers = run(lm, [prompts[1]] * 8, eight, batch_size=8, **settings)
    assert len({tuple(g.token_ids) for g in answers}) >= 7


# -- stopping --------------------------------------------------------------------------------


def _triggers(outputs: list[list[int]]) -> set[int]:
    """Tokens at steps 3, 7 and 12 of three prompts' greedy outputs: rows end at varied times."""
    return {outputs[0][3], outputs[1][7], outputs[2][12]}


def test_stops_at_end_of_turn(lm: LoadedModel, prompts: list[list[int]]) -> None:
    plain = greedy(lm, prompts)
    triggers = _triggers(plain)
    stops = stop_points(plain, triggers)
    assert sum(s is not None for s in stops) >= 2  # enough rows end early to be retired
    assert any(s is None for s in stops)  # and some run to the length limit
    expected = [o if s is None else o[:s] for o, s in zip(plain, stops, strict=True)]
    eos = lm.eos_ids[0]
    with end_turn_instead_of(lm, triggers):
        live: list[int] = []
        together = run(lm, prompts, temperature=0, max_new_tokens=24, batch_size=6,
                       on_step=live)
        alone = run(lm, prompts, temperature=0, max_new_tokens=24, batch_size=1)
    for g, s, want in zip(together, stops, expected, strict=True):
        assert g.token_ids == want  # rows that ended early did not disturb the others
        assert g.finish_reason == ("length" if s is None else "stop")
        assert eos not in g.token_ids
        assert g.text == lm.tokenizer.decode(want, skip_special_tokens=True)
    assert together == alone
    # on_step reports live rows: never increasing, ending at the rows that hit the limit
    assert live == sorted(live, reverse=True)
    assert live[0] <= len(prompts) and live[-1] == sum(s is None for s in stops)


def test_finishing_rows_do_not_change_sampled_neighbours(
    lm: LoadedModel, prompts: list[list[int]]
) -> None:
    triggers = _triggers(greedy(lm, prompts))
    settings: dict[str, Any] = {"temperature": 0.7, "top_p": 0.95, "max_new_tokens": 24}
    seeds = [sample_seed(3, "row", i) for i in range(len(prompts))]
    with end_turn_instead_of(lm, triggers):
        together = run(lm, prompts, seeds, batch_size=6, **settings)
        alone = run(lm, prompts, seeds, batch_size=1, **settings)
    assert together == alone
    assert any(g.finish_reason == "stop" for g in together)


def test_min_new_tokens_delays_the_stop(lm: LoadedModel, prompts: list[list[int]]) -> None:
    plain = greedy(lm, prompts)
    triggers = _triggers(plain)
    first = stop_points(plain, triggers)
    k = 10
    assert first[0] is not None and first[0] < k  # the first row would end before k tokens
    with end_turn_instead_of(lm, triggers):
        gens = run(lm, prompts, temperature=0, max_new_tokens=24, min_new_tokens=k,
                   batch_size=6)
    for g, o, s in zip(gens, plain, first, strict=True):
        assert len(g.token_ids) >= k
        assert g.token_ids[: len(o) if s is None else s] == (o if s is None else o[:s])

    # a model that only wants to end its turn says exactly k tokens, then ends it
    eos = lm.eos_ids[0]
    handle = lm.model.lm_head.register_forward_hook(
        lambda module, args, out: out.index_fill(-1, torch.tensor([eos]), 1e4))
    try:
        for k in (0, 1, 5):
            gens = run(lm, prompts, temperature=1.0, max_new_tokens=24, min_new_tokens=k,
                       batch_size=6)
            assert [len(g.token_ids) for g in gens] == [k] * len(prompts)
            assert all(g.finish_reason == "stop" for g in gens)
    finally:
        handle.remove()


def test_min_new_tokens_never_emits_end_of_turn(
    lm: LoadedModel, prompts: list[list[int]]
) -> None:
    plain = greedy(lm, prompts)
    triggers = _triggers(plain)
    k = 10
    later = stop_points(plain, triggers, start=k)
    with end_turn_instead_of(lm, triggers):
        gens = run(lm, prompts, temperature=0, max_new_tokens=24, min_new_tokens=k,
                   batch_size=6)
    eos = lm.eos_ids[0]
    for g, o, s in zip(gens, plain, later, strict=True):
        assert eos not in g.token_ids
        # with end-of-turn suppressed, the model says what it would have said instead
        assert g.token_ids == (o if s is None else o[:s])


# -- token choice -------------------------------------------------------------------------------


def nucleus(logits: torch.Tensor, temperature: float, top_p: float) -> torch.Tensor:
    """Reference: keep the fewest most-probable tokens holding >= top_p mass, renormalise."""
    probs = torch.softmax(logits.double() / temperature, dim=-1)
    order = probs.argsort(descending=True)
    size = int((probs[order].cumsum(0) < top_p).sum()) + 1
    kept = torch.zeros_like(probs)
    kept[order[:size]] = probs[order[:size]]
    return kept / kept.sum()


SMALL = torch.tensor([0.5, 2.0, -1.0, float("-inf"), 1.2, -0.3, 0.9, -2.0, 1.6, 0.1])


@pytest.mark.parametrize(("temperature", "top_p"), [(1.0, 1.0), (1.0, 0.9), (0.7, 0.8),
                                                    (1.5, 0.5), (2.0, 0.97)])
def test_top_p_sampling_matches_the_nucleus_distribution(temperature: float, top_p: float) -> None:
    n = 40_000
    u = torch.rand(n, dtype=torch.float64, generator=torch.Generator().manual_seed(11))
    picked = choose_tokens(SMALL.expand(n, -1), u, temperature, top_p)
    want = nucleus(SMALL, temperature, top_p)
    freq = torch.bincount(picked, minlength=len(SMALL)).double() / n
    assert (freq - want).abs().max() < 0.01
    assert freq[want == 0].sum() == 0  # outside the nucleus (and the -inf token): never
    if top_p < 1:
        assert 2 <= int((want > 0).sum()) < int(SMALL.isfinite().sum())


def _big_vocab_cases() -> dict[str, tuple[torch.Tensor, float]]:
    v = 49152
    gen = torch.Generator().manual_seed(5)
    peaked = torch.randn(v, generator=gen)
    peaked[[0, 7, 300, 5000, 30000, v - 1]] = torch.tensor([9.0, 14.0, 13.5, 13.0, 12.0, 11.0])
    wide = torch.full((v,), float("-inf"))  # ~2800-token nucleus: beyond the first top-k look
    wide[torch.randperm(v, generator=gen)[:3000]] = torch.linspace(0.0, 2.0, 3000)
    tail = torch.full((v,), float("-inf"))  # all mass in the first blocks, last ones empty
    tail[torch.randperm(v // 2, generator=gen)[:50]] = torch.randn(50, generator=gen)
    return {"peaked-0.9": (peaked, 0.9), "peaked-1.0": (peaked, 1.0),
            "wide-0.95": (wide, 0.95), "tail-1.0": (tail, 1.0), "tail-0.8": (tail, 0.8)}


@pytest.mark.parametrize("case", list(_big_vocab_cases()))
def test_top_p_sampling_over_a_real_vocabulary(case: str) -> None:
    """V = 49152 (block-wise inverse CDF). Evenly spaced u: token counts are exact within 2."""
    logits, top_p = _big_vocab_cases()[case]
    n = 600
    u = torch.cat([(torch.arange(n, dtype=torch.float64) + 0.5) / n,
                   torch.tensor([0.0, LAST_U], dtype=torch.float64)])
    picked = choose_tokens(logits.expand(len(u), -1), u, 1.0, top_p)
    want = nucleus(logits, 1.0, top_p)
    assert bool((want[picked] > 0).all())  # edges u=0 and u->1 included
    counts = torch.bincount(picked[:n], minlength=len(logits)).double()
    assert (counts - want * n).abs().max() <= 2.0
    # the same holds for groups of tokens contiguous in the sampling order
    order = want.argsort(descending=True) if top_p < 1 else torch.arange(len(logits))
    for chunk in order[want[order] > 0].chunk(4):
        assert abs(float(counts[chunk].sum() - want[chunk].sum() * n)) <= 2.0


def test_temperature_zero_is_argmax_and_zero_probability_is_never_chosen() -> None:
    gen = torch.Generator().manual_seed(2)
    logits = torch.randn(64, 500, generator=gen) * 3
    u = torch.rand(64, dtype=torch.float64, generator=gen)
    assert torch.equal(choose_tokens(logits, u, 0.0, 0.9), logits.argmax(-1))
    assert torch.equal(choose_tokens(logits, 1 - u, 0.0, 1.0), logits.argmax(-1))

    # two allowed tokens per row, everything else impossible; extreme draws included
    masked = torch.full((6, 1000), float("-inf"))
    allowed = torch.tensor([[0, 1], [998, 999], [255, 256], [3, 700], [511, 512], [100, 900]])
    masked.scatter_(1, allowed, 0.0)
    for edge in (0.0, 0.5, LAST_U):
        for temperature, top_p in [(1.0, 1.0), (0.5, 0.9), (1.0, 0.3)]:
            u = torch.full((6,), edge, dtype=torch.float64)
            got = choose_tokens(masked, u, temperature, top_p)
            assert bool((got[:, None] == allowed).any(-1).all()), (edge, temperature, top_p)


# -- hooks and the fallback path ---------------------------------------------------------------


def test_hooks_fire_inside_the_decode_loop(lm: LoadedModel, prompts: list[list[int]]) -> None:
    before = greedy(lm, prompts, batch=6)
    push = torch.randn(lm.model.config.hidden_size, generator=torch.Generator().manual_seed(0))
    calls: list[int] = []

    def steer(module: torch.nn.Module, args: object, out: object) -> object:
        calls.append(1)
        if isinstance(out, tuple):
            return (out[0] + 8.0 * push, *out[1:])
        assert isinstance(out, torch.Tensor)
        return out + 8.0 * push

    handle = lm.model.model.layers[1].register_forward_hook(steer)
    try:
        steered = greedy(lm, prompts, batch=6)
    finally:
        handle.remove()
    assert len(calls) == 24  # prefill, then one call per further token: every step is steered
    changed = sum(a != b for a, b in zip(before, steered, strict=True))
    assert changed == len(prompts)
    assert greedy(lm, prompts, batch=6) == before  # removing the hook restores the model


def test_fallback_path_matches_fast_path(
    lm: LoadedModel, prompts: list[list[int]], monkeypatch: pytest.MonkeyPatch
) -> None:
    plain = greedy(lm, prompts)
    triggers = _triggers(plain)
    settings: dict[str, Any] = {"temperature": 1.0, "top_p": 0.9, "max_new_tokens": 24}
    seeds = [sample_seed(1, "fallback", i) for i in range(len(prompts))]
    with end_turn_instead_of(lm, triggers):
        fast_stop = greedy(lm, prompts)
    fast_sampled = run(lm, prompts, seeds, batch_size=6, **settings)

    used: list[str] = []
    real_stepper = generate_module._HFStepper

    def spy(model: object) -> object:
        used.append("hf")
        return real_stepper(model)

    monkeypatch.setattr(generate_module, "supports_fast_path", lambda model: False)
    monkeypatch.setattr(generate_module, "_HFStepper", spy)
    assert greedy(lm, prompts) == plain
    with end_turn_instead_of(lm, triggers):  # rows retired mid-batch from a DynamicCache
        assert greedy(lm, prompts) == fast_stop
    assert run(lm, prompts, seeds, batch_size=6, **settings) == fast_sampled
    assert used  # the fallback really ran
    assert sum(len(t) < 24 for t in fast_stop) >= 2


def test_packed_fp32_weights_match_plain_linear_and_are_removed(lm: LoadedModel) -> None:
    from petridish.models.packing import packed_linears

    ids = torch.tensor([prompt_ids(lm.tokenizer, conversation(QUESTIONS[1]))])
    seen: list[int] = []
    handle = lm.model.model.layers[0].mlp.down_proj.register_forward_hook(
        lambda m, i, o: seen.append(o.shape[-1]))
    try:
        with torch.inference_mode():
            plain = lm.model(ids).logits
            with packed_linears(lm.model) as n:
                assert n == sum(isinstance(m, torch.nn.Linear) for m in lm.model.modules())
                packed = lm.model(ids).logits
            after = lm.model(ids).logits
    finally:
        handle.remove()
    assert torch.allclose(packed, plain, atol=1e-4, rtol=0)
    assert torch.equal(after, plain)
    assert len(seen) == 3  # the hook fired with and without packing
    assert not any("forward" in vars(m) for m in lm.model.modules())


@pytest.mark.parametrize(("n", "limit"), [(130, 64), (156, 160), (7, 3), (64, 64), (1, 8)])
def test_batches_are_as_few_and_as_even_as_the_limit_allows(n: int, limit: int) -> None:
    parts = even_batches(list(range(n)), limit)
    sizes = [len(p) for p in parts]
    assert [i for p in parts for i in p] == list(range(n))  # order kept, nothing lost
    assert len(parts) == -(-n // limit) and max(sizes) <= limit and max(sizes) - min(sizes) <= 1
    assert even_batches([], 4) == []


def test_rows_that_finish_early_are_yielded_before_the_batch_ends(
        lm: LoadedModel, prompts: list[list[int]]) -> None:
    plain = greedy(lm, prompts)
    triggers = _triggers(plain)
    early = {i for i, s in enumerate(stop_points(plain, triggers)) if s is not None}
    config = SamplingConfig(temperature=0, max_new_tokens=24, batch_size=len(prompts))
    with end_turn_instead_of(lm, triggers):
        groups = list(generate(lm, prompts, [0] * len(prompts), config))
        whole = run(lm, prompts, temperature=0, max_new_tokens=24, batch_size=1)
    assert len(groups) > 1  # one batch, yielded in several groups
    first, gens = groups[0]
    assert set(first) <= early and all(g.finish_reason == "stop" for g in gens)
    seen = [i for idx, _ in groups for i in idx]
    assert sorted(seen) == list(range(len(prompts)))  # every row exactly once
    found = {i: g for idx, gs in groups for i, g in zip(idx, gs, strict=True)}
    assert [found[i] for i in range(len(prompts))] == whole
