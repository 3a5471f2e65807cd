"""What every CLI command shares: consoles and the one-line error wrapper (exit code 2)."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

import typer
from pydantic import ValidationError
from rich.console import Console

from petridish.errors import PetridishError

out = Console(emoji=False)
err = Console(stderr=True, emoji=False)
F = TypeVar("F", bound=Callable[..., Any])


def friendly(fn: F) -> F:
    """Turn PetridishError into one line on stderr and exit code 2."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except PetridishError as e:
            err.print(f"error: {e}", markup=False, highlight=False, soft_wrap=True)
            raise typer.Exit(2) from None

    return wrapper  # type: ignore[return-value]


def options(kind: type[Any], **values: Any) -> Any:
    """Validate CLI options through the same typed config the TOML uses."""
    try:
        return kind(**values)
    except ValidationError as e:
        first = e.errors()[0]
        name = str(first["loc"][0]) if first["loc"] else "option"
        flag = "-n" if name == "n" else "--" + name.replace("_", "-")
        raise PetridishError(f"{first['msg']} (got {first.get('input')!r})", field=flag) from e
