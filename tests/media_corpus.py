"""Media files the tests generate with ffmpeg, espeak-ng and sox: good inputs and a bad-media corpus."""

from __future__ import annotations

import struct
from pathlib import Path

from PIL import Image

from tests.support import ffmpeg, speech


def good_media(root: Path) -> dict[str, Path]:
    root.mkdir(parents=True, exist_ok=True)
    files = {
        "speech_wav": speech(root / "speech.wav", "Hello from omnimedia. This is a short test of speech.", 0.3),
        "tone_mp3": root / "tone.mp3",
        "video_av": root / "clip.mp4",
        "video_silent": root / "silent.mp4",
        "image_png": root / "card.png",
        "image_jpeg_rotated": root / "rotated.jpg",
    }
    ffmpeg("-f", "lavfi", "-i", "sine=frequency=440:duration=2", "-ar", "44100", str(files["tone_mp3"]))
    ffmpeg(
        "-f",
        "lavfi",
        "-i",
        "testsrc=size=320x240:rate=10:duration=3",
        "-f",
        "lavfi",
        "-i",
        "sine=frequency=300:duration=3",
        "-shortest",
        "-c:v",
        "libx264",
        "-pix_fmt",
        "yuv420p",
        "-c:a",
        "aac",
        str(files["video_av"]),
    )
    ffmpeg(
        "-f",
        "lavfi",
        "-i",
        "testsrc=size=320x240:rate=10:duration=2",
        "-c:v",
        "libx264",
        "-pix_fmt",
        "yuv420p",
        str(files["video_silent"]),
    )
    Image.new("RGB", (200, 100), (250, 250, 250)).save(files["image_png"])
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90 degrees clockwise on display
    Image.new("RGB", (120, 60), (10, 120, 200)).save(files["image_jpeg_rotated"], exif=exif)
    return files


def bad_media(root: Path, good: dict[str, Path]) -> dict[str, Path]:
    """At least 12 unusable files, each a different way media goes wrong."""
    root.mkdir(parents=True, exist_ok=True)
    bad: dict[str, Path] = {}

    def write(name: str, data: bytes) -> None:
        bad[name] = root / name
        bad[name].write_bytes(data)

    write("empty.wav", b"")
    write("pdf_named.mp3", b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n" * 20)
    write("text_named.mp4", b"this is not a video, only some text\n" * 50)
    write("random_bytes.flac", bytes(range(256)) * 64)
    video = good["video_av"].read_bytes()
    moov = video.find(b"moov")
    write("truncated_moov.mp4", video[: moov - 4] if moov > 0 and video.find(b"mdat") < moov else video[:2000])
    write("header_only.wav", good["speech_wav"].read_bytes()[:44])
    write("truncated.png", good["image_png"].read_bytes()[:60])
    bad["short_clip.wav"] = root / "short_clip.wav"
    ffmpeg("-f", "lavfi", "-i", "sine=duration=0.2", "-ar", "16000", str(bad["short_clip.wav"]))
    bad["too_long.wav"] = root / "too_long.wav"  # longer than the limit the test sets (60 s)
    ffmpeg("-f", "lavfi", "-i", "anullsrc=r=8000:cl=mono", "-t", "90", str(bad["too_long.wav"]))
    # A Matroska file whose Duration element claims 10^13 ms (~317 years).
    mkv = root / "absurd_source.mkv"
    ffmpeg("-f", "lavfi", "-i", "sine=duration=1", "-c:a", "libvorbis", str(mkv))
    data = bytearray(mkv.read_bytes())
    at = data.find(b"\x44\x89\x88")
    data[at + 3 : at + 11] = struct.pack(">d", 1e13)
    mkv.unlink()
    write("absurd_duration.mkv", bytes(data))
    bad["subtitles_only.mkv"] = root / "subtitles_only.mkv"
    srt = root / "s.srt"
    srt.write_text("1\n00:00:00,000 --> 00:00:02,000\nhello\n")
    ffmpeg("-i", str(srt), "-c:s", "srt", str(bad["subtitles_only.mkv"]))
    write("html_named.webm", b"<html><body>not media</body></html>" * 30)
    write("zeros.mp3", bytes(8192))
    return bad


def damaged_media(root: Path) -> dict[str, Path]:
    """Files that decode to less than their headers say: a fast-start MP4 cut at two thirds (its header still
    says 5 s), an MP3 with 3 KB of garbage in the middle, and a WAV whose header claims 10 hours around 1 s of
    samples."""
    root.mkdir(parents=True, exist_ok=True)
    full = root / "full.mp4"
    ffmpeg(
        "-f",
        "lavfi",
        "-i",
        "testsrc=size=320x240:rate=10:duration=5",
        "-f",
        "lavfi",
        "-i",
        "sine=frequency=300:duration=5",
        "-c:v",
        "libx264",
        "-pix_fmt",
        "yuv420p",
        "-c:a",
        "aac",
        "-movflags",
        "+faststart",
        str(full),
    )
    data = full.read_bytes()
    files = {
        "truncated_mp4": root / "truncated.mp4",
        "damaged_mp3": root / "damaged.mp3",
        "lying_wav": root / "lying.wav",
    }
    files["truncated_mp4"].write_bytes(data[: len(data) * 2 // 3])
    clean = root / "clean.mp3"
    ffmpeg("-f", "lavfi", "-i", "sine=frequency=300:duration=6", "-c:a", "libmp3lame", "-b:a", "64k", str(clean))
    mp3 = bytearray(clean.read_bytes())
    middle = len(mp3) // 2
    mp3[middle : middle + 3000] = bytes((i * 7919) % 251 for i in range(3000))
    files["damaged_mp3"].write_bytes(bytes(mp3))
    wav = root / "one.wav"
    ffmpeg("-f", "lavfi", "-i", "sine=frequency=500:duration=1", "-ar", "16000", "-ac", "1", str(wav))
    body = bytearray(wav.read_bytes())
    claimed = 16_000 * 2 * 36_000  # ten hours of 16-bit mono at 16 kHz
    at = body.find(b"data")
    body[at + 4 : at + 8] = struct.pack("<I", claimed)
    body[4:8] = struct.pack("<I", claimed + at + 4)
    files["lying_wav"].write_bytes(bytes(body))
    return files
