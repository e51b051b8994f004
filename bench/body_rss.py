"""Peak API memory per MiB of accepted body: chat completions (JSON with a base64 data: URL), transcriptions and
uploads (multipart), each measured on the same running API (celery mode: no job runs inside it) by resetting
the process's peak RSS before the request and reading it after. Last line: peak MiB per body MiB for each route."""

from __future__ import annotations

import tempfile
from functools import partial
from pathlib import Path

from tests.body_memory import MIB, measured_api
from tests.support import private_redis

SIZES_MIB = {"chat": 20, "transcription": 100, "upload": 100}
ROUNDS = 3


def main() -> None:
    ratios = {}
    with (
        tempfile.TemporaryDirectory() as tmp,
        private_redis(Path(tmp) / "redis") as redis,
        measured_api(Path(tmp) / "api", redis.url(3)) as api,
    ):
        for kind, mib in SIZES_MIB.items():
            send = partial(getattr(api, kind), mib)
            rises = [api.peak_rise(send)[0] for _ in range(ROUNDS)]
            ratios[kind] = max(rises) / (mib * MIB)
            print(f"{kind}: {mib} MiB body, peak RSS rise {[round(r / MIB, 1) for r in rises]} MiB", flush=True)
    print(" ".join(f"{kind}_peak_per_body={ratio:.2f}" for kind, ratio in ratios.items()))


if __name__ == "__main__":
    main()
