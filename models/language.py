"""The language a text is written in, for transcripts whose language was not asked: py3langid (langid.py's model,
97 languages, shipped inside its wheel; loaded on first use, ~0.6 s)."""

from __future__ import annotations

import threading
from typing import Any

MIN_LETTERS = 8  # below this a guess is noise
_lock = threading.Lock()
_identifier: Any = None


def detect_language(text: str) -> str | None:
    """ISO 639-1 code of the text's language, or None when there is too little text to tell."""
    if sum(ch.isalpha() for ch in text) < MIN_LETTERS:
        return None
    global _identifier
    with _lock:
        if _identifier is None:
            from py3langid.langid import MODEL_FILE, LanguageIdentifier

            _identifier = LanguageIdentifier.from_model_file(MODEL_FILE)
        code, _ = _identifier.classify(text)
    return str(code)
