"""Audio description for video (WCAG 2.1 success criterion 1.2.5): the pauses in speech long enough to describe
what is on screen, a description of each sized to fit its pause at a natural speaking rate, the narration placed
inside its pause (never over speech, never sped up past MAX_SPEEDUP), and the programme's audio ducked under it.
Extended description (pausing the programme to make room) is out of scope."""

from __future__ import annotations

from dataclasses import dataclass, replace
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from models.chunking import Span
from models.engine import Engine, GenerationRequest
from models.media import SAMPLE_RATE, DecodedMedia
from models.tasks import TaskParams, TaskSpec

SPEAKING_RATE_WPS = 2.5  # words a second a describer speaks at, unhurried
MIN_GAP_S = 1.5  # the shortest pause a description goes in (configurable per job)
MARGIN_S = 0.2  # kept clear of the speech on each side of a pause
MAX_SPEEDUP = 1.15  # a narration a little long may be played this much faster, never more
DUCK_GAIN = 0.3  # the programme's audio under narration (about -10 dB)
RAMP_S = 0.15  # fades into and out of ducking
OUTPUT_RATE = 24_000  # the talker's rate: the description track's


@dataclass(frozen=True)
class Description:
    """One description cue: its span (inside a pause) and what it says."""

    start: float
    end: float
    text: str
    spoken_s: float | None = None  # how long its narration plays (from `start`), when it was voiced


def description_gaps(
    start_s: float, end_s: float, speech: list[Span], words: list[Span], min_gap_s: float = MIN_GAP_S
) -> list[Span]:
    """The pauses of [start, end) long enough for a description: clear of every speech region and spoken word (with
    a margin each side), at least `min_gap_s` long."""
    busy = sorted([*speech, *words], key=lambda s: s.start)
    gaps: list[Span] = []
    cursor = start_s
    for span in busy:
        if span.start - MARGIN_S > cursor + (MARGIN_S if cursor > start_s else 0.0):
            gaps.append(Span(cursor + (MARGIN_S if cursor > start_s else 0.0), span.start - MARGIN_S))
        cursor = max(cursor, span.end)
    tail_start = cursor + (MARGIN_S if cursor > start_s else 0.0)
    if end_s > tail_start:
        gaps.append(Span(tail_start, end_s))
    return [Span(round(g.start, 3), round(g.end, 3)) for g in gaps if g.end - g.start >= min_gap_s]


def word_budget(gap: Span) -> int:
    """The most words a description of this pause may have."""
    return max(2, int((gap.end - gap.start) * SPEAKING_RATE_WPS))


def description_prompt(budget: int) -> str:
    return (
        f"Describe what is on screen for a viewer who cannot see it, in at most {budget} words: who is there, "
        "what they do, and any text shown. Do not describe the speech or the sounds. One plain sentence."
    )


def fit_words(text: str, budget: int) -> str:
    """The description cut to its word budget (the model may say more than asked)."""
    words = text.split()
    return " ".join(words[:budget]) + ("…" if len(words) > budget else "")


def fitted(clip: np.ndarray, gap: Span) -> np.ndarray | None:
    """The narration to place in `gap`: as it is when it fits, a little faster (up to MAX_SPEEDUP) when it nearly
    fits, None when it does not (the caller asks for fewer words)."""
    room = int((gap.end - gap.start) * OUTPUT_RATE)
    if clip.size <= room:
        return clip
    if clip.size > room * MAX_SPEEDUP:
        return None
    positions = np.linspace(0, clip.size - 1, room)
    return np.interp(positions, np.arange(clip.size), clip).astype(np.float32)


def description_track(duration_s: float, placed: list[tuple[float, np.ndarray]], offset_s: float = 0.0) -> np.ndarray:
    """A 24 kHz track as long as the programme (or a segment of it from `offset_s`), each narration at its time."""
    track = np.zeros(int(round(duration_s * OUTPUT_RATE)), dtype=np.float32)
    for at, clip in placed:
        start = int(round((at - offset_s) * OUTPUT_RATE))
        end = min(track.size, start + clip.size)
        if 0 <= start < end:
            track[start:end] = clip[: end - start]
    return track


