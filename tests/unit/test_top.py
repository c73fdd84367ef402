"""`airpods top`'s pure parts: llama-server's Prometheus text, rates between two samples, and
Docker's formatted sizes."""

from __future__ import annotations

import pytest

from airpods.engine.docker import size_bytes
from airpods.top import ServerSample, parse_metrics, rates

METRICS = """# HELP llamacpp:prompt_tokens_total Number of prompt tokens processed
# TYPE llamacpp:prompt_tokens_total counter
llamacpp:prompt_tokens_total 9
# HELP llamacpp:tokens_predicted_total Number of generation tokens processed
# TYPE llamacpp:tokens_predicted_total counter
llamacpp:tokens_predicted_total 300
# HELP llamacpp:predicted_tokens_seconds Average generation throughput in tokens/s
# TYPE llamacpp:predicted_tokens_seconds gauge
llamacpp:predicted_tokens_seconds 223.461
# HELP llamacpp:requests_processing Number of requests processing
# TYPE llamacpp:requests_processing gauge
llamacpp:requests_processing 1
"""


def sample(
    at: float, decoded: float, prompted: float = 0.0, model: str | None = "tiny", finished: float = 0, spent: float = 0
) -> ServerSample:
    return ServerSample("llamacpp", model, at, 1, 0, decoded, prompted, 10, 2048, spent, finished)


def test_llama_server_metrics_parse_with_their_colon_names():
    metrics = parse_metrics(METRICS)
    assert metrics["llamacpp:tokens_predicted_total"] == 300 and metrics["llamacpp:requests_processing"] == 1
    assert metrics["llamacpp:predicted_tokens_seconds"] == pytest.approx(223.461)


def test_rates_are_differences_over_the_time_between_samples():
    (row,) = rates(
        {("llamacpp", "tiny"): sample(10.0, 100, 50, finished=80, spent=1)},
        [sample(12.0, 500, 250, finished=380, spent=2.5)],
    )
    assert (row.generation_tps, row.prompt_tps) == (200.0, 100.0)
    assert row.request_tps == 200.0  # 300 tokens of finished requests in their 1.5 s of generation
    (idle,) = rates(
        {("llamacpp", "tiny"): sample(10.0, 100, finished=80, spent=1)}, [sample(12.0, 100, finished=80, spent=1)]
    )
    assert idle.generation_tps == 0.0 and idle.request_tps is None  # none finished: no speed to say
    (first,) = rates({}, [sample(12.0, 500)])  # nothing to compare with yet
    assert first.generation_tps == 0.0
    (other,) = rates({("llamacpp", "tiny"): sample(10.0, 100)}, [sample(12.0, 40, model="big")])
    assert other.generation_tps == 0.0  # another model: no earlier sample of its own


@pytest.mark.parametrize(
    ("text", "size"),
    [("1.5MiB", 1572864), ("12kB", 12000), ("0B", 0), ("7.6GiB", int(7.6 * 2**30)), ("2GB", 2 * 10**9)],
)
def test_docker_sizes_in_both_of_its_units(text, size):
    assert size_bytes(text) == size


def test_a_size_docker_never_prints_is_refused():
    with pytest.raises(ValueError):
        size_bytes("--")
