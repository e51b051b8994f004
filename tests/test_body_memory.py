"""An accepted request costs the API at most about twice its body in memory (issue: a 20 MiB chat body used to
raise the API's peak RSS by 519 MiB, 26x; a 100 MiB transcription upload by 105 MiB, read whole)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.body_memory import MIB, MeasuredApi, measured_api
from tests.support import PrivateRedis

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory, redis_server: PrivateRedis) -> Iterator[MeasuredApi]:
    with measured_api(tmp_path_factory.mktemp("memory"), redis_server.url(9)) as measured:
        yield measured


def test_a_20_mib_chat_body_raises_peak_rss_by_at_most_about_twice_its_size(api: MeasuredApi) -> None:
    rise, status = api.peak_rise(lambda: api.chat(20))
    assert status == 504, "accepted: the job was created (nobody runs it here, so the call times out)"
    assert rise <= 2.25 * 20 * MIB, f"peak RSS rose {rise / MIB:.1f} MiB"


def test_a_100_mib_transcription_streams_to_storage(api: MeasuredApi) -> None:
    rise, status = api.peak_rise(lambda: api.transcription(100))
    assert status == 504
    assert rise <= 16 * MIB, f"peak RSS rose {rise / MIB:.1f} MiB: the file was held in memory"
