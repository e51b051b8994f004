"""Caption files from timed segments: SRT and WebVTT through pysubs2, and JSON.

Cues are shaped for reading: at most 2 lines of at most 42 characters, at most 7 s a cue, no overlaps,
monotonic times. Model text is untrusted: control characters, markup and override tags are neutralised."""

from __future__ import annotations

import itertools
import json
import re
import textwrap
import unicodedata
from dataclasses import asdict, dataclass, replace
from typing import Any

import pysubs2

from models.timing import Word

MAX_LINE_CHARS = 42
MAX_LINES = 2
MAX_CUE_S = 7.0
MIN_CUE_S = 0.5


MIN_SHOWN_S = 0.2  # the shortest cue shown, where the words' own times leave no room
MAX_GAP_S = 0.8  # a pause this long between two words ends the cue: no cue spans a silence
SENTENCE_END = (".", "!", "?", "。", "！", "？", "…")


@dataclass(frozen=True)
class TimedText:
    """A segment's text and span, and its words when their times are known (models.timing)."""

    start: float
    end: float
    text: str
    words: tuple[Word, ...] = ()
    speaker: str | None = None  # who says it (a diarized result): VTT voice tags, SRT "Name: " prefixes


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
    """Readable cues: from a segment's words where it has them (each cue a run of words, broken at pauses,
    sentence ends and the size limits, so cues follow speech), else its span shared out by character count."""
    cues: list[TimedText] = []
    last_end = 0.0
    for seg in sorted(segments, key=lambda s: s.start):
        if seg.words:
            cues += _word_cues(seg, last_end)
            last_end = cues[-1].end if cues else last_end
            continue
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
            cues.append(TimedText(round(start, 3), round(end, 3), part, speaker=seg.speaker))
            start += length
        last_end = cues[-1].end
    return cues


def _word_cues(seg: TimedText, last_end: float) -> list[TimedText]:
    groups: list[list[Word]] = []
    for word in seg.words:
        if not clean_text(word.text):
            continue
        group = groups[-1] if groups else None
        if group is None or _ends_cue(group, word):
            groups.append([word])
        else:
            group.append(word)
    _balance(groups)
    cues: list[TimedText] = []
    for index, group in enumerate(groups):
        start = max(group[0].start, last_end)
        following = groups[index + 1][0].start if index + 1 < len(groups) else seg.end
        end = min(max(group[-1].end, start + MIN_CUE_S), max(following, group[-1].end), seg.end)
        end = min(max(end, start + MIN_SHOWN_S), start + MAX_CUE_S)  # never zero-length, never over the limit
        text = "\n".join(textwrap.wrap(clean_text(" ".join(w.text for w in group)), MAX_LINE_CHARS))
        cues.append(TimedText(round(start, 3), round(end, 3), text, tuple(group), group[0].speaker))
        last_end = cues[-1].end
    return cues


MIN_CUE_WORDS = 3


def _balance(groups: list[list[Word]]) -> None:
    """A cue broken off by the size limits keeps at least MIN_CUE_WORDS words, taken from the end of the cue
    before it (a lone last word would start its cue at the tail of the speech, where the estimate is weakest)."""
    for earlier, later in itertools.pairwise(groups):
        if later[0].start - earlier[-1].end > MAX_GAP_S or earlier[-1].text.endswith(SENTENCE_END):
            continue  # a pause or a sentence end made this break: it stays where it is
        while len(later) < MIN_CUE_WORDS and len(earlier) > MIN_CUE_WORDS and _fits([earlier[-1], *later]):
            later.insert(0, earlier.pop())


def _fits(words: list[Word]) -> bool:
    text = clean_text(" ".join(w.text for w in words))
    return words[-1].end - words[0].start <= MAX_CUE_S and len(textwrap.wrap(text, MAX_LINE_CHARS)) <= MAX_LINES


def _ends_cue(group: list[Word], word: Word) -> bool:
    """Whether `word` starts a new cue after `group`: a pause, a sentence end, another speaker, or the limits."""
    if word.start - group[-1].end > MAX_GAP_S or group[-1].text.endswith(SENTENCE_END):
        return True
    if word.speaker != group[-1].speaker:
        return True
    return not _fits([*group, word])


def _ssa(cues: list[TimedText]) -> pysubs2.SSAFile:
    subs = pysubs2.SSAFile()
    for cue in cues:
        event = pysubs2.SSAEvent(start=int(round(cue.start * 1000)), end=int(round(cue.end * 1000)))
        event.plaintext = cue.text
        subs.append(event)
    return subs


def _cues(segments: list[TimedText], shaped: bool) -> list[TimedText]:
    """The cues to write: shaped from the segments, or (a track whose segments are its cues, e.g. a translated
    one) the segments themselves, each line cleaned."""
    if not shaped:
        return shape_cues(segments)
    cleaned = [replace(s, text="\n".join(clean_text(line) for line in s.text.split("\n"))) for s in segments]
    return [c for c in cleaned if c.text.strip()]


def to_srt(segments: list[TimedText], shaped: bool = False) -> str:
    cues = [replace(c, text=f"{clean_text(c.speaker)}: {c.text}") if c.speaker else c for c in _cues(segments, shaped)]
    return _ssa(cues).to_string("srt")


def to_vtt(segments: list[TimedText], shaped: bool = False) -> str:
    cues = []
    for cue in _cues(segments, shaped):
        text = cue.text.replace("&", "&amp;")
        if cue.speaker:  # a voice span: the label escaped like any text
            text = f"<v {clean_text(cue.speaker).replace('&', '&amp;')}>{text}"
        cues.append(TimedText(cue.start, cue.end, text))
    return _ssa(cues).to_string("vtt")


def to_rttm(file_id: str, turns: list[tuple[float, float, str]]) -> str:
    """NIST RTTM: one SPEAKER line per turn (speaker names without spaces, as the format needs)."""

    def token(text: str) -> str:
        return re.sub(r"\s+", "_", clean_text(text)) or "unknown"

    lines = [
        f"SPEAKER {token(file_id)} 1 {start:.3f} {end - start:.3f} <NA> <NA> {token(who)} <NA> <NA>\n"
        for start, end, who in turns
    ]
    return "".join(lines)


def to_json(segments: list[TimedText], **fields: Any) -> str:
    body = {**fields, "text": join_text(segments), "segments": [asdict(s) for s in segments]}  # words as lists
    return json.dumps(body, ensure_ascii=False, indent=2)


def join_text(segments: list[TimedText]) -> str:
    return " ".join(s.text.strip() for s in sorted(segments, key=lambda s: s.start) if s.text.strip())
