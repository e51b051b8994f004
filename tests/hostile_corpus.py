"""Hostile media the tests generate: playlists and concat scripts that name a server-local file or a loopback URL,
each under several file names, so a decoder that follows them would read something other than the upload."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

EXTENSIONS = (".m3u8", ".mp4", ".wav", ".mp3", ".flac", "")


def _hls(target: str) -> str:
    return f"#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:3\n#EXTINF:2.0,\n{target}\n#EXT-X-ENDLIST\n"


def _concat(target: str) -> str:
    return f"ffconcat version 1.0\nfile '{target}'\n"


def hostile_media(root: Path, secret: Path, url: str) -> dict[str, Path]:
    """name -> file: every playlist kind and target under every extension."""
    root.mkdir(parents=True, exist_ok=True)
    bodies = {
        "hls-local": _hls(str(secret)),
        "hls-file-url": _hls(f"file://{secret}"),
        "hls-loopback": _hls(url),
        "concat-local": _concat(str(secret)),
        "concat-loopback": _concat(url),
    }
    files = {}
    for kind, body in bodies.items():
        for ext in EXTENSIONS:
            path = root / f"{kind}{ext or '.noext'}"
            path.write_text(body)
            files[path.name] = path
    return files


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def png_claiming(path: Path, width: int, height: int) -> Path:
    """A few-hundred-byte PNG whose header claims width x height pixels (a decompression bomb's shape)."""
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    body = zlib.compress(b"\0" * 4096)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header) + _chunk(b"IDAT", body) + _chunk(b"IEND", b""))
    return path
