"""The GPU check (infra/gpu-check.sh): what the first GPU node must do, proven in minutes on the tiny checkpoint
(built here: no internet, no real weights). Each check is timed and recorded, a failure recorded and the next
check run; the figures go to one JSON file. `--dry-run` runs the same checks on the CPU (smaller prefill; the
CUDA-only ones are recorded as skipped), so the script itself is tested where no GPU is."""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from models.engine import EngineConfig, GenerationRequest
from models.fixtures.tiny import build
from models.fixtures.tiny_aligner import build_aligner
from models.media import DecodedMedia, MediaInfo, MediaKind, MediaLimits, frame_size, text_media
from models.tasks import CATALOGUE, get_task, parse_params
from models.transformers_backend import TransformersEngine

EXTRA = {
    "translate": {"target_language": "de"},
    "ask": {"question": "What is it?"},
    "custom": {"prompt": "Hi."},
    "subtitles": {"target_language": "de", "text": "1. Good evening."},
}
REAL_MAX_PIXELS = 12_845_056  # Qwen3-Omni-30B-A3B's image processor (preprocessor_config.json)


def audio(seconds: float) -> np.ndarray:
    return (0.1 * np.random.default_rng(0).standard_normal(int(16_000 * seconds))).astype(np.float32)


def media(kind: MediaKind, seconds: float = 3.0, limits: MediaLimits | None = None) -> DecodedMedia:
    """Model-ready media made in memory (no decoder needed): noise audio, grey frames at the planner's size."""
    if kind is MediaKind.TEXT:
        return text_media()
    if kind is MediaKind.IMAGE:
        return DecodedMedia(MediaInfo(kind, 0.0, False, 640, 360), image=Image.new("RGB", (640, 360), "grey"))
    if kind is MediaKind.VIDEO:
        width, height = frame_size(640, 360, (limits or MediaLimits()).max_frame_pixels)
        count = max(2, int(seconds * 2) // 2 * 2)
        frames = np.full((count, height, width, 3), 127, dtype=np.uint8)
        info = MediaInfo(kind, seconds, True, 640, 360)
        return DecodedMedia(info, audio=audio(seconds), frames=frames, end_s=seconds)
    return DecodedMedia(MediaInfo(kind, seconds, True), audio=audio(seconds), end_s=seconds)


def request(task: str, item: DecodedMedia, **params: Any) -> GenerationRequest:
    values = {"max_new_tokens": 8, **EXTRA.get(task, {}), **params}
    return GenerationRequest(get_task(task), parse_params(task, values), item)


class Check:
    """Runs named checks, recording each one's figures, time, and error if any."""

    def __init__(self) -> None:
        self.results: dict[str, Any] = {}

    def run(self, name: str, body: Callable[[], dict[str, Any]]) -> None:
        started = time.perf_counter()
        try:
            figures = body()
            entry = {"ok": True, **figures}
        except Exception as exc:  # recorded; the other checks still run
            entry = {"ok": False, "error": f"{type(exc).__name__}: {exc}", "trace": traceback.format_exc()[-2000:]}
        entry["seconds"] = round(time.perf_counter() - started, 2)
        self.results[name] = entry
        print(f"{name}: {'ok' if entry['ok'] else 'FAILED ' + entry['error']} ({entry['seconds']} s)", flush=True)

    def skip(self, name: str, why: str) -> None:
        self.results[name] = {"ok": None, "skipped": why}
        print(f"{name}: skipped ({why})", flush=True)


def memory(torch: Any, cuda: bool) -> dict[str, float]:
    if not cuda:
        return {}
    return {
        "allocated_gib": round(torch.cuda.memory_allocated() / 2**30, 3),
        "peak_gib": round(torch.cuda.max_memory_allocated() / 2**30, 3),
    }


def environment(torch: Any, cuda: bool) -> dict[str, Any]:
    found: dict[str, Any] = {"python": platform.python_version(), "torch": torch.__version__, "cuda": cuda}
    if cuda:
        found["device"] = torch.cuda.get_device_name(0)
        found["memory_gib"] = round(torch.cuda.get_device_properties(0).total_memory / 2**30, 1)
        smi = subprocess.run(
            ["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"], capture_output=True, text=True
        )
        found["driver"] = smi.stdout.strip()
    return found


def every_task(engine: TransformersEngine) -> dict[str, Any]:
    ran: list[str] = []
    for spec in CATALOGUE.values():
        for kind in sorted(spec.accepts, key=lambda k: k.value):
            item = request(spec.name.value, media(kind))
            try:
                engine.validate(item)
            except Exception:  # a combination the task refuses (e.g. OCR on audio)
                continue
            result = engine.generate(item)
            assert result.new_tokens > 0, (spec.name, kind)
            ran.append(f"{spec.name.value}/{kind.value}")
    return {"ran": ran, "count": len(ran)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="gpu-check.json")
    parser.add_argument("--dry-run", action="store_true", help="on the CPU, smaller; CUDA-only checks skipped")
    args = parser.parse_args()
    import torch

    cuda = torch.cuda.is_available() and not args.dry_run
    if not cuda and not args.dry_run:
        print("no CUDA device: run with --dry-run on a machine without a GPU", file=sys.stderr)
        return 2
    device, dtype = ("cuda", "bfloat16") if cuda else ("cpu", "float32")
    check = Check()
    check.results["environment"] = environment(torch, cuda)
    root = Path(tempfile.mkdtemp(prefix="omnimedia-gpu-check-"))
    model = str(build(root / "tiny"))
    thinker = TransformersEngine(EngineConfig(model, device=device, dtype=dtype, max_new_tokens_cap=8))
    speaker = TransformersEngine(
        EngineConfig(model, device=device, dtype=dtype, enable_talker=True, talker_max_new_tokens=40)
    )

    def load(engine: TransformersEngine) -> Callable[[], dict[str, Any]]:
        def body() -> dict[str, Any]:
            engine.load()
            model = engine._model
            return {"dtype": str(next(model.parameters()).dtype), "talker": model.has_talker, **memory(torch, cuda)}

        return body

    check.run("load_without_talker", load(thinker))
    check.run("load_with_talker", load(speaker))
    check.run("every_task_and_medium", lambda: every_task(thinker))

    def speech() -> dict[str, Any]:
        seconds = {}
        for voice in ("Ethan", "Chelsie", "Aiden"):
            result = speaker.generate(request("ask", media(MediaKind.AUDIO), voice=voice))
            assert result.audio is not None and result.audio.size > 0
            seconds[voice] = round(result.audio.size / 24_000, 2)
        return {"speech_s": seconds}

    check.run("talker_speech", speech)
    prefill_s = 127.0 if cuda else 20.0  # ~28k prompt tokens of 640x360 video with its audio (dry run: ~4k)

    def prefill() -> dict[str, Any]:
        if cuda:
            torch.cuda.reset_peak_memory_stats()
        started = time.perf_counter()
        result = thinker.generate(request("describe_video", media(MediaKind.VIDEO, prefill_s), max_new_tokens=4))
        return {
            "video_s": prefill_s,
            "prompt_tokens": result.prompt_tokens,
            "generate_s": round(time.perf_counter() - started, 2),
            **memory(torch, cuda),
        }

    check.run("long_video_prefill", prefill)

    def mixed() -> dict[str, Any]:
        items = [
            request("transcribe", media(MediaKind.AUDIO)),
            request("ocr", media(MediaKind.IMAGE)),
            request("describe_video", media(MediaKind.VIDEO)),
            request("caption_audio", media(MediaKind.AUDIO, 5.0)),
        ]
        before = thinker.generate_calls
        results = thinker.generate_batch(items)
        return {"requests": len(results), "generate_calls": thinker.generate_calls - before}

    check.run("mixed_batch", mixed)
    if cuda:

        def out_of_memory_then_generate() -> dict[str, Any]:
            total = torch.cuda.get_device_properties(0).total_memory
            fraction = min(1.0, (torch.cuda.memory_allocated() + 64 * 2**20) / total)
            torch.cuda.set_per_process_memory_fraction(fraction)
            try:
                thinker.generate(request("describe_video", media(MediaKind.VIDEO, 60.0)))
                raised = False
            except torch.OutOfMemoryError:
                raised = True
            finally:
                torch.cuda.set_per_process_memory_fraction(1.0)
            reserved_after = torch.cuda.memory_reserved()
            result = thinker.generate(request("transcribe", media(MediaKind.AUDIO)))
            return {
                "oom_raised": raised,
                "reserved_after_oom_gib": round(reserved_after / 2**30, 3),
                "then_generated_tokens": result.new_tokens,
            }

        check.run("out_of_memory_then_generate", out_of_memory_then_generate)
    else:
        check.skip("out_of_memory_then_generate", "needs CUDA")

    def aligner() -> dict[str, Any]:
        from models.aligner import ForcedAligner

        found = ForcedAligner(str(build_aligner(root / "aligner")), device)
        found.load()
        alignment = found.align(audio(4.0), "the flood barrier held", "en")
        return {"device": str(next(found._model.parameters()).device), "aligned": alignment is not None}

    check.run("aligner", aligner)
    from models.vllm_backend import vllm_available

    if cuda and vllm_available():
        check.run("vllm_engine", lambda: vllm_engine(model, root))
    else:
        check.skip("vllm_engine", "needs CUDA and the vllm package (the vLLM image)")
    Path(args.out).write_text(json.dumps(check.results, indent=2))
    failed = [name for name, entry in check.results.items() if isinstance(entry, dict) and entry.get("ok") is False]
    print(f"figures in {args.out}; failed: {', '.join(failed) or 'none'}")
    return 1 if failed else 0


def vllm_engine(model: str, root: Path) -> dict[str, Any]:
    """Item 1 of issue 25 on the real engine: the tiny processor given the real checkpoint's max_pixels, a 135 s
    video segment (~29,700 embeddings) is accepted with our engine arguments; then requests through the stepping
    loop."""
    config_path = Path(model) / "preprocessor_config.json"
    processor = json.loads(config_path.read_text())
    processor["max_pixels"] = REAL_MAX_PIXELS
    config_path.write_text(json.dumps(processor))
    from models.loader import load_engine

    engine = load_engine(EngineConfig(model, backend="vllm", gpu_memory_utilization=0.5, max_new_tokens_cap=8))
    started = time.perf_counter()
    engine.load()
    load_s = time.perf_counter() - started
    long = engine.generate(request("describe_video", media(MediaKind.VIDEO, 135.0), max_new_tokens=4))
    items = [request("transcribe", media(MediaKind.AUDIO)) for _ in range(16)]
    started = time.perf_counter()
    results = engine.generate_batch(items)
    return {
        "load_s": round(load_s, 1),
        "video_135s_prompt_tokens": long.prompt_tokens,
        "sixteen_requests_s": round(time.perf_counter() - started, 2),
        "answers": len(results),
    }


if __name__ == "__main__":
    sys.exit(main())
