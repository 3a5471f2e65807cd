"""petridish: grow model organisms of misalignment, assay them, look inside, intervene, report.

The names below are imported when first used, so `import petridish` (and the CLI) stays fast.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from petridish.config import Experiment as Experiment
    from petridish.config import load_experiment as load_experiment
    from petridish.data.formats import Question as Question
    from petridish.data.formats import QuestionSet as QuestionSet
    from petridish.data.formats import load_dataset as load_dataset
    from petridish.data.formats import load_questions as load_questions
    from petridish.errors import PetridishError as PetridishError
    from petridish.interp.activations import collect_activations as collect_activations
    from petridish.interp.directions import Direction as Direction
    from petridish.interp.directions import cosine_layers as cosine_layers
    from petridish.interp.directions import mean_diff as mean_diff
    from petridish.interp.directions import random_like as random_like
    from petridish.interp.interventions import ablate as ablate
    from petridish.interp.interventions import steer as steer
    from petridish.judges.backends import make_judge as make_judge
    from petridish.judges.base import Item as Item
    from petridish.judges.base import JudgeSettings as JudgeSettings
    from petridish.judges.base import Judgment as Judgment
    from petridish.judges.metrics import Rate as Rate
    from petridish.judges.metrics import coherence_rate as coherence_rate
    from petridish.judges.metrics import em_rate as em_rate
    from petridish.judges.metrics import self_correction_rate as self_correction_rate
    from petridish.judges.metrics import summarize as summarize
    from petridish.judges.metrics import wilson as wilson
    from petridish.judges.rubrics import Rubric as Rubric
    from petridish.judges.rubrics import load_rubric as load_rubric
    from petridish.judges.rubrics import load_rubrics as load_rubrics
    from petridish.models.chat import conversation as conversation
    from petridish.models.chat import prompt_ids as prompt_ids
    from petridish.models.generate import Generation as Generation
    from petridish.models.generate import generate as generate
    from petridish.models.loader import LoadedModel as LoadedModel
    from petridish.models.loader import load_model as load_model
    from petridish.models.logprob import AnswerLogprob as AnswerLogprob
    from petridish.models.logprob import answer_logprobs as answer_logprobs
    from petridish.models.sampling import SamplingConfig as SamplingConfig
    from petridish.runner import run_experiment as run_experiment

_WHERE = {
    "AnswerLogprob": "petridish.models.logprob",
    "Direction": "petridish.interp.directions",
    "Experiment": "petridish.config",
    "Generation": "petridish.models.generate",
    "Item": "petridish.judges.base",
    "JudgeSettings": "petridish.judges.base",
    "Judgment": "petridish.judges.base",
    "LoadedModel": "petridish.models.loader",
    "PetridishError": "petridish.errors",
    "Question": "petridish.data.formats",
    "QuestionSet": "petridish.data.formats",
    "Rate": "petridish.judges.metrics",
    "Rubric": "petridish.judges.rubrics",
    "SamplingConfig": "petridish.models.sampling",
    "ablate": "petridish.interp.interventions",
    "answer_logprobs": "petridish.models.logprob",
    "coherence_rate": "petridish.judges.metrics",
    "collect_activations": "petridish.interp.activations",
    "conversation": "petridish.models.chat",
    "cosine_layers": "petridish.interp.directions",
    "em_rate": "petridish.judges.metrics",
    "generate": "petridish.models.generate",
    "load_dataset": "petridish.data.formats",
    "load_experiment": "petridish.config",
    "load_model": "petridish.models.loader",
    "load_questions": "petridish.data.formats",
    "load_rubric": "petridish.judges.rubrics",
    "load_rubrics": "petridish.judges.rubrics",
    "make_judge": "petridish.judges.backends",
    "mean_diff": "petridish.interp.directions",
    "prompt_ids": "petridish.models.chat",
    "random_like": "petridish.interp.directions",
    "run_experiment": "petridish.runner",
    "self_correction_rate": "petridish.judges.metrics",
    "steer": "petridish.interp.interventions",
    "summarize": "petridish.judges.metrics",
    "wilson": "petridish.judges.metrics",
}


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module 'petridish' has no attribute {name!r}")
    value = getattr(importlib.import_module(_WHERE[name]), name)
    globals()[name] = value
    return value


__all__ = [
    "AnswerLogprob", "Direction", "Experiment", "Generation", "Item", "JudgeSettings", "Judgment",
    "LoadedModel", "PetridishError", "Question", "QuestionSet", "Rate", "Rubric",
    "SamplingConfig", "ablate", "answer_logprobs", "coherence_rate", "collect_activations",
    "conversation", "cosine_layers", "em_rate", "generate", "load_dataset", "load_experiment",
    "load_model", "load_questions", "load_rubric", "load_rubrics", "make_judge", "mean_diff",
    "prompt_ids", "random_like", "run_experiment", "self_correction_rate", "steer", "summarize",
    "wilson",
]
