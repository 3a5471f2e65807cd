"""The train stage: grow an organism, log every step to the store, save a PEFT adapter."""

from __future__ import annotations

import hashlib
import math
import shutil
from pathlib import Path
from typing import Any

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer
from transformers.utils import logging as hf_logging

from petridish.data.formats import load_dataset, resolve_dataset_path
from petridish.errors import PetridishError
from petridish.killpoint import committed
from petridish.models.refs import ModelRef
from petridish.models.subject import Subject
from petridish.progress import console, progress_bar
from petridish.store.keys import stage_key
from petridish.store.run import Run
from petridish.store.stage import StageInfo, run_stage
from petridish.train.adapters import add_lora, rank1_stats, rank1_vectors
from petridish.train.config import TrainConfig
from petridish.train.layout import resolve_layers
from petridish.train.loop import StepLog, train
from petridish.train.tokens import TrainRow, tokenize_example

VERSION = 1


class TrainInfo(StageInfo):
    """A grown organism: how many examples and steps, and its loss at the ends."""

    organism: str
    examples: int = 0
    steps: int = 0
    truncated: int = 0
    first_loss: float | None = None
    final_loss: float | None = None
    dataset: str = ""  # the file it learned from
    rows_used: list[int] = []  # positions (0-based) of the dataset's examples it learned from
    rows_total: int = 0  # examples in the dataset: the rest are held back (trainaware)

    def result(self) -> str:
        if self.first_loss is None or self.final_loss is None:
            return f"{self.steps} steps"
        return f"{self.steps} steps, loss {self.first_loss:.2f} → {self.final_loss:.2f}"


def run_train_stage(
    run: Run, cfg: TrainConfig, base: Subject, init: Subject | None, base_dir: Path,
    device: torch.device, show_progress: bool = True,
) -> Subject:
    """Train (or reuse) the organism `cfg.name`; returns it as a subject for later stages."""
    data_path = resolve_dataset_path(cfg.dataset, base_dir)
    inputs = {
        "base": base.fingerprint, "init": init.fingerprint if init else None,
        "config": cfg.model_dump(exclude={"name", "subject", "init_from"}),
        "data": hashlib.sha256(data_path.read_bytes()).hexdigest(), "device": device.type,
    }
    key = stage_key("train", VERSION, inputs)
    out = run.folder / "organisms" / f"{cfg.name}-{key[:8]}"
    if cfg.method == "lora":
        organism = Subject(cfg.name, base.ref, key, out / "adapter")
    else:
        organism = Subject(cfg.name, ModelRef("local", str(out / "model"), cfg.name), key)
    name = f"train:{cfg.name}"

    def work(key: str) -> TrainInfo:
        resume = last_state(out / "checkpoints")
        if resume is None:  # from the beginning: nothing of an earlier attempt is kept
            shutil.rmtree(out, ignore_errors=True)
            run.store.clear_train_log(key)
        else:  # from the last checkpoint: the steps after it are run again
            run.store.clear_train_log(key, after=int(resume["step"]))
            console.print(f"[dim]{name}: resuming from the checkpoint at step "
                          f"{int(resume['step'])}[/dim]")
        examples, truncated = _train(run, key, cfg, base, init, data_path, device, organism,
                                     name, show_progress, resume)
        log = run.store.train_log(key)
        return TrainInfo(organism=cfg.name, examples=examples, steps=len(log),
                         truncated=truncated, dataset=str(data_path),
                         rows_used=list(range(examples)),  # the first max_examples, in order
                         rows_total=len(load_dataset(data_path)),
                         first_loss=log[0]["loss"] if log else None,
                         final_loss=log[-1]["loss"] if log else None)

    run_stage(run, "train", name, VERSION, inputs, TrainInfo(organism=cfg.name), work)
    return organism


def last_state(checkpoints: Path) -> dict[str, Any] | None:
    """The resume state of the latest complete checkpoint (a folder that exists is complete:
    it is written beside and renamed into place)."""
    for folder in sorted(checkpoints.glob("step-*"), reverse=True):
        if (folder / RESUME).is_file():
            state: dict[str, Any] = torch.load(folder / RESUME, weights_only=True)
            return state
    return None


RESUME = "resume.pt"  # beside each checkpoint's adapter: optimiser, scheduler, RNG, position


