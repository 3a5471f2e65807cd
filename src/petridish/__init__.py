"""petridish: grow model organisms of misalignment, assay them, look inside, intervene, report."""

from petridish.config import Experiment, load_experiment
from petridish.data.formats import Question, QuestionSet, load_dataset, load_questions
from petridish.errors import PetridishError
from petridish.interp.activations import collect_activations
from petridish.interp.directions import Direction, cosine_layers, mean_diff, random_like
from petridish.interp.interventions import ablate, steer
from petridish.judges.base import Item, JudgeSettings, Judgment, make_judge
from petridish.judges.metrics import (
    Rate,
    coherence_rate,
    em_rate,
    self_correction_rate,
    summarize,
    wilson,
)
from petridish.judges.rubrics import Rubric, load_rubric, load_rubrics
from petridish.models.chat import conversation, prompt_ids
from petridish.models.generate import Generation, generate
from petridish.models.loader import LoadedModel, load_model
from petridish.models.logprob import AnswerLogprob, answer_logprobs
from petridish.models.sampling import SamplingConfig
from petridish.runner import run_experiment

__all__ = [
    "AnswerLogprob", "Direction", "Experiment", "Generation", "Item", "JudgeSettings", "Judgment",
    "LoadedModel", "PetridishError", "Question", "QuestionSet", "Rate", "Rubric",
    "SamplingConfig", "ablate", "answer_logprobs", "coherence_rate", "collect_activations",
    "conversation", "cosine_layers", "em_rate", "generate", "load_dataset", "load_experiment",
    "load_model", "load_questions", "load_rubric", "load_rubrics", "make_judge", "mean_diff",
    "prompt_ids", "random_like", "run_experiment", "self_correction_rate", "steer", "summarize",
    "wilson",
]
