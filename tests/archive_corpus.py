"""A mixed archive of 50 files made with ffmpeg and espeak-ng: speech in WAV/MP3/FLAC, videos with and without
audio, images, nested and unicode names, 3 duplicates, 5 bad files, a non-media file, a symlink loop."""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image

from tests.support import ffmpeg, speech

SENTENCES = [
    "The archive opens at nine.",
    "A quiet room full of tapes.",
    "Numbers one two three four.",
    "Rain on the window again.",
    "She reads the letter aloud.",
    "The train leaves at noon.",
    "Music plays in the hall.",
    "Every file gets a caption.",
]


@dataclass
class Archive:
    root: Path
    good: list[str] = field(default_factory=list)  # relative paths expected to succeed
    bad: list[str] = field(default_factory=list)  # expected failed with a reason
    skipped: list[str] = field(default_factory=list)  # expected skipped (non-media, symlink loop)
    duplicates: list[tuple[str, str]] = field(default_factory=list)  # (copy, original)

    @property
    def file_count(self) -> int:
        return len(self.good) + len(self.bad) + len([s for s in self.skipped if not s.endswith("loop")])


def build_archive(root: Path, long_audio_s: float = 0.0) -> Archive:
    archive = Archive(root)
    work = root.parent / f"{root.name}-work"
    work.mkdir(parents=True, exist_ok=True)

    def add(rel: str, kind: str = "good") -> Path:
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        getattr(archive, kind).append(rel)
        return path

    voices = [speech(work / f"v{i}.wav", s, 0.3) for i, s in enumerate(SENTENCES)]
    for i, voice in enumerate(voices):  # 24 speech files in three formats, nested
        folder = ["interviews", "interviews/1998", "radio/évening news", "radio"][i % 4]
        shutil.copy(voice, add(f"{folder}/talk {i:02d}.wav"))
        ffmpeg("-i", str(voice), "-af", f"volume={0.5 + i / 10}", str(add(f"{folder}/talk {i:02d}.mp3")))
        ffmpeg("-i", str(voice), "-af", "atempo=1.1", str(add(f"{folder}/talk {i:02d} fast.flac")))
    for i in range(6):  # videos with their own audio
        ffmpeg(
            "-f",
            "lavfi",
            "-i",
            f"testsrc=size=192x128:rate=10:duration={2 + i % 2}",
            "-i",
            str(voices[i]),
            "-shortest",
            "-c:v",
            "libx264",
            "-pix_fmt",
            "yuv420p",
            "-c:a",
            "aac",
            str(add(f"video/clip_{i}.mp4")),
        )
    for i in range(3):  # silent videos
        ffmpeg(
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=160x96:rate=8:duration=2",
            "-c:v",
            "libx264",
            "-pix_fmt",
            "yuv420p",
            str(add(f"video/silent/stumm_{i}.mkv")),
        )
    for i in range(8):  # images
        color = (40 * i, 200 - 30 * i, 120)
        Image.new("RGB", (96 + 16 * i, 64), color).save(add(f"scans/写真_{i}.{['png', 'jpg', 'webp'][i % 3]}"))
    if long_audio_s:
        long_path = add("long/lecture.wav")
        ffmpeg("-stream_loop", "-1", "-i", str(voices[0]), "-t", str(long_audio_s), "-ar", "16000", str(long_path))
    # 3 duplicates: same bytes under other names
    for copy, original in (
        ("copies/talk 00 copy.wav", "interviews/talk 00.wav"),
        ("copies/nested/dupe.mp3", "radio/talk 03.mp3"),
        ("video/clip_0 again.mp4", "video/clip_0.mp4"),
    ):
        shutil.copy(root / original, add(copy))
        archive.duplicates.append((copy, original))
    # 5 bad files
    add("broken/empty.wav", "bad").write_bytes(b"")
    add("broken/not really.mp3", "bad").write_bytes(b"%PDF-1.4 pretend document\n" * 40)
    clip = (root / "video/clip_1.mp4").read_bytes()
    add("broken/truncated.mp4", "bad").write_bytes(clip[: len(clip) // 3])
    ffmpeg("-f", "lavfi", "-i", "sine=duration=0.2", str(add("broken/blip.wav", "bad")))
    add("broken/garbage.flac", "bad").write_bytes(os.urandom(4096))
    # not media, hidden, and a symlink loop
    add("notes/README.txt", "skipped").write_text("catalogue notes, not media\n")
    (root / ".hidden").mkdir()
    shutil.copy(voices[0], root / ".hidden" / "secret.wav")
    os.symlink("..", root / "radio" / "loop")
    archive.skipped.append("radio/loop")
    shutil.rmtree(work)
    return archive
