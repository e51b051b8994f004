"""Word timestamps with Qwen3-ForcedAligner (transformers: Qwen3ASRForTokenClassification + Qwen3ASRProcessor).

The aligner is a non-autoregressive classifier: one forward pass over the audio and the transcript's words, each
word followed by two <timestamp> tokens whose class (x 80 ms) is its start and end. It covers 11 languages and
about 300 s of audio per call; other languages, longer audio, and Japanese or Korean without their word splitters
get no alignment (None), and the caller estimates word times from speech instead (models.timing).

It runs in the job worker, loaded once beside the thinker, on the segment audio already decoded for the thinker:
no second fetch, decode or queue hop per segment, and 0.6B parameters next to 30B."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from models.decoding import SAMPLE_RATE

MAX_ALIGN_S = 300.0  # the aligner's validated window per call


@dataclass(frozen=True)
class Alignment:
    """The aligner's (start, end) per aligner word, relative to the audio, and how many aligner words each
    whitespace token of the transcript became."""

    times: list[tuple[float, float]]
    counts: list[int]
    seconds: float  # time the forward pass took


class ForcedAligner:
    """Loaded lazily, once, under a lock; `align` is safe to call from several threads (one pass at a time)."""

    def __init__(self, model: str, device: str = "auto") -> None:
        self.model_path = model
        self.device = device
        self._lock = threading.Lock()
        self._model: Any = None
        self._processor: Any = None

    def load(self) -> None:
        with self._lock:
            if self._model is not None:
                return
            import torch
            from transformers import Qwen3ASRForTokenClassification, Qwen3ASRProcessor

            device = self.device
            if device == "auto":
                device = "cuda" if torch.cuda.is_available() else "cpu"
            dtype = torch.bfloat16 if device.startswith("cuda") else torch.float32
            model = Qwen3ASRForTokenClassification.from_pretrained(self.model_path, dtype=dtype)
            self._processor = Qwen3ASRProcessor.from_pretrained(self.model_path)
            self._model = model.to(device).eval()

    def language(self, language: str | None) -> str | bool | None:
        """The language name the aligner takes, None when unknown (it aligns by the default word split), or False
        when it does not cover the language."""
        if language is None:
            return None
        from transformers.models.qwen3_asr.processing_qwen3_asr import (
            FORCED_ALIGNER_LANGUAGES,
            LANGUAGE_CODE_TO_NAME,
        )

        name = LANGUAGE_CODE_TO_NAME.get(language.lower(), language.strip().title())
        return name if name in FORCED_ALIGNER_LANGUAGES else False

    def align(self, audio: np.ndarray, text: str, language: str | None = None) -> Alignment | None:
        """Word times for `text` spoken in `audio` (16 kHz mono), or None where the aligner cannot help."""
        name = self.language(language)
        words = text.split()
        if name is False or not words or audio.size / SAMPLE_RATE > MAX_ALIGN_S:
            return None
        self.load()
        import torch

        processor = self._processor
        try:
            counts = [len(processor.split_words_for_alignment(word, name)) for word in words]
            inputs, word_lists = processor.prepare_forced_aligner_inputs(audio, text, language=name)
        except ImportError:  # Japanese and Korean need word splitters that are not installed
            return None
        if sum(counts) != len(word_lists[0]) or not word_lists[0]:
            return None
        started = time.perf_counter()
        with self._lock, torch.inference_mode():
            model = self._model
            batch = {k: v.to(model.device) for k, v in inputs.items() if k in _MODEL_INPUTS}
            logits = model(**batch).logits
        spent = time.perf_counter() - started
        decoded = processor.decode_forced_alignment(
            logits, inputs["input_ids"], word_lists, model.config.timestamp_token_id
        )[0]
        return Alignment([(w["start_time"], w["end_time"]) for w in decoded], counts, spent)


_MODEL_INPUTS = ("input_ids", "attention_mask", "input_features", "input_features_mask")
