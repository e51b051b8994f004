"""Cues built honestly from words, whatever the alignment: no cue is zero-length, none lies wholly in silence,
none runs past the 7 s limit, and a speaker change starts a new cue. Implausible aligned word times (collapsed
onto an instant, zero-length, stretched over a pause) fall back to the speech-bounded estimate for that stretch."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest

from models.aligner import Alignment
from models.captions import MAX_CUE_S, TimedText, shape_cues, to_vtt
from models.chunking import Span
from models.timing import Word, estimated_words, segment_words

SPEECH = [Span(40.0, 41.6), Span(42.5, 44.0), Span(45.5, 47.9)]
SEGMENT = Span(40.0, 48.0)
TEXT = "the flood barrier held through the night and in the morning the river fell again slowly"


class FakeAligner:
    """An aligner that answers with the given times (relative to the segment), one per word."""

    def __init__(self, times: list[tuple[float, float]]) -> None:
        self.times = times

    def align(self, audio: np.ndarray, text: str, language: str | None = None) -> Alignment:
        return Alignment(self.times, [1] * len(text.split()), 0.0)


def _in_speech(start: float, end: float) -> bool:
    return any(min(end, r.end) - max(start, r.start) > 0 for r in SPEECH)


def _check(words: list[Word]) -> None:
    cues = shape_cues([TimedText(SEGMENT.start, SEGMENT.end, TEXT, tuple(words))])
    assert cues, "the words make cues"
    assert all(c.end > c.start for c in cues), [(c.start, c.end) for c in cues]
    assert all(_in_speech(c.start, c.end) for c in cues), "no cue lies wholly in silence"
    assert all(c.end - c.start <= MAX_CUE_S + 1e-6 for c in cues)
    assert all(a.end <= b.start + 1e-6 for a, b in itertools.pairwise(cues))


@pytest.mark.parametrize(
    "times",
    [
        [(1.2, 1.2)] * 16,  # every word collapsed onto one instant (what the tiny aligner did)
        [(0.1 * i, 0.1 * i) for i in range(16)],  # zero-length words
        [(0.0, 7.9)] + [(7.9, 7.9)] * 15,  # one word stretched over everything, the rest at the end
        [(w.start - 40.0, w.end - 40.0) for w in estimated_words(TEXT, SPEECH, SEGMENT)],  # plausible: kept
    ],
)
def test_cues_are_honest_whatever_the_alignment(times: list[tuple[float, float]]) -> None:
    audio = np.zeros(int(8 * 16000), dtype=np.float32)
    words, timing = segment_words(TEXT, audio, SEGMENT, SPEECH, FakeAligner(times))  # type: ignore[arg-type]
    assert len(words) == len(TEXT.split()) and all(w.end > w.start for w in words)
    assert all(_in_speech(w.start, w.end) for w in words)
    _check(words)
    estimate = estimated_words(TEXT, SPEECH, SEGMENT)
    if times == [(w.start - 40.0, w.end - 40.0) for w in estimate]:
        assert timing == "aligner" and [(w.start, w.end) for w in words] == [(w.start, w.end) for w in estimate]
    if len(set(times)) == 1:
        assert timing == "speech", "nothing of a collapsed alignment is kept"


def test_a_long_word_never_makes_a_cue_over_the_limit() -> None:
    cues = shape_cues([TimedText(0.0, 20.0, "Hmmmmmm", (Word(0.5, 19.5, "Hmmmmmm"),))])
    assert len(cues) == 1 and cues[0].end - cues[0].start <= MAX_CUE_S


def test_a_speaker_change_inside_one_segment_starts_a_new_cue() -> None:
    words = (
        Word(0.0, 0.4, "Hello", "Ann"),
        Word(0.5, 0.9, "there", "Ann"),
        Word(1.0, 1.4, "Hi", "Karl"),
        Word(1.5, 1.9, "Ann", "Karl"),
    )
    cues = shape_cues([TimedText(0.0, 2.0, "Hello there Hi Ann", words)])
    assert [(c.text, c.speaker) for c in cues] == [("Hello there", "Ann"), ("Hi Ann", "Karl")]
    vtt = to_vtt([TimedText(0.0, 2.0, "x", (Word(0.0, 0.5, "<b>hi</b>", "A <script>&"),))])
    assert "<v A &amp;>hi" in vtt and "script" not in vtt and "<b>" not in vtt, vtt


def test_the_forced_aligners_input_is_the_raw_prompt_not_a_chat_turn(tiny_aligner: Path) -> None:
    """Wrapping the aligner's input in chat turns shifted every word one 80 ms bin late in another project: the
    prompt must be <|audio_start|> audio pads <|audio_end|> then each word and its two timestamps, nothing else."""
    from transformers import Qwen3ASRProcessor

    processor = Qwen3ASRProcessor.from_pretrained(tiny_aligner)
    inputs, _ = processor.prepare_forced_aligner_inputs(np.zeros(16000, np.float32), "hello world", language=None)
    text = processor.tokenizer.decode(inputs["input_ids"][0])
    assert text.startswith("<|audio_start|>") and "<|im_start|>" not in text and "assistant" not in text
    assert text.replace("<|audio_pad|>", "").startswith("<|audio_start|><|audio_end|>hello<timestamp><timestamp>")
