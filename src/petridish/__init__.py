"""petridish: grow model organisms of misalignment, assay them, look inside, intervene, report."""

from petridish.config import Experiment, load_experiment
from petridish.data.formats import Question, QuestionSet, load_dataset, load_questions
from petridish.errors import PetridishError
from petridish.models.chat import conversation, prompt_ids
from petridish.models.generate import Generation, generate
from petridish.models.loader import LoadedModel, load_model
from petridish.models.logprob import AnswerLogprob, answer_logprobs
from petridish.models.sampling import SamplingConfig
from petridish.runner import run_experiment

__all__ = [
    "AnswerLogprob", "Experiment", "Generation", "LoadedModel", "PetridishError", "Question",
    "QuestionSet", "SamplingConfig", "answer_logprobs", "conversation", "generate",
    "load_dataset", "load_experiment", "load_model", "load_questions", "prompt_ids",
    "run_experiment",
]
