"""The three published Qwen3-Omni variants and what each can do."""

from __future__ import annotations

import enum


class Variant(str, enum.Enum):
    """A Qwen3-Omni checkpoint family."""

    INSTRUCT = "instruct"  # thinker + talker: text and speech out
    THINKING = "thinking"  # thinker only, reasons inside <think>...</think>
    CAPTIONER = "captioner"  # thinker only, audio in, no text prompt

    @property
    def can_speak(self) -> bool:
        return self is Variant.INSTRUCT
