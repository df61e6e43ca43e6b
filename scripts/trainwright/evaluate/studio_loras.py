"""Read the registered LoRAs from grimoire/studio.md, as an image-making skill (/art) does.

Each LoRA is a `### LoRA: <name>` heading followed by `- **Key**: value` lines (File, Type,
Trigger word, Recommended weight, Base model, Good for, Training date, Training params). Examples
inside ``` code blocks are not entries. Hand-typed `- **Key:** value` lines are read too.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from trainwright.state.schema import validate_file

PREFIX = "LoRA: "


@dataclass
class RegisteredLora:
    name: str
    file: str | None
    type: str | None
    trigger: str | None
    weight: float | None
    base_model: str | None
    good_for: str | None
    training_date: str | None
    training_params: str | None

    def apply(self, prompt: str) -> tuple[str, float]:
        """The prompt with the trigger word in front (once), and the weight to load it at."""
        text = prompt.strip()
        if self.trigger and self.trigger.lower() not in text.lower().replace(",", " ").split():
            text = f"{self.trigger}, {text}" if text else self.trigger
        return text, self.weight if self.weight is not None else 1.0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def read_loras(path: Path | str) -> list[RegisteredLora]:
    """Every `### LoRA:` entry of studio.md, in file order (the file is schema-checked first)."""
    data = validate_file(path, "studio")
    out = []
    for title, fields in data["sections"].items():
        if not title.startswith(PREFIX):
            continue
        out.append(
            RegisteredLora(
                name=title.removeprefix(PREFIX).strip(),
                file=fields.get("File"),
                type=fields.get("Type"),
                trigger=fields.get("Trigger word"),
                weight=fields.get("Recommended weight"),
                base_model=fields.get("Base model"),
                good_for=fields.get("Good for"),
                training_date=fields.get("Training date"),
                training_params=fields.get("Training params"),
            )
        )
    return out


def find_lora(path: Path | str, name: str) -> RegisteredLora | None:
    return next((lo for lo in read_loras(path) if lo.name == name), None)
