"""A local transformers chat model as a judge: same protocol as the served one (top-20
logprobs of the first answer token, weighted mean over 0..100), or parse mode (greedy text)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

from petridish.errors import PetridishError
from petridish.judges.base import Item, JudgeSettings, Judgment
from petridish.judges.numbers import score_from_logprobs, score_from_text
from petridish.judges.rubrics import Rubric
from petridish.models.chat import conversation, prompt_ids
from petridish.models.generate import generate
from petridish.models.loader import LoadedModel, load_model
from petridish.models.refs import parse_model_ref
from petridish.models.sampling import SamplingConfig
from petridish.models.subject import model_fingerprint

TOP = 20


class HFJudge:
    """Judge with a local model folder (or hub id where there is a hub)."""

    def __init__(self, path: str, settings: JudgeSettings, batch_size: int = 8) -> None:
        ref = parse_model_ref(path)
        self.lm: LoadedModel = load_model(ref, device=settings.device, dtype="fp32")
        self.mode = settings.mode
        self.batch_size = batch_size
        self.id = f"hf:{path}@{model_fingerprint(ref)[:8]}" + ("|parse" if self.mode == "parse"
                                                              else "")
        if self.mode == "logprobs":
            pieces = self.lm.tokenizer("57", add_special_tokens=False)["input_ids"]
            if len(pieces) != 1:
                raise PetridishError(
                    f"judge {path}: its tokenizer splits numbers into {len(pieces)} tokens, so "
                    "a 0-100 score cannot be read from one token's logprobs; use mode = "
                    "\"parse\"", field="judge.mode")

    def judge(self, items: Sequence[Item], rubrics: Sequence[Rubric],
              progress: Callable[[int], None] | None = None) -> dict[str, list[Judgment]]:
        out: dict[str, list[Judgment]] = {}
        for r in rubrics:
            prompts = [prompt_ids(self.lm.tokenizer, conversation(r.render(it.question,
                                                                            it.answer)))
                       for it in items]
            out[r.name] = (self._logprobs(prompts, r, progress) if self.mode == "logprobs"
                           else self._parse(prompts, r, progress))
        return out

    @torch.inference_mode()
    def _logprobs(self, prompts: list[list[int]], rubric: Rubric,
                  progress: Callable[[int], None] | None) -> list[Judgment]:
        tok = self.lm.tokenizer
        result: list[Judgment] = []
        for s in range(0, len(prompts), self.batch_size):
            rows = prompts[s:s + self.batch_size]
            width = max(map(len, rows))
            ids = torch.full((len(rows), width), int(tok.pad_token_id), dtype=torch.long)
            mask = torch.zeros_like(ids)
            for i, p in enumerate(rows):  # left padding: the last position is the next token
                ids[i, width - len(p):] = torch.tensor(p)
                mask[i, width - len(p):] = 1
            pos = (mask.cumsum(-1) - 1).clamp(min=0)
            logits = self.lm.model(input_ids=ids.to(self.lm.device),
                                   attention_mask=mask.to(self.lm.device),
                                   position_ids=pos.to(self.lm.device)).logits[:, -1].float()
            top = torch.log_softmax(logits, -1).topk(TOP, dim=-1)
            for lp, ix in zip(top.values.tolist(), top.indices.tolist(), strict=True):
                pairs = [(str(tok.decode([t])), float(v)) for t, v in zip(ix, lp, strict=True)]
                score, mass, reason = score_from_logprobs(pairs)
                result.append(Judgment(score, self.id, rubric.name, rubric.version, reason, mass,
                                       width, 1))
            if progress:
                progress(len(rows))
        return result

    def _parse(self, prompts: list[list[int]], rubric: Rubric,
               progress: Callable[[int], None] | None) -> list[Judgment]:
        cfg = SamplingConfig.model_validate({"temperature": 0, "max_new_tokens": 8,
                                             "batch_size": self.batch_size})
        texts: list[str] = [""] * len(prompts)
        for idx, gens in generate(self.lm, prompts, [0] * len(prompts), cfg):
            for i, g in zip(idx, gens, strict=True):
                texts[i] = g.text
            if progress:
                progress(len(idx))
        out = []
        for p, text in zip(prompts, texts, strict=True):
            score, reason = score_from_text(text)
            out.append(Judgment(score, self.id, rubric.name, rubric.version, reason,
                                tokens_in=len(p), tokens_out=len(text)))
        return out
