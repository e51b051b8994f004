"""When each word of a transcript was said, within one segment.

Two sources: the forced aligner's word times (models.aligner), or, without one, an estimate that shares the
segment's text out over its speech time by character count. Either way the speech regions silero-vad found bound
every word: no word starts in a silence, none runs past the audio, and times never go backwards. A real aligner's
words already lie in speech; the clamp matters for a bad alignment (and for the tiny random aligner of the tests).

Words are the transcript's own whitespace tokens, punctuation kept, so cues read as the model wrote them."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from models.aligner import ForcedAligner
from models.chunking import Span


@dataclass(frozen=True)
class Word:
    start: float
    end: float
    text: str
    speaker: str | None = None  # who said it, once the file is diarized (models.speakers)

    def as_json(self) -> dict[str, float | str]:
        found: dict[str, float | str] = {"start": self.start, "end": self.end, "word": self.text}
        if self.speaker is not None:
            found["speaker"] = self.speaker
        return found


def tokens(text: str) -> list[str]:
    """The transcript's whitespace tokens (a word with its punctuation)."""
    return text.split()


def estimated_words(text: str, speech: list[Span], span: Span) -> list[Word]:
    """Words shared out over the speech time of `span` by character count (the whole span when no speech was
    found: music, or a model that heard words where silero-vad heard none)."""
    words = tokens(text)
    regions = _within(speech, span) or [span]
    if not words:
        return []
    total = sum(r.duration for r in regions)
    chars = sum(len(w) for w in words)
    result: list[Word] = []
    spoken = 0.0  # seconds of speech time used so far
    for word in words:
        share = total * len(word) / chars
        start = _at(regions, spoken)
        end = min(_at(regions, spoken + share, end=True), _region_end(start, regions))  # a word never spans a pause
        result.append(Word(round(start, 3), round(max(end, start), 3), word))
        spoken += share
    return result


def placed_words(
    aligned: list[tuple[float, float]], text: str, speech: list[Span], span: Span, counts: list[int]
) -> list[Word]:
    """Display words from the aligner's times: `aligned` holds (start, end) per aligner word relative to the
    segment, `counts` how many aligner words each whitespace token of `text` became (0 for bare punctuation,
    which takes its neighbour's time). Times are made monotonic and moved into speech within the segment."""
    words = tokens(text)
    regions = _within(speech, span) or [span]
    placed: list[Word] = []
    cursor = 0
    floor = span.start
    for word, count in zip(words, counts, strict=True):
        if count == 0:
            start = end = placed[-1].end if placed else floor
        else:
            pieces = aligned[cursor : cursor + count]
            cursor += count
            start = span.start + min(p[0] for p in pieces)
            end = span.start + max(p[1] for p in pieces)
        start = _into_speech(max(start, floor), regions)
        end = min(max(end, start), _region_end(start, regions))
        placed.append(Word(round(start, 3), round(end, 3), word))
        floor = end
    return placed


def _within(speech: list[Span], span: Span) -> list[Span]:
    """The speech regions clipped to the span."""
    clipped = [Span(max(r.start, span.start), min(r.end, span.end)) for r in speech]
    return [r for r in clipped if r.duration > 0]


def _at(regions: list[Span], spoken_s: float, end: bool = False) -> float:
    """The wall time at which `spoken_s` seconds of speech time have passed (an end time stays in its region)."""
    for region in regions:
        if spoken_s < region.duration or (end and spoken_s <= region.duration + 1e-9):
            return region.start + spoken_s
        spoken_s -= region.duration
    return regions[-1].end


def _into_speech(moment: float, regions: list[Span]) -> float:
    """The moment itself if it is inside speech, else the start of the next speech region (or the end of the last
    one, when none follows)."""
    for region in regions:
        if moment < region.start:
            return region.start
        if moment <= region.end:
            return moment
    return regions[-1].end


def _region_end(moment: float, regions: list[Span]) -> float:
    for region in regions:
        if region.start <= moment <= region.end:
            return region.end
    return regions[-1].end


def speech_in(pauses: list[Span], span: Span) -> list[Span]:
    """The speech regions of `span` given the file's pauses (the complement of the pauses, clipped to the span)."""
    regions: list[Span] = []
    cursor = span.start
    for pause in sorted(pauses, key=lambda p: p.start):
        if pause.end <= cursor or pause.start >= span.end:
            continue
        if pause.start > cursor:
            regions.append(Span(cursor, pause.start))
        cursor = max(cursor, pause.end)
    if cursor < span.end:
        regions.append(Span(cursor, span.end))
    return regions


def segment_words(
    text: str,
    audio: np.ndarray | None,
    span: Span,
    speech: list[Span],
    aligner: ForcedAligner | None = None,
    language: str | None = None,
) -> tuple[list[Word], str]:
    """The segment's words and where their times come from: "aligner", or "speech" (shared over speech time)."""
    if aligner is not None and audio is not None:
        found = aligner.align(audio, text, language)
        if found is not None:
            placed = placed_words(found.times, text, speech, span, found.counts)
            repaired = repair_implausible(placed, speech, span)
            if repaired is not None:
                return repaired, "aligner"
    return estimated_words(text, speech, span), "speech"


MIN_WORD_S = 0.02  # a word shorter than this was collapsed onto an instant
MAX_WORD_S = 3.0  # a word longer than this was stretched over a pause or over other words


def _implausible(word: Word, regions: list[Span]) -> bool:
    length = word.end - word.start
    inside = any(min(word.end, r.end) - max(word.start, r.start) > 0 for r in regions)
    return length < MIN_WORD_S or length > MAX_WORD_S or not inside


def repair_implausible(words: list[Word], speech: list[Span], span: Span) -> list[Word] | None:
    """Aligned words whose times are not plausible (zero length, collapsed onto one instant, stretched, outside
    speech) get the speech-bounded estimate for their stretch, between the plausible words around them. None when
    no word's time is plausible, or the repair is not (the caller then estimates the whole segment)."""
    regions = _within(speech, span) or [span]
    bad = [_implausible(w, regions) for w in words]
    if not any(bad):
        return words
    if all(bad):  # nothing of the alignment to keep
        return None
    fixed = list(words)
    index = 0
    while index < len(words):
        if not bad[index]:
            index += 1
            continue
        stop = index
        while stop < len(words) and bad[stop]:
            stop += 1
        low = fixed[index - 1].end if index else span.start
        high = words[stop].start if stop < len(words) else span.end
        estimate = estimated_words(" ".join(w.text for w in words[index:stop]), speech, Span(low, max(high, low)))
        if len(estimate) != stop - index:
            return None
        fixed[index:stop] = estimate
        index = stop
    return None if any(_implausible(w, regions) for w in fixed) else fixed
