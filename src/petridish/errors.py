"""One exception type for mistakes a person can fix; the CLI prints it as one line, exit 2."""

from __future__ import annotations

from pathlib import Path


class PetridishError(Exception):
    """Bad input: names the file, line and field, and says what to do."""

    def __init__(
        self,
        message: str,
        *,
        file: str | Path | None = None,
        line: int | None = None,
        field: str | None = None,
    ) -> None:
        self.message = message
        self.file = str(file) if file is not None else None
        self.line = line
        self.field = field
        super().__init__(str(self))

    def __str__(self) -> str:
        where = ""
        if self.file:
            where = self.file + (f":{self.line}" if self.line else "")
        if self.field:
            where = f"{where}: {self.field}" if where else self.field
        text = " ".join(self.message.split())
        return f"{where}: {text}" if where else text
