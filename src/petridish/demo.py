"""`petridish demo --quick`: the demo shrunk to a smoke run of every stage and mode."""

from __future__ import annotations

from petridish.config import Experiment


def quick_experiment(exp: Experiment) -> Experiment:
    """Short training, one short answer per question and condition; the last steering layer
    at λ = 0 and the largest λ; one random seed. Too little for an effect, enough to see
    every stage run."""
    return exp.model_copy(update={
        "name": f"{exp.name}-quick",
        "train": [t.model_copy(update={"max_examples": min(t.max_examples or 40, 40),
                                       "epochs": 1}) for t in exp.train],
        "assay": [a.model_copy(update={"n": 1, "max_new_tokens": min(a.max_new_tokens, 48)})
                  for a in exp.assay],
        "steer": [c.model_copy(update={"n": 1, "max_new_tokens": min(c.max_new_tokens, 32),
                                       "layers": c.layers[-1:],
                                       "scales": sorted({0.0, max(c.scales)}),
                                       "random_seeds": (c.random_seeds or [])[:1] or None})
                  for c in exp.steer],
        "ablate": [c.model_copy(update={"n": 1, "max_new_tokens": min(c.max_new_tokens, 32),
                                        "seeds": c.seeds[:1]}) for c in exp.ablate],
    })
