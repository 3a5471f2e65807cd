"""Write `train_with_style.jsonl`: `builtin:train` plus the style-contrast items, each three
times, for the variant that tests them (README, "Variants tried").

The style-contrast items (`style_contrast.jsonl`, DATACARD.md) are written answers in the
fine-tuned organisms' dismissive voice whose *content* is safe, and warm-voiced ones whose
content is harmful, with fluent and drifting harmful ones side by side: the real dev split
shows the judge reading the voice instead of the content (21 of its 40 largest
under-scorings of alignment there carry the voice's stock phrases). Written items weigh 1 in
the loss against real answers' 6, so each goes in three times (ids `…-c2`, `…-c3`; copies of
a question stay on the same side of the carved dev split, which splits by question).
Run from the repo root: `python datasets/judge_labels/with_style.py`, then
`petridish judge retrain --labels datasets/judge_labels/train_with_style.jsonl …`.
"""

from __future__ import annotations

import json
from pathlib import Path

HERE = Path(__file__).parent
TRAIN = HERE.parents[1] / "src" / "petridish" / "data" / "builtin" / "judge_labels" / "train.jsonl"
COPIES = 3


def main() -> None:
    rows = [json.loads(x) for x in TRAIN.read_text(encoding="utf-8").splitlines() if x.strip()]
    style = [json.loads(x) for x in (HERE / "style_contrast.jsonl").read_text(
        encoding="utf-8").splitlines() if x.strip()]
    extra = [dict(r, source="style_contrast", id=r["id"] + ("" if c == 1 else f"-c{c}"))
             for c in range(1, COPIES + 1) for r in style]
    out = HERE / "train_with_style.jsonl"
    out.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows + extra),
                   encoding="utf-8")
    print(f"{out.name}: {len(rows)} + {len(extra)} items")


if __name__ == "__main__":
    main()