def ducked_mix(programme: np.ndarray, narration: np.ndarray) -> np.ndarray:
    """The programme's audio (mono, 24 kHz) lowered to DUCK_GAIN wherever the narration speaks (with short ramps),
    and the narration over it."""
    length = max(programme.size, narration.size)
    base = np.zeros(length, dtype=np.float32)
    base[: programme.size] = programme
    voice = np.zeros(length, dtype=np.float32)
    voice[: narration.size] = narration
    ramp = max(1, int(RAMP_S * OUTPUT_RATE))
    loud = (np.abs(voice) > 1e-4).astype(np.float32)
    near = (np.convolve(loud, np.ones(ramp * 2 + 1, dtype=np.float32), mode="same") > 0).astype(np.float32)
    gain = 1.0 - (1.0 - DUCK_GAIN) * np.convolve(near, np.ones(ramp, dtype=np.float32) / ramp, mode="same")
    return np.clip(base * gain + voice, -1.0, 1.0).astype(np.float32)


def remux_with_description(source: Path, mixed: np.ndarray, out: Path, language: str = "eng") -> None:
    """A copy of the programme with the mixed description audio as one more audio stream: every stream of the
    source copied packet for packet (the video is not re-encoded), the new stream AAC, titled as a description."""
    with av.open(str(source)) as src, av.open(str(out), "w", format="mp4") as dst:
        copies = {s.index: dst.add_stream_from_template(s) for s in src.streams if s.type in ("video", "audio")}
        described = dst.add_stream("aac", rate=OUTPUT_RATE)
        described.layout = "mono"
        described.metadata["title"] = described.metadata["handler_name"] = "Audio description"
        described.metadata["language"] = language
        for packet in src.demux(*[s for s in src.streams if s.index in copies]):
            if packet.dts is None:
                continue
            packet.stream = copies[packet.stream.index]
            dst.mux(packet)
        frame_size = 1024
        for start in range(0, mixed.size, frame_size):
            chunk = mixed[start : start + frame_size]
            frame = av.AudioFrame.from_ndarray(chunk.reshape(1, -1), format="flt", layout="mono")
            frame.sample_rate = OUTPUT_RATE
            frame.pts = start
            frame.time_base = Fraction(1, OUTPUT_RATE)
            for packet in described.encode(frame):
                dst.mux(packet)
        for packet in described.encode(None):
            dst.mux(packet)


def _around(media: DecodedMedia, gap: Span) -> DecodedMedia:
    """The part of a decoded segment a description of `gap` looks at: its frames from a second before to a second
    after (an even count, at least two), with the programme's audio over the same time as context."""
    lo_s, hi_s = max(media.start_s, gap.start - 1.0), min(media.end_s, gap.end + 1.0)
    frames = media.frames
    if frames is not None:
        first = max(0, int((lo_s - media.start_s) * media.fps))
        last = min(len(frames), max(first + 2, int(np.ceil((hi_s - media.start_s) * media.fps))))
        first = max(0, min(first, last - 2))
        frames = frames[first : first + (last - first) // 2 * 2]
    audio = media.audio
    if audio is not None:
        audio = audio[int((lo_s - media.start_s) * SAMPLE_RATE) : int((hi_s - media.start_s) * SAMPLE_RATE)]
    return replace(media, frames=frames, audio=audio, start_s=lo_s, end_s=hi_s, warnings=[])


def describe_pauses(
    engine: Engine, spec: TaskSpec, params: TaskParams, media: DecodedMedia, gaps: list[Span]
) -> tuple[list[Description], list[tuple[float, np.ndarray]], list[str]]:
    """A description of each pause, sized to fit it; with a voice, its narration fitted into the pause (asked again
    for fewer words when it does not fit, at most twice, then left unspoken). Returns the cues, the placed
    narrations and warnings."""
    found: list[Description] = []
    placed: list[tuple[float, np.ndarray]] = []
    warnings: list[str] = []
    for gap in gaps:
        budget = word_budget(gap)
        for _attempt in range(3):
            asked = params.model_copy(update={"prompt": description_prompt(budget), "max_new_tokens": budget * 4})
            result = engine.generate(GenerationRequest(spec, asked, _around(media, gap)))
            text = fit_words(result.text.strip() or "…", budget)
            clip = None if result.audio is None else fitted(np.asarray(result.audio, dtype=np.float32), gap)
            if result.audio is None or clip is not None:
                break
            budget = max(1, int(budget * 0.6))
        spoken = round(clip.size / OUTPUT_RATE, 3) if clip is not None else None
        found.append(Description(gap.start, gap.end, text, spoken))
        if clip is not None:
            placed.append((gap.start, clip))
        elif result.audio is not None:
            warnings.append(f"the narration at {gap.start:.1f} s did not fit its pause and is left unspoken")
    return found, placed, warnings
