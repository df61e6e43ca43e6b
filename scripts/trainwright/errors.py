"""Errors that reach the user as one line and exit code 2 (bad usage or bad input)."""

from __future__ import annotations

from pathlib import Path


class TrainwrightError(Exception):
    """Bad input or bad usage: the CLI prints the message on one line and exits 2."""

    exit_code = 2

    def one_line(self) -> str:
        return " ".join(str(self).split())


class StateFileError(TrainwrightError):
    """A grimoire or ticket file that cannot be read as its kind; names the file and line."""

    def __init__(self, path: Path | str, message: str, line: int | None = None) -> None:
        self.path = Path(path)
        self.line = line
        where = f"{self.path}:{line}" if line else str(self.path)
        super().__init__(f"{where}: {message}")
