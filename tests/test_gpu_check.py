"""The GPU check script (infra/gpu-check.sh) in its CPU dry run: every check runs, the figures land in one JSON
file, and only the checks that need CUDA (or the vLLM image) are skipped."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from tests.support import REPO


def test_the_gpu_check_dry_run_runs_every_check_it_can_on_the_cpu(tmp_path: Path) -> None:
    out = tmp_path / "figures.json"
    done = subprocess.run(
        ["bash", str(REPO / "infra" / "gpu-check.sh"), "--dry-run", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    figures = json.loads(out.read_text())
    skipped = {name for name, entry in figures.items() if entry.get("ok") is None and "skipped" in entry}
    assert skipped == {"out_of_memory_then_generate", "vllm_engine"}
    ran = {name: entry for name, entry in figures.items() if entry.get("ok") is True}
    assert set(ran) == {
        "load_without_talker",
        "load_with_talker",
        "every_task_and_medium",
        "talker_speech",
        "long_video_prefill",
        "mixed_batch",
        "aligner",
    }
    assert ran["load_without_talker"]["talker"] is False and ran["load_with_talker"]["talker"] is True
    assert ran["every_task_and_medium"]["count"] >= 16
    assert set(ran["talker_speech"]["speech_s"]) == {"Ethan", "Chelsie", "Aiden"}
    assert ran["long_video_prefill"]["prompt_tokens"] > 4000
    assert ran["mixed_batch"]["requests"] == 4 and ran["aligner"]["aligned"] is True
