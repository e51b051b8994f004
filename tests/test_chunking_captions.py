"""Long media planning (pure planner + silero-vad on real speech) and caption file shaping."""

from __future__ import annotations

import itertools
import re
from pathlib import Path

import pysubs2
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from models.captions import MAX_CUE_S, MAX_LINE_CHARS, TimedText, clean_text, to_json, to_srt, to_vtt
from models.chunking import Span, check_coverage, coverage_gaps, plan_segments
from models.errors import CoverageError, MediaError
from models.media import MediaLimits, probe
from models.segments import plan_file
from tests.support import ffmpeg, speech

MAX_SEG = 60.0


@pytest.fixture(scope="module")
def twenty_minutes(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """20 minutes of espeak-ng sentences separated by pauses (one 30 s block looped 40 times)."""
    root = tmp_path_factory.mktemp("long")
    parts = []
    sentences = [
        "The archive holds many hours of recorded speech.",
        "Each file is split into segments at natural pauses.",
        "A segment is never longer than the configured limit.",
        "Coverage of the whole recording is checked at the end.",
    ]
    for i, sentence in enumerate(sentences):
        parts.append(speech(root / f"s{i}.wav", sentence, seconds_pause=1.2 + 0.4 * i))
    block = root / "block.wav"
    inputs = [arg for p in parts for arg in ("-i", str(p))]
    ffmpeg(*inputs, "-filter_complex", f"concat=n={len(parts)}:v=0:a=1", str(block))
    out = root / "twenty.flac"
    block_s = probe(block).duration_s
    ffmpeg("-stream_loop", str(int(1200 / block_s) + 1), "-i", str(block), "-t", "1200", str(out))
    return out


def test_plan_cuts_at_pauses_and_covers_20_minutes(twenty_minutes: Path) -> None:
    info = probe(twenty_minutes)
    assert abs(info.duration_s - 1200) < 1
    planned = plan_file(twenty_minutes, info, MAX_SEG, MediaLimits())
    assert planned.decoded and abs(planned.duration_s - info.duration_s) < 0.1
    plan = planned.segments(MAX_SEG)
    assert len(plan) >= 20
    assert all(s.duration <= MAX_SEG + 1e-6 for s in plan)
    assert plan[0].start == 0 and abs(plan[-1].end - info.duration_s) < 0.01
    assert coverage_gaps(plan, info.duration_s) == []
    hard_cuts = sum(1 for s in plan[:-1] if abs(s.duration - MAX_SEG) < 1e-6)
    assert hard_cuts <= len(plan) // 5, "most cuts should land in pauses, not at the hard limit"


def test_planning_decode_obeys_the_configured_timeout(twenty_minutes: Path) -> None:
    """The whole-track decode for pause finding used to run with a fixed 120 s timeout, ignoring the setting."""
    info = probe(twenty_minutes)
    with pytest.raises(MediaError, match="took longer than"):
        plan_file(twenty_minutes, info, MAX_SEG, MediaLimits(timeout_s=0.01))


@given(
    duration=st.floats(1, 10_000),
    max_len=st.floats(5, 900),
    pauses=st.lists(st.tuples(st.floats(0, 10_000), st.floats(0.1, 5)), max_size=50),
)
@settings(max_examples=200, deadline=None)
def test_planner_properties(duration: float, max_len: float, pauses: list[tuple[float, float]]) -> None:
    spans = [Span(start, start + width) for start, width in pauses]
    plan = plan_segments(duration, spans, max_len)
    assert all(s.duration <= max_len + 1e-3 for s in plan)
    assert all(a.end == b.start for a, b in itertools.pairwise(plan))
    check_coverage(plan, duration)


def test_gaps_are_reported_not_dropped() -> None:
    with pytest.raises(CoverageError, match=r"10\.00-12\.00s"):
        check_coverage([Span(0, 10), Span(12, 20)], 20)


def _check_shape(subs: pysubs2.SSAFile) -> None:
    last_end = 0
    for event in subs:
        lines = event.plaintext.split("\n")
        assert len(lines) <= 2 and all(len(line) <= MAX_LINE_CHARS for line in lines)
        assert event.end - event.start <= MAX_CUE_S * 1000 + 1
        assert event.start >= last_end and event.end > event.start
        last_end = event.end


SEGMENTS = [
    TimedText(0.0, 30.0, "word " * 80),
    TimedText(29.0, 45.0, "An overlapping segment whose start precedes the previous end."),
    TimedText(50.0, 51.0, "<script>alert(1)</script> {\\an8}tags & <b>bold</b> --> arrow\x07"),
]


def test_srt_and_vtt_parse_back_and_obey_shaping() -> None:
    for text, fmt in ((to_srt(SEGMENTS), "srt"), (to_vtt(SEGMENTS), "vtt")):
        subs = pysubs2.SSAFile.from_string(text, format_=fmt)
        assert len(subs) >= 4
        _check_shape(subs)
    vtt = to_vtt(SEGMENTS)
    assert vtt.startswith("WEBVTT")
    assert not re.search(r"<(script|b)>", vtt) and "{\\an8}" not in vtt and "\x07" not in vtt
    assert "&amp;" in vtt


def test_clean_text_neutralises_markup() -> None:
    assert clean_text("<i>hi</i> {x} a\\Nb") == "hi (x) a/Nb"


def test_json_has_segments() -> None:
    import json

    body = json.loads(to_json(SEGMENTS[:2], task="transcribe"))
    assert body["task"] == "transcribe" and len(body["segments"]) == 2 and body["text"].startswith("word")


def test_finding_speech_leaves_torch_its_threads() -> None:
    """silero-vad's model module calls torch.set_num_threads(1) when imported: the engine and the speaker model
    would run on one core for the rest of the process."""
    import subprocess
    import sys

    script = (
        "import torch, numpy as np; torch.set_num_threads(2); from models.chunking import speech_regions; "
        "speech_regions(np.zeros(16000, np.float32)); print(torch.get_num_threads())"
    )
    from tests.support import REPO

    done = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.stdout.strip() == "2", done.stderr[-2000:]