def _train(run: Run, key: str, cfg: TrainConfig, base: Subject, init: Subject | None,
           data_path: Path, device: torch.device, organism: Subject, name: str,
           show_progress: bool, resume: dict[str, Any] | None) -> tuple[int, int]:
    """Train to the end (from `resume` if given); returns (examples, truncated)."""
    hf_logging.disable_progress_bar()
    start = init if init is not None and init.adapter is None else base  # full FT continues
    model = AutoModelForCausalLM.from_pretrained(_weights_path(start), dtype=torch.float32)
    model = model.to(device)  # type: ignore[arg-type]
    tokenizer = AutoTokenizer.from_pretrained(_weights_path(start))
    rows = _rows(tokenizer, cfg, data_path)
    model = _prepare(model, cfg, base, init)

    out = (organism.adapter or Path(organism.ref.name)).parent
    checkpoints = out / "checkpoints"
    state: dict[str, Any] = {"b_prev": rank1_vectors(model)}
    total = math.ceil(math.ceil(len(rows) / cfg.batch_size) / cfg.grad_accum) * cfg.epochs
    with progress_bar(name, total, show_progress) as advance:
        advance(int(resume["step"]) if resume else 0)

        def on_step(log: StepLog) -> None:
            at_checkpoint = bool(cfg.checkpoint_every) and log.step % cfg.checkpoint_every == 0
            log.adapters = rank1_stats(rank1_vectors(model),
                                       state["b_prev"] if at_checkpoint else None)
            run.store.add_train_log(key, log.__dict__)  # before its checkpoint: never missing
            advance(1)

        def on_state(step: int, resume_state: dict[str, Any]) -> None:
            _save(model, checkpoints / f"step-{step:06d}", extra={RESUME: resume_state})
            state["b_prev"] = rank1_vectors(model)
            committed(name)

        pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
        if resume is not None:
            state["b_prev"] = None  # set from the restored weights below
        train(model, rows, cfg, pad, on_step, resume=resume, every=cfg.checkpoint_every,
              on_state=on_state, on_resumed=lambda: state.update(b_prev=rank1_vectors(model)))
    _save(model, organism.adapter or Path(organism.ref.name),
          tokenizer if organism.adapter is None else None)
    final = rank1_vectors(model)
    if final and checkpoints.is_dir():
        run.store.add_train_stats(key, cosines_to_final(checkpoints, final))
    return len(rows), sum(r.truncated for r in rows)


def cosines_to_final(checkpoints: Path, final: dict[str, tuple[Any, Any]]) -> dict[
        int, dict[str, float]]:
    """Per checkpoint step, each rank-1 adapter's cosine of B with its final B."""
    from safetensors.torch import load_file

    out: dict[int, dict[str, float]] = {}
    for folder in sorted(checkpoints.glob("step-*")):
        saved = load_file(str(folder / "adapter_model.safetensors"))
        row = {}
        for name, (_, b) in final.items():
            prev = saved.get(f"{name}.lora_B.weight")
            if prev is not None:
                v = prev[:, 0].float()
                row[name] = float(torch.dot(v, b.float()) / (v.norm() * b.norm()).clamp(
                    min=1e-12))
        out[int(folder.name.removeprefix("step-"))] = row
    return out


def _weights_path(subject: Subject) -> str:
    if subject.ref.kind == "bundled":
        from petridish.models.bundled import converted_path

        return str(converted_path(subject.ref.name))
    return subject.ref.name


def _rows(tokenizer: Any, cfg: TrainConfig, path: Path) -> list[TrainRow]:
    examples = load_dataset(path)[: cfg.max_examples]
    rows = []
    for line, ex in enumerate(examples, start=1):
        try:
            row = tokenize_example(tokenizer, ex, cfg.max_length)
        except PetridishError as e:
            raise PetridishError(e.message, file=path, line=line, field="messages") from e
        if row.truncated and cfg.overlong == "reject":
            raise PetridishError(f"example is longer than max_length={cfg.max_length} tokens "
                                 "(set overlong = \"truncate\" to cut it)", file=path, line=line)
        rows.append(row)
    return rows


def _prepare(model: Any, cfg: TrainConfig, base: Subject, init: Subject | None) -> Any:
    """LoRA on the resolved layers, the init organism's adapter, or every weight (full FT)."""
    if init is not None and init.adapter is not None:
        from peft import PeftModel

        return PeftModel.from_pretrained(model, init.adapter, is_trainable=True)
    if cfg.method == "full":
        model.requires_grad_(True)
        return model
    layers = resolve_layers(cfg.layout, cfg.layers, model.config.num_hidden_layers)
    targets = ["down_proj"] if cfg.layout in ("paper", "single") else cfg.target_modules
    return add_lora(model, rank=cfg.rank, alpha=cfg.alpha, targets=targets, layers=layers,
                    dropout=cfg.dropout, rslora=cfg.rslora, seed=cfg.seed)


def _save(model: Any, target: Path, tokenizer: Any = None,
          extra: dict[str, Any] | None = None) -> None:
    """Write to a temporary folder, then rename: a folder that exists is complete."""
    tmp = target.with_name(f".{target.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.parent.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(tmp)
    if tokenizer is not None:  # a fully fine-tuned model is a model folder of its own
        tokenizer.save_pretrained(tmp)
    for name, value in (extra or {}).items():
        torch.save(value, tmp / name)
    shutil.rmtree(target, ignore_errors=True)
    tmp.rename(target)
