"""Long media: find pauses, plan segments of bounded length that cut at pauses, check coverage.

`plan_segments` is a pure function of (duration, pauses, limits) so the service can checkpoint per segment
and re-plan identically after a restart."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

import numpy as np

from models.errors import CoverageError
from models.media import SAMPLE_RATE


@dataclass(frozen=True)
class Span:
    """A [start, end) interval in seconds."""

    start: float
    end: float

    @property
    def duration(self) -> float:
        return self.end - self.start


def plan_segments(
    duration_s: float,
    pauses: list[Span],
    max_len_s: float,
    min_len_s: float | None = None,
    open_from_s: float | None = None,
) -> list[Span]:
    """Split [0, duration) into contiguous segments of at most max_len_s, cutting inside pauses.

    Each cut goes at the middle of the latest pause that leaves the segment at least min_len_s long
    (default: half the limit); with no such pause the cut is hard, at the limit.

    A file still being scanned (`duration_s` is how far the scan reached, and a silence may run on from
    `open_from_s`, the end of the last speech heard): only the segments whose cut no later pause can move are
    returned, the same segments a plan of the whole file gives (a pause still open, or any later one, has its
    middle past `(open_from_s + duration_s) / 2`)."""
    if duration_s <= 0:
        return []
    if max_len_s <= 0:
        raise ValueError("max_len_s must be positive")
    min_len = max_len_s / 2 if min_len_s is None else min(min_len_s, max_len_s)
    closed = pauses if open_from_s is None else [p for p in pauses if p.end <= open_from_s]
    cut_points = sorted((p.start + p.end) / 2 for p in closed if 0 < (p.start + p.end) / 2 < duration_s)
    settled_to = duration_s if open_from_s is None else (open_from_s + duration_s) / 2
    segments: list[Span] = []
    start = 0.0
    while settled_to - start > max_len_s:
        limit = start + max_len_s
        candidates = [c for c in cut_points if start + min_len <= c <= limit]
        cut = candidates[-1] if candidates else limit
        segments.append(Span(round(start, 3), round(cut, 3)))
        start = round(cut, 3)
    if open_from_s is None:
        segments.append(Span(start, round(duration_s, 3)))
    return segments


def coverage_gaps(segments: list[Span], duration_s: float, tolerance_s: float = 0.01) -> list[Span]:
    """The parts of [0, duration) no segment covers (empty when coverage is complete)."""
    gaps: list[Span] = []
    cursor = 0.0
    for seg in sorted(segments, key=lambda s: s.start):
        if seg.start - cursor > tolerance_s:
            gaps.append(Span(cursor, seg.start))
        cursor = max(cursor, seg.end)
    if duration_s - cursor > tolerance_s:
        gaps.append(Span(cursor, duration_s))
    return gaps


def check_coverage(segments: list[Span], duration_s: float) -> None:
    gaps = coverage_gaps(segments, duration_s)
    if gaps:
        listed = ", ".join(f"{g.start:.2f}-{g.end:.2f}s" for g in gaps[:5])
        raise CoverageError(f"segments leave {len(gaps)} gap(s) uncovered: {listed}")


_VAD_MODEL = None
_VAD_TIMESTAMPS: Any = None  # silero_vad.sequence_vad.get_speech_timestamps_sequence, imported with the model
_VAD_LOCK = threading.Lock()


def _vad_model() -> Any:
    """silero-vad's sequence model (ONNX, in the wheel), loaded once: one ONNX call per block of frames instead of
    one JIT call per 32 ms frame (25 s of speech: 31 ms against 180 ms here, the same regions)."""
    global _VAD_MODEL, _VAD_TIMESTAMPS
    with _VAD_LOCK:
        if _VAD_MODEL is None:
            import torch

            threads = torch.get_num_threads()
            from silero_vad import load_silero_vad  # its model module calls torch.set_num_threads(1) on import
            from silero_vad.sequence_vad import get_speech_timestamps_sequence

            torch.set_num_threads(threads)  # ... which would leave the thinker and CAM++ on one core for good
            _VAD_MODEL = load_silero_vad(sequence=True)
            _VAD_TIMESTAMPS = get_speech_timestamps_sequence
        return _VAD_MODEL


def speech_regions(audio: np.ndarray, offset_s: float = 0.0, min_pause_s: float = 0.3) -> list[Span]:
    """Speech regions silero-vad finds in 16 kHz mono audio, in seconds (the model keeps no state between calls)."""
    if audio.size < SAMPLE_RATE // 10:
        return []
    model = _vad_model()
    found = _VAD_TIMESTAMPS(
        np.ascontiguousarray(audio, dtype=np.float32),
        model,
        sampling_rate=SAMPLE_RATE,
        return_seconds=True,
        min_silence_duration_ms=int(min_pause_s * 1000),
    )
    return [Span(round(offset_s + float(r["start"]), 3), round(offset_s + float(r["end"]), 3)) for r in found]


class SpeechFinder:
    """Finds speech in a stream of 16 kHz audio chunks, one window at a time, so a long file is never held whole:
    memory stays one window (30 s: 2 MB) however long the file. A region cut by a window edge is joined again."""

    def __init__(self, window_s: float = 30.0, min_pause_s: float = 0.3, offset_s: float = 0.0) -> None:
        self.window = int(window_s * SAMPLE_RATE)
        self.offset_s = offset_s  # media time of the first sample fed
        self.min_pause_s = min_pause_s
        self.regions: list[Span] = []
        self.samples = 0  # fed so far
        self._buffer: list[np.ndarray] = []
        self._buffered = 0

    def feed(self, chunk: np.ndarray) -> bool:
        """Take a chunk; True when it completed a window (the regions grew)."""
        self._buffer.append(chunk)
        self._buffered += chunk.size
        if self._buffered >= self.window:
            self._flush(final=False)
            return True
        return False

    @property
    def heard_to_s(self) -> float:
        """Media time up to which the regions are known."""
        return self.offset_s + self.samples / SAMPLE_RATE

    def finish(self) -> list[Span]:
        self._flush(final=True)
        return self.regions

    def _flush(self, final: bool) -> None:
        if not self._buffer:
            return
        audio = np.concatenate(self._buffer)
        keep = 0 if final else audio.size - self.window * (audio.size // self.window)
        body, rest = (audio, audio[:0]) if keep == 0 else (audio[:-keep], audio[-keep:])
        offset_s = self.offset_s + self.samples / SAMPLE_RATE
        for region in speech_regions(body, offset_s, self.min_pause_s):
            last = self.regions[-1] if self.regions else None
            if last is not None and region.start - last.end < self.min_pause_s:
                self.regions[-1] = Span(last.start, region.end)
            else:
                self.regions.append(region)
        self.samples += body.size
        self._buffer, self._buffered = ([rest], rest.size) if rest.size else ([], 0)


def pauses_between(speech: list[Span], duration_s: float, min_pause_s: float = 0.3, from_s: float = 0.0) -> list[Span]:
    """The silences around and between speech regions, each at least min_pause_s long (from `from_s`: the end of
    speech heard before these regions)."""
    pauses: list[Span] = []
    cursor = from_s
    for region in speech:
        if region.start - cursor >= min_pause_s:
            pauses.append(Span(cursor, region.start))
        cursor = max(cursor, region.end)
    if duration_s - cursor >= min_pause_s:
        pauses.append(Span(cursor, duration_s))
    return pauses


def find_pauses(audio: np.ndarray, min_pause_s: float = 0.3) -> list[Span]:
    """Pauses between speech regions found by silero-vad in a whole 16 kHz track."""
    return pauses_between(speech_regions(audio, 0.0, min_pause_s), len(audio) / SAMPLE_RATE, min_pause_s)
