"""What every table a user writes shares: the pattern of names (assays, subjects, directions,
conditions) and strict parsing (no `true` for an integer, no `nan` or `inf` for a number)."""

from pydantic import ConfigDict

NAME = r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"
TABLE = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)
