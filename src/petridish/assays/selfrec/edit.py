"""Edited texts: an own sample whose second half another subject rewrote (its continuation of
the own first half, in the same assistant turn). Sampled with per-text seeds, so a resumed
stage rebuilds the same texts."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from petridish.assays.base import AssayStage
from petridish.assays.selfrec.texts import EDITED, Text
from petridish.errors import PetridishError
from petridish.models.chat import conversation, prompt_ids
from petridish.models.sampling import sample_seed
from petridish.models.subject import load_subject

if TYPE_CHECKING:
    from petridish.assays.selfrec import SelfrecConfig


def edited_texts(stage: AssayStage, cfg: SelfrecConfig, own: Sequence[Text]) -> list[Text]:
    from petridish.models.generate import generate

    who = cfg.editor(stage.subject.name)
    if who is None:
        return []  # no other subject to rewrite its texts
    editor = stage.peers[who]
    if not editor.ref.is_local:
        raise PetridishError(f"edited_by {who!r} is served; rewriting a span needs a local "
                             "model", field="edited_by")
    lm = stage.loaded.get((who, stage.dtype)) or load_subject(editor, device=str(stage.device),
                                                               dtype=stage.dtype)
    stage.loaded[(who, stage.dtype)] = lm
    prompts: list[list[int]] = []
    seeds: list[int] = []
    heads: list[str] = []
    keep: list[Text] = []
    for t in own:
        ids = list(lm.tokenizer(t.text, add_special_tokens=False)["input_ids"])
        if len(ids) < 8:
            continue  # too short to cut
        head = str(lm.tokenizer.decode(ids[:len(ids) // 2]))
        prompts.append(prompt_ids(lm.tokenizer, conversation(t.question.text, t.question.system))
                       + ids[:len(ids) // 2])
        seeds.append(sample_seed(stage.seed, f"{t.qkey}/edit", t.index))
        heads.append(head)
        keep.append(t)
    if not keep:
        return []
    sampling = cfg.model_copy(update={"seed": 0, "max_new_tokens": cfg.max_new_tokens // 2 + 8})
    out: dict[int, str] = {}
    for idx, gens in generate(lm, prompts, seeds, sampling):
        for i, g in zip(idx, gens, strict=True):
            out[i] = heads[i] + g.text
    return [Text(t.qset, t.question, EDITED, t.index, out[i]) for i, t in enumerate(keep)
            if out.get(i, heads[i]).strip() != heads[i].strip()]
