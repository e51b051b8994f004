"""Hostile media the tests generate: playlists and concat scripts that name a server-local file or a loopback URL,
each under several file names, so a decoder that follows them would read something other than the upload."""

from __future__ import annotations

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
