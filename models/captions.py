"""Caption files from timed segments: SRT and WebVTT through pysubs2, and JSON.

Cues are shaped for reading: at most 2 lines of at most 42 characters, at most 7 s a cue, no overlaps,
monotonic times. Model text is untrusted: control characters, markup and override tags are neutralised."""

from __future__ import annotations

import json
import re
import textwrap
import unicodedata
from dataclasses import asdict, dataclass
from typing import Any

import pysubs2

MAX_LINE_CHARS = 42
MAX_LINES = 2
MAX_CUE_S = 7.0
MIN_CUE_S = 0.5


@dataclass(frozen=True)
class TimedText:
    start: float
    end: float
    text: str


_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u200b-\u200f\u202a-\u202e\u2066-\u2069]")
_TAG = re.compile(r"<[^>]{0,200}>")


def clean_text(text: str) -> str:
    """Plain, single-spaced text with no control characters, markup or subtitle override codes."""
    text = unicodedata.normalize("NFC", text)
    text = _CONTROL.sub(" ", text)
    text = _TAG.sub(" ", text)
    text = text.replace("<", "‹").replace(">", "›").replace("{", "(").replace("}", ")").replace("\\", "/")
    text = text.replace("-->", "→")
    return " ".join(text.split())


def _cue_texts(text: str) -> list[str]:
    lines = textwrap.wrap(text, MAX_LINE_CHARS, break_long_words=True, break_on_hyphens=False)
    return ["\n".join(lines[i : i + MAX_LINES]) for i in range(0, len(lines), MAX_LINES)]


def shape_cues(segments: list[TimedText]) -> list[TimedText]:
    """Split segments into readable cues; time is shared by character count, capped at MAX_CUE_S."""
    cues: list[TimedText] = []
    last_end = 0.0
    for seg in sorted(segments, key=lambda s: s.start):
        text = clean_text(seg.text)
        if not text:
            continue
        parts = _cue_texts(text)
        start = max(seg.start, last_end)
        span = max(seg.end - start, MIN_CUE_S * len(parts))
        total = sum(len(p) for p in parts)
        for part in parts:
            length = span * len(part) / total
            end = start + min(length, MAX_CUE_S)
            cues.append(TimedText(round(start, 3), round(end, 3), part))
            start += length
        last_end = cues[-1].end
    return cues


def _ssa(cues: list[TimedText]) -> pysubs2.SSAFile:
    subs = pysubs2.SSAFile()
    for cue in cues:
        event = pysubs2.SSAEvent(start=int(round(cue.start * 1000)), end=int(round(cue.end * 1000)))
        event.plaintext = cue.text
        subs.append(event)
    return subs


def to_srt(segments: list[TimedText]) -> str:
    return _ssa(shape_cues(segments)).to_string("srt")


def to_vtt(segments: list[TimedText]) -> str:
    cues = [TimedText(c.start, c.end, c.text.replace("&", "&amp;")) for c in shape_cues(segments)]
    return _ssa(cues).to_string("vtt")


def to_json(segments: list[TimedText], **fields: Any) -> str:
    body = {**fields, "text": join_text(segments), "segments": [asdict(s) for s in segments]}
    return json.dumps(body, ensure_ascii=False, indent=2)


def join_text(segments: list[TimedText]) -> str:
    return " ".join(s.text.strip() for s in sorted(segments, key=lambda s: s.start) if s.text.strip())
