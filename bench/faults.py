"""The fault run of tests/faults.py at 1,000 jobs (tests/test_faults.py asserts it at 200): a private Postgres and
Redis, SeaweedFS, the API, two job workers, a webhooks worker and a maintenance worker with beat, each under
`omnimedia worker`'s supervisor; two job-worker SIGKILLs, one of the webhooks worker, one of the API, Redis kill -9
without persistence and a Postgres crash restart while the jobs run. Last line: lost and double-landed jobs,
webhooks delivered, time from the last fault to the last delivery, recovery after the broker loss."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from models.fixtures.tiny import build
from tests.faults import run_fault_run
from tests.support import ffmpeg, seaweedfs

JOBS = int(os.environ.get("BENCH_JOBS", "1000"))


def main() -> None:
    keep = os.environ.get("BENCH_KEEP")  # a folder to keep the services' logs in
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(keep or tmp_name)
        model = build(tmp / "tiny")
        image = tmp / "page.png"
        ffmpeg("-f", "lavfi", "-i", "testsrc=size=320x240", "-frames:v", "1", str(image))
        with seaweedfs(tmp / "s3") as s3:
            report = run_fault_run(tmp / "run", model, s3, image, jobs=JOBS, settle_s=300)
    for fault in report.faults:
        print("fault at", fault)
    print(report.line())


if __name__ == "__main__":
    main()
