"""Assays: measurements on a subject. Each kind registers a runner under its name."""
