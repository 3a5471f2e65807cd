"""Assay kinds register themselves with `@assay("kind")`. Every module of this package is one
candidate kind, and other packages can add kinds through the `petridish.assays` entry point
group; experiment tables validate as a union keyed on `kind`."""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from functools import cache
from importlib.metadata import entry_points
from typing import Annotated, Any, TypeVar, Union

from pydantic import Discriminator, Tag

from petridish.assays.base import Assay
from petridish.errors import PetridishError

_KINDS: dict[str, Assay] = {}
_SHARED = {"base", "registry", "stage"}  # modules of this package that are not kinds
T = TypeVar("T")


def assay(kind: str) -> Callable[[type[T]], type[T]]:
    """Register a class implementing `Assay` under `kind` (its config's `kind` literal)."""
    def deco(cls: type[T]) -> type[T]:
        cls.kind = kind  # type: ignore[attr-defined]
        _KINDS[kind] = cls()  # type: ignore[assignment]
        return cls
    return deco


@cache
def _discover() -> None:
    import petridish.assays as package

    for mod in pkgutil.iter_modules(package.__path__):
        if not mod.name.startswith("_") and mod.name not in _SHARED:
            importlib.import_module(f"petridish.assays.{mod.name}")
    for ep in entry_points(group="petridish.assays"):
        ep.load()


def kinds() -> dict[str, Assay]:
    _discover()
    return dict(_KINDS)


def get_assay(kind: str) -> Assay:
    found = kinds().get(kind)
    if found is None:
        raise PetridishError(f"unknown assay kind {kind!r}; known: {', '.join(sorted(kinds()))}",
                             field="kind")
    return found


def _kind_of(value: Any) -> str:
    if isinstance(value, dict):
        return str(value.get("kind", "freeform"))
    return str(getattr(value, "kind", "freeform"))


def config_union() -> Any:
    """The type of one `[[assay]]` table: the registered configs, chosen by `kind`
    (default `freeform`)."""
    members = tuple(Annotated[a.config, Tag(k)] for k, a in sorted(kinds().items()))
    return Annotated[Union[members], Discriminator(_kind_of)]  # noqa: UP007
