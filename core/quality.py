"""Quality checks a person can act on, over the cues a viewer sees (models.captions.shape_cues): reading speed over
20 characters a second, lines over 42 characters or more than two lines, cues shorter than 0.7 s or longer than
7 s, cues overlapping the one before, and cues outside speech (where the plan heard none). The engine gives no word
confidence (neither backend returns token probabilities here), so no low-confidence check runs."""

from __future__ import annotations

from typing import Any

from models.captions import MAX_CUE_S, MAX_LINE_CHARS, MAX_LINES, TimedText

MAX_CPS = 20.0
MIN_CUE_S = 0.7
CHECKS = ("reading_speed", "line_length", "too_many_lines", "too_short", "too_long", "overlap", "outside_speech")


def _speech_share(cue: TimedText, pauses: list[tuple[float, float]]) -> float:
    span = cue.end - cue.start
    if span <= 0:
        return 0.0
    silent = sum(max(0.0, min(cue.end, b) - max(cue.start, a)) for a, b in pauses)
    return 1.0 - silent / span


def check_cues(cues: list[TimedText], pauses: list[tuple[float, float]] | None = None) -> list[dict[str, Any]]:
    """Every finding, as {cue, check, detail}; `pauses`: where the plan heard no speech (None: not known)."""
    found: list[dict[str, Any]] = []

    def note(index: int, check: str, detail: str) -> None:
        found.append({"cue": index, "check": check, "detail": detail})

    for index, cue in enumerate(cues):
        span = cue.end - cue.start
        lines = cue.text.split("\n")
        chars = len(" ".join(lines))
        if span > 0 and chars / span > MAX_CPS:
            note(index, "reading_speed", f"{chars / span:.0f} characters a second (over {MAX_CPS:.0f})")
        if any(len(line) > MAX_LINE_CHARS for line in lines):
            note(index, "line_length", f"a line of {max(len(line) for line in lines)} characters (over 42)")
        if len(lines) > MAX_LINES:
            note(index, "too_many_lines", f"{len(lines)} lines (over {MAX_LINES})")
        if span < MIN_CUE_S:
            note(index, "too_short", f"{span:.2f} s on screen (under {MIN_CUE_S} s)")
        if span > MAX_CUE_S:
            note(index, "too_long", f"{span:.1f} s on screen (over {MAX_CUE_S:.0f} s)")
        if index and cue.start < cues[index - 1].end - 0.001:
            note(index, "overlap", f"starts {cues[index - 1].end - cue.start:.2f} s before the previous cue ends")
        if pauses is not None and _speech_share(cue, pauses) < 0.1:
            note(index, "outside_speech", "no speech was heard during this cue")
    return found


def counts(findings: list[dict[str, Any]]) -> dict[str, int]:
    """Findings by check (every check named, zero where none)."""
    tally = dict.fromkeys(CHECKS, 0)
    for finding in findings:
        tally[finding["check"]] += 1
    return tally
