"""Speech from different real people, for speaker tests: Festival voices recorded from three speakers (Debian's
festvox-kallpc16k and festvox-kdlpc16k, two US men; festvox-us-slt-hts, a US woman), resampled to 16 kHz and
laid out as a conversation with known turns. (espeak-ng's voices are one synthesiser: a speaker model cannot tell
them apart.)"""

from __future__ import annotations

import random
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

VOICES = {"kal": "kal_diphone", "slt": "cmu_us_slt_arctic_hts", "ked": "ked_diphone"}
SENTENCES = [
    "The flood barrier held through the night.",
    "In the morning the river fell again and the town could breathe.",
    "We walked along the harbour wall before anyone else was awake.",
    "The archive keeps every tape the station ever recorded.",
    "Nobody expected the council to vote for the new bridge.",
    "She said the old mill would be a museum by next summer.",
    "Our reporter spoke to the families who lost their homes.",
    "The train was late, so we waited in the cold for an hour.",
    "Tell me what you remember about the winter of that year.",
    "There were boats in the main street and water in every cellar.",
    "I think the engineers were right to raise the wall.",
    "The children thought it was the best holiday they ever had.",
    "Later that week the sun came out and the fields dried.",
    "Every evening the radio read the names of the villages.",
    "My grandfather built that house with his own hands.",
    "The weather service warned us two days before it came.",
]


@dataclass(frozen=True)
class Said:
    start: float
    end: float
    speaker: str
    text: str


def utterance(workdir: Path, voice: str, text: str) -> np.ndarray:
    """One sentence in one voice: 16 kHz mono float32 with the voice's own leading and trailing silence trimmed."""
    workdir.mkdir(parents=True, exist_ok=True)
    key = f"{voice}-{abs(hash(text)) % 10**8}"
    out = workdir / f"{key}.16k.wav"
    if not out.exists():
        txt, raw = workdir / f"{key}.txt", workdir / f"{key}.raw.wav"
        txt.write_text(text + "\n")
        speak = ["text2wave", "-eval", f"(voice_{VOICES[voice]})", str(txt), "-o", str(raw)]
        subprocess.run(speak, check=True, capture_output=True, timeout=120)
        trim = ["silence", "1", "0.02", "0.5%", "reverse", "silence", "1", "0.02", "0.5%", "reverse"]
        subprocess.run(["sox", str(raw), "-r", "16000", "-c", "1", str(out), *trim], check=True, capture_output=True)
    audio, rate = sf.read(out, dtype="float32")
    assert rate == 16000
    return audio


def conversation(
    path: Path, speakers: list[str], turns: int, seed: int = 7, gaps: tuple[float, float] = (0.3, 2.0)
) -> list[Said]:
    """A conversation of `turns` turns (one to two sentences each, 2-6 s), speakers taking turns in order, gaps of
    0.3-2 s between them, written to `path`; returns who said what when."""
    rng = random.Random(seed)
    pieces: list[np.ndarray] = []
    said: list[Said] = []
    cursor = 0.0
    for turn in range(turns):
        speaker = speakers[turn % len(speakers)]
        sentences = rng.sample(SENTENCES, 2)
        audio = utterance(path.parent / "voices", speaker, sentences[0])
        if len(audio) / 16000 < 2.0:
            second = utterance(path.parent / "voices", speaker, sentences[1])
            audio = np.concatenate([audio, np.zeros(2400, np.float32), second])
            text = " ".join(sentences)
        else:
            text = sentences[0]
        gap = rng.uniform(*gaps) if turn else 0.5
        pieces += [np.zeros(int(gap * 16000), np.float32), audio]
        start = cursor + gap
        cursor = start + len(audio) / 16000
        said.append(Said(round(start, 3), round(cursor, 3), speaker, text))
    pieces.append(np.zeros(8000, np.float32))
    sf.write(path, np.concatenate(pieces), 16000)
    return said


def der(said: list[Said], turns: Sequence[tuple[float, float, object]]) -> float:
    """The diarization error rate of `turns` against who said what when (pyannote.metrics, 0.25 s collar)."""
    from pyannote.core import Annotation, Segment
    from pyannote.metrics.diarization import DiarizationErrorRate

    reference, hypothesis = Annotation(), Annotation()
    for s in said:
        reference[Segment(s.start, s.end)] = s.speaker
    for start, end, who in turns:
        hypothesis[Segment(start, end)] = who
    return float(DiarizationErrorRate(collar=0.25)(reference, hypothesis))
