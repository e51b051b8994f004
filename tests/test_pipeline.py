"""A file's whole media path through models.pipeline alone, on the tiny checkpoint: no database, no Celery, no
HTTP (run in a fresh interpreter that is checked for having imported none of them)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.support import REPO, speech

SCRIPT = """
import json, sys
from pathlib import Path
from models.engine import EngineConfig
from models.pipeline import build_pipeline
from models.segments import PlanScan

path, model = Path(sys.argv[1]), sys.argv[2]
pipeline = build_pipeline(EngineConfig(model, max_new_tokens_cap=4), aligner=None)
prepared = pipeline.prepare(path, "transcribe", {"language": "en"}, 2.5, None)
outputs = [pipeline.segment(prepared, settled.index) for settled in prepared.planning.settled()]
PlanScan.run = None  # a stored plan is used as it is: the file is not decoded again to re-plan
again = pipeline.prepare(path, "transcribe", {"language": "en"}, 2.5, prepared.plan_json())
print(json.dumps({
    "spans": [[s.start, s.end] for s in prepared.spans],
    "again": [[s.start, s.end] for s in again.spans],
    "duration": prepared.duration_s(outputs[-1].end_s),
    "segments": [{"start": o.start_s, "end": o.end_s, "text": o.text, "timing": o.timing, "tokens": o.tokens,
                  "prompt_tokens": o.prompt_tokens, "finish": o.finish,
                  "words": [[w.start, w.end, w.text] for w in o.words]} for o in outputs],
    "language": pipeline.language(prepared, " ".join(o.text for o in outputs)),
    "imported": sorted(m for m in ("sqlalchemy", "celery", "fastapi", "starlette", "redis", "psycopg", "core")
                       if m in sys.modules),
}))
"""


def test_a_files_whole_media_path_runs_through_the_pipeline_with_no_database(tiny_model: Path, tmp_path: Path) -> None:
    talk = speech(tmp_path / "talk.wav", "The flood barrier held. Then the water rose again over the old town.", 1.0)
    run = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(talk), str(tiny_model)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    found = json.loads(run.stdout.strip().splitlines()[-1])
    assert found["imported"] == [], "the media path needs no database, queue or web framework"
    spans, segments = found["spans"], found["segments"]
    assert len(spans) >= 2 and found["again"] == spans, "several segments; a stored plan gives the same ones"
    assert all(b - a <= 2.5 + 1e-6 for a, b in spans) and spans[0][0] == 0.0
    assert abs(segments[-1]["end"] - found["duration"]) < 1e-6
    spoken = [s for s in segments if s["timing"] != "none"]
    assert spoken and all(s["tokens"] == 4 and s["prompt_tokens"] > 10 and s["finish"] == "length" for s in spoken)
    for segment in spoken:  # every word lies inside its own segment
        assert all(segment["start"] <= a <= b <= segment["end"] for a, b, _ in segment["words"])
    assert found["language"] == "en"
