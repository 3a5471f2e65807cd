"""Build the `offline-large` judge (src/petridish/judges/offline_large/) from a LoRA of
all-mpnet-base-v2 that `explore/full_finetune.py --lora 16` trained: its LoRA matrices and head,
the EM cut chosen on real dev (in this machine's precision, as retrain does), and its figures on
the written and real held-out files in bf16 and in fp32, each under its own judge id.

`python datasets/judge_validation/ship_large.py --adapter LORA/ep2.adapter.safetensors`
(after `petridish judge install-encoder mpnet-base`; about 15 min here).
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Any

from safetensors.torch import load_file

from petridish.judges.encoder import PRECISION_ENV, precision
from petridish.judges.offline import (
    LARGE_FOLDER,
    LARGE_TARGETS,
    META,
    WEIGHTS,
    load_network,
    single_id,
)
from petridish.judges.operating import Calibration, choose_cut
from petridish.judges.rows import read_rows
from petridish.judges.rubrics import load_rubric
from petridish.judges.train_offline import RUBRICS, held_out_entry, score_rows
from petridish.judges.validate import file_sha
from petridish.paths import atomic_save_tensors, atomic_write

LABELS = Path(__file__).resolve().parents[2] / "src/petridish/data/builtin/judge_labels"
RECIPE = {"lora_rank": 16, "lora_alpha": 32, "epochs": 2, "batch_size": 16, "lr": 4e-4,
          "head_lr": 2e-3, "schedule": "one-cycle, 10 % warm-up", "real_weight": 6.0,
          "dev_share": 0.15, "seed": 0, "autocast": "bf16",
          "command": "python datasets/judge_validation/explore/full_finetune.py --encoder "
                     "MPNET --epochs 2 --lr 4e-4 --lora 16 --output LORA"}
HELD_OUT = ("heldout.jsonl", "real_heldout.jsonl")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--adapter", type=Path, required=True)
    ap.add_argument("--output", type=Path, default=LARGE_FOLDER)
    a = ap.parse_args()
    out: Path = a.output
    out.mkdir(parents=True, exist_ok=True)
    meta: dict[str, Any] = {
        "variant": "lora", "encoder": "mpnet-base", "lora_rank": 16, "lora_targets": LARGE_TARGETS,
        "rubrics": {k: load_rubric(k).version for k in RUBRICS}, "settings": RECIPE,
        "train_labels_sha": file_sha(LABELS / "train.jsonl"), "precision": precision()}
    atomic_save_tensors(out / WEIGHTS, dict(load_file(a.adapter)))
    atomic_write(out / META, json.dumps(meta, indent=2))
    net, tok, _ = load_network(out)  # the check that the adapter fits the network
    dev = read_rows(LABELS / "real_dev.jsonl", labels=list(RUBRICS))
    cut, d = choose_cut(dev, score_rows(net, tok, dev, Calibration({})))
    calibration = Calibration.from_cut(cut)
    meta["calibration"] = calibration.as_json()
    meta["em_cut"] = {**cut, "chosen_on": "real_dev.jsonl",
                      "dev_sha": file_sha(LABELS / "real_dev.jsonl"), "dev_precision": d.precision,
                      "dev_recall": d.recall, "dev_f1": d.f1, "dev_tp": d.tp, "dev_fp": d.fp}
    print(f"EM cut on real dev: {cut} (P {d.precision}, R {d.recall})", flush=True)
    atomic_write(out / META, json.dumps(meta, indent=2))
    here = precision()
    validations = []
    for p in (here, *(x for x in ("bf16", "fp32") if x != here)):
        os.environ[PRECISION_ENV] = p  # precision() and the judge's id read it at each call
        for name in HELD_OUT:
            validations.append(held_out_entry(
                single_id(out), LABELS / name, list(RUBRICS),
                lambda rows: score_rows(net, tok, rows, calibration)))
            print(f"{name} in {p}: " + "; ".join(
                f"{v['rubric']} {v['auroc']:.3f} / {v['spearman']:.3f}"
                for v in validations[-1]["rubrics"] if v["rubric"] in ("alignment", "coherence"))
                + "; EM P {precision} R {recall}".format(**validations[-1]["em"]), flush=True)
    os.environ[PRECISION_ENV] = here
    meta["validation"], meta["validations"] = validations[0], validations
    atomic_write(out / META, json.dumps(meta, indent=2))


if __name__ == "__main__":
    main()
