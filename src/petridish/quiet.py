"""Library chatter (transformers' warnings and progress bars, peft's and torch's warnings) kept
out of stderr, so that an error is the one line petridish printed; `--verbose` lets it through
Python logging instead."""

from __future__ import annotations

import logging
import os
import warnings

_LIBRARIES = ("transformers", "peft", "torch", "huggingface_hub", "accelerate", "httpx",
              "urllib3", "sentence_transformers", "safetensors")


def configure(verbose: bool) -> None:
    if verbose:
        logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
        logging.captureWarnings(True)  # warnings become log records on the same stream
        return
    os.environ["TQDM_DISABLE"] = "1"  # tqdm bars of any library (GGUF conversion, saving)
    os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] = "1"
    os.environ["TRANSFORMERS_VERBOSITY"] = "error"
    os.environ["TRANSFORMERS_NO_ADVISORY_WARNINGS"] = "1"
    for category in (FutureWarning, DeprecationWarning, UserWarning):
        warnings.filterwarnings("ignore", category=category)
    for name in _LIBRARIES:
        logging.getLogger(name).setLevel(logging.ERROR)
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        from huggingface_hub.utils import disable_progress_bars
    except ImportError:  # pragma: no cover - an older hub
        return
    disable_progress_bars()
