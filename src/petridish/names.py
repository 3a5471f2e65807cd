"""The one pattern for names users give things (assays, subjects, directions, conditions)."""

NAME = r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"
