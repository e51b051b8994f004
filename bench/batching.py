"""16 text requests (3 s audio, 32 new tokens, greedy) on the tiny model through generate_batch at batch size 16
against batch size 1, and against a direct model.generate batch of the same inputs, in the same run.
Last line: ratio (batch16 / batch1 throughput) and overhead (direct / ours at batch 16)."""

from __future__ import annotations

import os
import statistics
import subprocess
import tempfile
import time
from dataclasses import replace
from pathlib import Path

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from models.engine import EngineConfig, GenerationRequest
from models.fixtures.tiny import build
from models.media import load_media
from models.tasks import get_task, parse_params
from models.transformers_backend import TransformersEngine

N, TOKENS = 16, 32


def main() -> None:
    import torch

    with tempfile.TemporaryDirectory() as tmp:
        model_dir = build(Path(tmp) / "tiny")
        requests = []
        for i in range(N):
            path = Path(tmp) / f"a{i}.wav"
            tone = f"sine=frequency={200 + 20 * i}:duration=3"
            subprocess.run(
                ["ffmpeg", "-y", "-v", "error", "-f", "lavfi", "-i", tone, "-ar", "16000", str(path)], check=True
            )
            params = parse_params("transcribe", {"max_new_tokens": TOKENS})
            requests.append(GenerationRequest(get_task("transcribe"), params, load_media(path)))
        config = EngineConfig(str(model_dir), max_batch_size=N)
        batched = TransformersEngine(config)
        single = TransformersEngine(replace(config, max_batch_size=1))
        batched.generate_batch(requests[:2])  # warm up both (load, first-call allocations)
        single.generate_batch(requests[:1])

        def timed(fn) -> float:  # type: ignore[no-untyped-def]
            runs = []
            for _ in range(3):
                start = time.perf_counter()
                fn()
                runs.append(time.perf_counter() - start)
            return statistics.median(runs)

        def direct(reqs: list[GenerationRequest]) -> None:
            inputs = batched._inputs(reqs, False)
            with torch.inference_mode():
                batched._model.generate(
                    **inputs, return_audio=False, thinker_max_new_tokens=TOKENS, thinker_do_sample=False
                )

        t16 = timed(lambda: batched.generate_batch(requests))
        t1 = timed(lambda: single.generate_batch(requests))
        d16 = timed(lambda: direct(requests))

        def direct_one_by_one() -> None:
            for r in requests:
                direct([r])

        d1 = timed(direct_one_by_one)
        ours_ratio, plain_ratio = t1 / t16, d1 / d16
        print(f"ours: batch16_jobs_s={N / t16:.2f} batch1_jobs_s={N / t1:.2f} tokens_s={N * TOKENS / t16:.0f}")
        print(f"plain model.generate: batch16_jobs_s={N / d16:.2f} batch1_jobs_s={N / d1:.2f}")
        print(f"overhead_vs_direct_batch16={t16 / d16:.3f} (ours time / direct time)")
        print(
            f"ratio={ours_ratio:.2f} plain_ratio={plain_ratio:.2f} kept={ours_ratio / plain_ratio:.3f} "
            f"ours_s={t16:.3f} baseline_s={t1:.3f}"
        )


if __name__ == "__main__":
    main()
