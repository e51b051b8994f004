"""Walking real archives: nested folders, unicode names, symlink loops, unreadable and non-media files.

Each file found becomes an `ArchiveEntry` with its content hash, or a skip with a reason. Hidden files are
ignored unless asked for. Media type is decided later by probing, never by the name alone."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

# Names that suggest media: a file with one of these that ffmpeg cannot read is a *bad* file (failed);
# any other unreadable file is *not media* (skipped).
MEDIA_SUFFIXES = {
    ".wav",
    ".mp3",
    ".flac",
    ".ogg",
    ".oga",
    ".opus",
    ".m4a",
    ".aac",
    ".wma",
    ".aiff",
    ".aif",
    ".amr",
    ".mp4",
    ".m4v",
    ".mov",
    ".mkv",
    ".webm",
    ".avi",
    ".wmv",
    ".mpg",
    ".mpeg",
    ".ts",
    ".3gp",
    ".flv",
    ".png",
    ".jpg",
    ".jpeg",
    ".webp",
    ".tif",
    ".tiff",
    ".bmp",
    ".gif",
}


@dataclass(frozen=True)
class ArchiveEntry:
    path: Path  # absolute
    rel: str  # relative to the archive root, POSIX separators
    sha256: str | None = None
    size: int = 0
    skip_reason: str | None = None

    @property
    def looks_like_media(self) -> bool:
        return Path(self.rel).suffix.lower() in MEDIA_SUFFIXES


def file_sha256(path: Path, chunk: int = 4 * 1024 * 1024) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def walk(root: Path, include_hidden: bool = False) -> Iterator[ArchiveEntry]:
    """Every regular file under root in a stable order; symlinked folders are followed once (loops cut)."""
    root = root.resolve()
    seen_dirs: set[tuple[int, int]] = set()

    def visit(folder: Path) -> Iterator[ArchiveEntry]:
        try:
            stat = folder.stat()
        except OSError as exc:
            yield ArchiveEntry(folder, _rel(root, folder), skip_reason=f"folder unreadable: {exc.strerror}")
            return
        key = (stat.st_dev, stat.st_ino)
        if key in seen_dirs:
            yield ArchiveEntry(folder, _rel(root, folder), skip_reason="symlink loop (folder already visited)")
            return
        seen_dirs.add(key)
        try:
            children = sorted(os.scandir(folder), key=lambda e: e.name)
        except OSError as exc:
            yield ArchiveEntry(folder, _rel(root, folder), skip_reason=f"folder unreadable: {exc.strerror}")
            return
        for child in children:
            path = Path(child.path)
            if child.name.startswith(".") and not include_hidden:
                continue
            try:
                is_dir = child.is_dir(follow_symlinks=True)
                is_file = child.is_file(follow_symlinks=True)
            except OSError as exc:
                yield ArchiveEntry(path, _rel(root, path), skip_reason=f"unreadable: {exc.strerror}")
                continue
            if is_dir:
                yield from visit(path)
            elif is_file:
                yield _file_entry(root, path)
            elif child.is_symlink():
                yield ArchiveEntry(path, _rel(root, path), skip_reason="broken symlink")
            else:
                yield ArchiveEntry(path, _rel(root, path), skip_reason="not a regular file")

    yield from visit(root)


def _rel(root: Path, path: Path) -> str:
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return path.as_posix()


def _file_entry(root: Path, path: Path) -> ArchiveEntry:
    rel = _rel(root, path)
    try:
        size = path.stat().st_size
        return ArchiveEntry(path, rel, file_sha256(path), size)
    except OSError as exc:
        return ArchiveEntry(path, rel, skip_reason=f"unreadable: {exc.strerror or exc}")
