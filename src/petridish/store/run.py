"""Run folders: `runs/<experiment>-<hash>/` with the config, meta.json and store.sqlite."""

from __future__ import annotations

import json
import os
import platform
import socket
import sys
import time
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from petridish.errors import PetridishError
from petridish.paths import atomic_write
from petridish.store.db import Store

_LIBRARIES = ("torch", "transformers", "peft", "tokenizers", "safetensors", "numpy", "pydantic")


@dataclass(frozen=True)
class RunIdentity:
    """What names a run folder and heads its meta.json."""

    experiment: str
    hash: str
    seed: int
    config_json: str  # the validated experiment, defaults filled in

    @property
    def folder_name(self) -> str:
        return f"{self.experiment}-{self.hash}"


def check_writable(runs_dir: Path) -> None:
    """Fail before anything is written if the run folder cannot be created."""
    probe = runs_dir
    while not probe.exists():
        probe = probe.parent
    if not probe.is_dir() or not os.access(probe, os.W_OK | os.X_OK):
        raise PetridishError(f"run folder is not writable: {probe}", field="runs_dir")


class Run:
    """An opened run folder; `meta` is rewritten atomically as stages progress."""

    def __init__(self, folder: Path, identity: RunIdentity, config_text: str) -> None:
        self.folder = folder
        self.identity = identity
        folder.mkdir(parents=True, exist_ok=True)
        if not (folder / "config.toml").exists():
            atomic_write(folder / "config.toml", config_text)
        atomic_write(folder / "config.json", identity.config_json)
        self.store = Store(folder / "store.sqlite")
        meta_path = folder / "meta.json"
        self.meta: dict[str, Any] = (
            json.loads(meta_path.read_text()) if meta_path.exists() else _new_meta(identity)
        )
        self.meta["sessions"].append({"start": time.time(), "end": None, "argv": sys.argv,
                                      "pid": os.getpid(), "host": socket.gethostname()})
        self.meta["models"] = self.meta.get("models", {})
        self.save_meta()

    def record_model(self, subject: str, description: dict[str, Any]) -> None:
        self.meta["models"][subject] = {**self.meta["models"].get(subject, {}), **description}
        self.save_meta()

    def save_meta(self) -> None:
        atomic_write(self.folder / "meta.json", json.dumps(self.meta, indent=2))

    def close(self, status: str) -> None:
        self.meta["sessions"][-1].update(end=time.time(), status=status)
        self.meta["end"] = time.time() if status == "done" else self.meta.get("end")
        self.save_meta()
        self.store.close()


def _new_meta(exp: RunIdentity) -> dict[str, Any]:
    versions: dict[str, str | None] = {}
    for lib in ("petridish", *_LIBRARIES):
        try:
            versions[lib] = metadata.version(lib)
        except metadata.PackageNotFoundError:
            versions[lib] = None
    return {
        "experiment": exp.experiment,
        "hash": exp.hash,
        "seed": exp.seed,
        "start": time.time(),
        "end": None,
        "host": socket.gethostname(),
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "versions": versions,
        "sessions": [],
    }
