"""The vLLM backend needs vllm and a GPU; here it is import-checked, and run only where vllm is installed."""

from __future__ import annotations

from pathlib import Path

import pytest

from models.engine import EngineConfig, GenerationRequest
from models.errors import BackendUnavailable
from models.media import load_media
from models.tasks import get_task, parse_params
from models.vllm_backend import DEFAULT_ENGINE_ARGS, VllmEngine, vllm_available


def test_backend_imports_and_refuses_cleanly_without_vllm(tiny_model: Path) -> None:
    assert DEFAULT_ENGINE_ARGS["limit_mm_per_prompt"] == {"image": 3, "video": 3, "audio": 3}
    if vllm_available():
        pytest.skip("vllm is installed: see the GPU test below")
    with pytest.raises(BackendUnavailable, match=r"omnimedia\[vllm\]"):
        VllmEngine(EngineConfig(str(tiny_model), backend="vllm"))


@pytest.mark.vllm
@pytest.mark.skipif(not vllm_available(), reason="vllm is not installed (GPU-only optional extra: pip install .[vllm])")
def test_vllm_generates_text(tiny_model: Path, media: dict[str, Path]) -> None:
    import torch

    if not torch.cuda.is_available():
        pytest.skip("vLLM needs a CUDA GPU")
    engine = VllmEngine(EngineConfig(str(tiny_model), backend="vllm"), {"gpu_memory_utilization": 0.3})
    request = GenerationRequest(
        get_task("transcribe"), parse_params("transcribe", {"max_new_tokens": 8}), load_media(media["speech_wav"])
    )
    (result,) = engine.generate_batch([request])
    assert 1 <= result.new_tokens <= 8
