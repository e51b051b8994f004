"""ffmpeg decoding: media kind by probing, bounded frames, EXIF rotation, and a bad-media corpus."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

from models.errors import MediaError
from models.media import MediaKind, MediaLimits, frame_size, load_media, probe
from tests.media_corpus import bad_media

LIMITS = MediaLimits(max_duration_s=60.0)


@pytest.fixture(scope="module")
def bad(tmp_path_factory: pytest.TempPathFactory, media: dict[str, Path]) -> dict[str, Path]:
    return bad_media(tmp_path_factory.mktemp("bad"), media)


def test_kind_is_probed_not_guessed(media: dict[str, Path], tmp_path: Path) -> None:
    disguised = tmp_path / "photo.mp3"
    disguised.write_bytes(media["video_av"].read_bytes())
    assert probe(disguised).kind is MediaKind.VIDEO
    assert probe(media["tone_mp3"]).kind is MediaKind.AUDIO
    assert probe(media["image_png"]).kind is MediaKind.IMAGE


def test_audio_is_16k_mono_float32(media: dict[str, Path]) -> None:
    decoded = load_media(media["tone_mp3"])
    assert decoded.audio is not None and decoded.audio.dtype == np.float32
    assert abs(decoded.audio.size / 16_000 - 2.0) < 0.1


def test_video_frames_at_2fps_even_bounded_with_audio(media: dict[str, Path]) -> None:
    decoded = load_media(media["video_av"], MediaLimits(max_frame_pixels=128 * 96))
    assert decoded.frames is not None and decoded.audio is not None
    t, h, w, c = decoded.frames.shape
    assert t % 2 == 0 and t in (6, 8) and c == 3  # 3 s at 2 fps
    assert h * w <= 128 * 96 and h % 32 == 0 and w % 32 == 0
    assert abs(decoded.audio.size / 16_000 - 3.0) < 0.2
    assert load_media(media["video_silent"]).audio is None


def test_exif_rotation_applied(media: dict[str, Path]) -> None:
    image = load_media(media["image_jpeg_rotated"]).image
    assert image is not None and image.size == (60, 120)


def test_frame_size_keeps_aspect_and_alignment() -> None:
    assert frame_size(1280, 720, 640 * 360) == (640, 352)
    assert frame_size(10, 10, 640 * 360) == (32, 32)


def test_bad_media_corpus(bad: dict[str, Path]) -> None:
    assert len(bad) >= 12
    for name, path in bad.items():
        started = time.monotonic()
        with pytest.raises(MediaError) as info:
            load_media(path, LIMITS)
        elapsed = time.monotonic() - started
        assert elapsed < 10, f"{name} took {elapsed:.1f} s"
        assert info.value.reason and path.name in info.value.reason, name


def test_bad_media_reasons_are_specific(bad: dict[str, Path]) -> None:
    def reason(name: str) -> str:
        with pytest.raises(MediaError) as info:
            load_media(bad[name], LIMITS)
        return info.value.reason

    assert "empty" in reason("empty.wav")
    assert "too short" in reason("short_clip.wav")
    assert "too long" in reason("too_long.wav")
    assert "not a media file" in reason("pdf_named.mp3")
    assert "no decodable audio or video" in reason("subtitles_only.mkv")
    assert "implausible duration" in reason("absurd_duration.mkv")


def test_ffmpeg_timeout_stops_a_hang(media: dict[str, Path]) -> None:
    with pytest.raises(MediaError, match="longer than"):
        load_media(media["video_av"], MediaLimits(timeout_s=0.001))


def test_sparse_sampling_falls_back_to_every_frame_when_it_would_leave_gaps(
    media: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Frames nothing refers to are skipped when only one in many is kept; should that leave gaps longer than
    MAX_FRAME_GAP_S between decoded frames, the window is decoded again with every frame."""
    from models import decoding

    calls: list[bool] = []
    original = decoding._decode_video

    def spy(*args, skip: bool, **kwargs):  # type: ignore[no-untyped-def]
        calls.append(skip)
        return original(*args, skip=skip, **kwargs)

    monkeypatch.setattr(decoding, "_decode_video", spy)
    normal = load_media(media["video_av"])
    assert calls == [True]
    monkeypatch.setattr(decoding, "MAX_FRAME_GAP_S", 0.0)  # any gap now counts as too long
    fallback = load_media(media["video_av"])
    assert calls == [True, True, False]
    assert normal.frames is not None and fallback.frames is not None
    assert fallback.frames.shape == normal.frames.shape
