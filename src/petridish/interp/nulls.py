"""The material matched nulls are made of: the activations a direction was computed from
(read back from the run folder), and mean-diffs of randomly relabelled responses."""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors.torch import load_file

from petridish.errors import PetridishError
from petridish.interp.directions import Direction, mean_diff


class NullSource:
    """For one `[[direction]]` of a run: its activations (`[n, layers, d]`) and permutations.

    A filter direction is mean(a) − mean(b) over one subject's responses: its activations are
    those `n_a + n_b` responses, and a permutation relabels them keeping the group sizes. A
    contrast is mean(A − B) over the same texts under two subjects: its activations are both
    subjects' (`2n`), and a permutation swaps A and B on a random half of the texts."""

    def __init__(self, folder: Path, direction: Direction, name: str) -> None:
        self.direction, self.name = direction, name
        prov = direction.provenance
        acts = folder / "activations"
        if prov.get("kind") == "contrast":
            self.files = [acts / f"{name}-{prov['a_subject']}.safetensors",
                          acts / f"{name}-{prov['b_subject']}.safetensors"]
            self.of = f"{prov['a_subject']} and {prov['b_subject']}"
        else:
            self.files = [acts / f"{name}.safetensors"]
            self.of = str(prov.get("subject", ""))
        self._cache: list[torch.Tensor] | None = None

    def _load(self) -> list[torch.Tensor]:
        if self._cache is None:
            missing = [f for f in self.files if not f.is_file()]
            if missing:
                raise PetridishError(f"a matched null needs the direction's activations; "
                                     f"{missing[0].name} is missing",
                                     field=f"direction.{self.name}")
            self._cache = [load_file(str(f))["activations"] for f in self.files]
        return self._cache

    def activations(self) -> torch.Tensor:
        return torch.cat(self._load())

    def permuted(self, seed: int) -> Direction:
        g = torch.Generator().manual_seed(seed)
        parts = self._load()
        prov = {"permutation_seed": seed, "of": self.name}
        if len(parts) == 2:  # paired texts: swap the two subjects on a random half
            a, b = parts
            flip = torch.rand(a.shape[0], generator=g) < 0.5
            a2, b2 = torch.where(flip[:, None, None], b, a), torch.where(flip[:, None, None], a, b)
            return mean_diff(a2, b2, self.direction.layers, prov, min_count=1)
        (acts,) = parts
        n_a = int(self.direction.provenance.get("n_a", acts.shape[0] // 2))
        order = torch.randperm(acts.shape[0], generator=g)
        return mean_diff(acts[order[:n_a]], acts[order[n_a:]], self.direction.layers, prov,
                         min_count=1)
