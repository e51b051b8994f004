"""The three published Qwen3-Omni variants and what each can do."""

from __future__ import annotations

import enum
import json
from pathlib import Path
from typing import Any


class Variant(str, enum.Enum):
    """A Qwen3-Omni checkpoint family."""

    INSTRUCT = "instruct"  # thinker + talker: text and speech out
    THINKING = "thinking"  # thinker only, reasons inside <think>...</think>
    CAPTIONER = "captioner"  # thinker only, audio in, no text prompt

    @property
    def can_speak(self) -> bool:
        return self is Variant.INSTRUCT


def detect_variant(model: str) -> Variant:
    """Instruct, Thinking or Captioner, read from the checkpoint (config, then name, then chat template)."""
    path = Path(model)
    config: dict[str, Any] = {}
    template = ""
    if path.is_dir():
        if (path / "config.json").is_file():
            config = json.loads((path / "config.json").read_text())
        for name in ("chat_template.jinja", "chat_template.json"):
            if (path / name).is_file():
                template = (path / name).read_text()
    if config.get("omnimedia_variant"):
        return Variant(config["omnimedia_variant"])
    name = model.lower()
    if "captioner" in name:
        return Variant.CAPTIONER
    if "thinking" in name or "<think>" in template:
        return Variant.THINKING
    if config and not config.get("enable_audio_output", True):
        return Variant.THINKING
    return Variant.INSTRUCT
