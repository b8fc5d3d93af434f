"""The benchmark's readers: wrk's report, Prometheus text, /proc, fragments, and the rates
derived from them."""

from __future__ import annotations

import math
import os
from pathlib import Path

import pytest

from bench.cpu import parse_stat, tree_cpu_seconds, us_per
from bench.load import WrkError, WrkResult, parse_duration_ms, parse_wrk
from bench.pictures import spread, steady_rate
from bench.plot import nice_ticks, tick_label
from bench.polls import poll_path
from bench.prometheus import parse, quantile, share_at_most
from bench.web import CpuSlices, Series, Slice, csrf_token, wrong_statuses

WRK_CLEAN = """\
Running 5s test @ http://127.0.0.1:40111/
  1 threads and 64 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     2.86ms  488.56us  19.68ms   93.52%
    Req/Sec    22.41k     1.03k   23.55k    88.00%
  Latency Distribution
     50%    2.80ms
     75%    2.95ms
     90%    3.21ms
     99%    5.98ms
  111498 requests in 5.00s, 16.90MB read
Requests/sec:  22291.67
Transfer/sec:      3.38MB
"""

WRK_WITH_ERRORS = """\
Running 5s test @ http://127.0.0.1:40111/api/v2/figalizations
  1 threads and 256 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency    52.17ms   21.01ms   1.02s    90.11%
    Req/Sec     4.90k   402.11     5.31k    78.00%
  Latency Distribution
     50%   46.80ms
     75%   58.12ms
     90%   71.44ms
     99%    1.02s
  24312 requests in 5.01s, 9.83MB read
  Socket errors: connect 0, read 2, write 0, timeout 5
  Non-2xx or 3xx responses: 12
Requests/sec:   4852.49
Transfer/sec:      1.96MB
"""


def test_a_clean_wrk_report_gives_rate_percentiles_and_no_errors() -> None:
    result = parse_wrk(WRK_CLEAN, connections=64)
    assert result.requests == 111498
    assert result.seconds == 5.0
    assert result.requests_per_second == 22291.67
    assert (result.p50_ms, result.p75_ms, result.p90_ms, result.p99_ms) == (2.8, 2.95, 3.21, 5.98)
    assert result.clean
    assert result.answered_2xx == 111498


def test_non_2xx_answers_and_socket_errors_are_counted_and_make_a_run_unclean() -> None:
    result = parse_wrk(WRK_WITH_ERRORS, connections=256)
    assert result.non_2xx == 12
    assert result.socket_errors == 7
    assert result.p99_ms == 1020.0
    assert result.answered_2xx == 24312 - 12
    assert not result.clean


@pytest.mark.parametrize(
    ("shown", "milliseconds"),
    [("850.00us", 0.85), ("2.40ms", 2.4), ("1.02s", 1020.0), ("1.50m", 90_000.0)],
)
def test_wrk_durations_are_read_in_every_unit(shown: str, milliseconds: float) -> None:
    assert parse_duration_ms(shown) == pytest.approx(milliseconds)


def test_a_report_without_latency_distribution_is_refused() -> None:
    with pytest.raises(WrkError):
        parse_wrk("unable to connect to 127.0.0.1:1 Connection refused", connections=1)


METRICS_BEFORE = """\
# HELP figachechnaya_http_requests_total HTTP requests answered
# TYPE figachechnaya_http_requests_total counter
figachechnaya_http_requests_total{method="POST",route="/api/v2/figalizations",status="201"} 10.0
figachechnaya_image_render_seconds_bucket{le="0.01"} 0.0
figachechnaya_image_render_seconds_bucket{le="0.02"} 0.0
figachechnaya_image_render_seconds_bucket{le="+Inf"} 0.0
"""

METRICS_AFTER = """\
figachechnaya_http_requests_total{method="POST",route="/api/v2/figalizations",status="201"} 110.0
figachechnaya_http_requests_total{method="POST",route="/",status="200"} 40.0
figachechnaya_http_requests_total{method="GET",route="/fragments/hint",status="204"} 500.0
figachechnaya_http_requests_total{method="GET",route="/fragments/total",status="500"} 2.0
figachechnaya_image_render_seconds_bucket{le="0.01"} 20.0
figachechnaya_image_render_seconds_bucket{le="0.02"} 80.0
figachechnaya_image_render_seconds_bucket{le="+Inf"} 100.0
"""


def test_counters_between_two_scrapes_count_only_what_happened_in_between() -> None:
    delta = parse(METRICS_AFTER).minus(parse(METRICS_BEFORE))
    name = "figachechnaya_http_requests_total"
    assert delta.total(name, route="/api/v2/figalizations", status="201") == 100
    assert delta.total(name, method="POST") == 140
    assert delta.buckets("figachechnaya_image_render_seconds") == [
        (0.01, 20.0),
        (0.02, 80.0),
        (math.inf, 100.0),
    ]


def test_answers_a_load_must_never_get_are_reported_by_route_and_status() -> None:
    delta = parse(METRICS_AFTER).minus(parse(METRICS_BEFORE))
    assert wrong_statuses(delta) == {"GET /fragments/total 500": 2.0}


def test_quantiles_are_interpolated_inside_their_bucket() -> None:
    buckets = [(0.01, 20.0), (0.02, 80.0), (math.inf, 100.0)]
    assert quantile(buckets, 0.5) == pytest.approx(0.015)
    assert quantile(buckets, 0.1) == pytest.approx(0.005)
    assert quantile(buckets, 0.99) == 0.02  # in +Inf: the highest finite bound
    assert math.isnan(quantile([(0.01, 0.0), (math.inf, 0.0)], 0.5))


def test_the_share_within_a_bucket_bound_is_exact() -> None:
    buckets = [(0.5, 90.0), (1.0, 99.0), (math.inf, 100.0)]
    assert share_at_most(buckets, 1.0) == 0.99
    with pytest.raises(ValueError, match="bucket"):
        share_at_most(buckets, 0.7)


def test_the_csrf_token_is_read_from_the_hidden_input_whatever_the_attribute_order() -> None:
    page = '<form><input type="hidden" name="_csrf_token" value="abc&amp;def"/></form>'
    assert csrf_token(page) == "abc&def"
    assert csrf_token('<input value="t1" name="_csrf_token" type="hidden">') == "t1"
    with pytest.raises(RuntimeError):
        csrf_token("<form></form>")


def test_the_poll_path_carries_the_version_the_fragment_shows() -> None:
    fragment = '<p class="total" id="total" hx-get="/fragments/total?v=1234" hx-trigger="every 2s">'
    assert poll_path(fragment) == "/fragments/total?v=1234"


def test_jobs_per_second_are_counted_between_10_and_90_percent_done() -> None:
    samples = [(0.0, 0), (1.0, 0), (2.0, 10), (3.0, 50), (4.0, 90), (5.0, 100)]
    assert steady_rate(samples, 100) == pytest.approx(40.0)  # 10 → 90 done in 2 s


def test_percentiles_of_timings() -> None:
    timings = [float(n) for n in range(1, 101)]
    result = spread(timings)
    assert result.p50 == 50.5
    assert result.p99 == pytest.approx(99.01)


def test_plot_ticks_are_round_and_reach_the_top() -> None:
    assert nice_ticks(22_291) == [0, 5000, 10_000, 15_000, 20_000, 25_000]
    assert nice_ticks(6.0) == [0, 2, 4, 6]
    assert nice_ticks(0) == [0.0, 1.0]
    assert tick_label(20_000) == "20\u2009000"
    assert tick_label(2.5) == "2.5"


def stat_line(pid: int, comm: str, ppid: int, ticks: tuple[int, int, int, int]) -> str:
    """A /proc/PID/stat line (proc(5)): ppid is field 4 (the process group, field 5, is the
    pid: every process here called setsid() like PostgreSQL's backends); utime, stime,
    cutime, cstime are fields 14 to 17."""
    utime, stime, cutime, cstime = ticks
    middle = f"S {ppid} {pid} {pid} 0 -1 4194560 100 0 0 0 {utime} {stime} {cutime} {cstime}"
    return f"{pid} ({comm}) {middle} 20 0 1 0 500 1000000 200 18446744073709551615\n"


def test_proc_stat_cpu_fields_are_read_after_the_command_name_even_with_spaces_and_parens() -> None:
    times = parse_stat(stat_line(42, "uvicorn (worker) 1", 40, (250, 50, 30, 20)), ticks=100)
    assert (times.ppid, times.pgrp) == (40, 42)
    assert times.own_seconds == pytest.approx(3.0)
    assert times.children_seconds == pytest.approx(0.5)


def test_a_process_trees_cpu_counts_its_descendants_and_their_reaped_children_only(
    tmp_path: Path,
) -> None:
    processes = {
        "40": stat_line(40, "postgres", 1, (100, 100, 50, 50)),  # root: 2 s + 1 s reaped
        "41": stat_line(41, "postgres: backend", 40, (300, 0, 0, 0)),  # 3 s
        "45": stat_line(45, "postgres: parallel worker", 41, (0, 100, 0, 0)),  # grandchild: 1 s
        "77": stat_line(77, "other", 1, (9_000, 0, 0, 0)),  # not in the tree
    }
    for pid, line in processes.items():
        (tmp_path / pid).mkdir()
        (tmp_path / pid / "stat").write_text(line)
    (tmp_path / "self").mkdir()  # not a pid: skipped
    (tmp_path / "99").mkdir()  # exited while we looked: no stat file, skipped
    ticks = os.sysconf("SC_CLK_TCK")
    assert tree_cpu_seconds(40, proc=tmp_path) == pytest.approx(700 / ticks)
    assert tree_cpu_seconds(41, proc=tmp_path) == pytest.approx(400 / ticks)
    assert tree_cpu_seconds(12345, proc=tmp_path) == 0.0  # gone: nothing


def wrk_result(requests: int, rate: float, non_2xx: int = 0) -> WrkResult:
    return WrkResult(64, 5.0, requests, rate, 1.0, 1.5, 2.0, 3.0, non_2xx, 0)


def test_cpu_per_request_divides_the_servers_cpu_by_the_requests_answered() -> None:
    series = Series("hello", runs={64: wrk_result(50_000, 10_000.0)}, cpu_seconds={64: 6.5})
    assert series.cpu_us(64) == pytest.approx(130.0)
    with pytest.raises(ValueError, match="no requests"):
        us_per(1.0, 0)


def test_the_cpu_target_is_the_ratio_of_sums_over_interleaved_slices() -> None:
    def cpu_slice(
        hello_requests: int, hello_cpu: float, posts: int, post_cpu: float, forms: int
    ) -> Slice:
        return Slice(
            hello=wrk_result(hello_requests, hello_requests / 5),
            hello_cpu_seconds=hello_cpu,
            post=wrk_result(posts + 10, posts / 5, non_2xx=10),  # only 2xx are stored
            post_cpu_seconds=post_cpu,
            services_cpu_seconds={"postgres": 1.0},
            transactions=100,
            rows=posts,
            form=wrk_result(forms, forms / 5),
            form_cpu_seconds=forms / 5_000,  # 200 µs each
        )

    measured = CpuSlices(
        [cpu_slice(40_000, 5.0, 20_000, 5.0, 18_000), cpu_slice(20_000, 3.0, 10_000, 4.0, 6_000)],
        warmup_answered=7,
    )
    assert measured.slices[0].ratio == pytest.approx(250 / 125)
    assert measured.slices[1].ratio == pytest.approx(400 / 150)
    assert measured.hello_cpu_us == pytest.approx(8.0 / 60_000 * 1e6)
    assert measured.post_cpu_us == pytest.approx(9.0 / 30_000 * 1e6)
    assert measured.ratio == pytest.approx(300 / (8e6 / 60_000))  # not the mean of the slices
    assert measured.answered == 30_007 + 24_000  # the forms are stored and accounted too
    # the form target: of the sums, so the slow second round weighs by its own rate
    assert measured.slices[0].form_share == pytest.approx(0.9)  # 3,600 ÷ 4,000 req/s
    assert measured.form_share == pytest.approx(4_800 / 6_000)  # not the mean, 0.75
    assert measured.form_cpu_us == pytest.approx(200.0)
    assert measured.post_rate == pytest.approx(3_000.0)  # the mean of 4,000 and 2,000 req/s
    [first, second] = measured.thirds()  # two slices: a group each
    assert first.ratio == measured.slices[0].ratio
    assert second.form_share == pytest.approx(0.6)
    fifteen = CpuSlices(measured.slices * 7 + measured.slices[:1])
    assert [len(third.slices) for third in fifteen.thirds()] == [5, 5, 5]
    assert measured.service_cpu_us("postgres") == pytest.approx(2.0 / 30_000 * 1e6)
    assert measured.service_cpu_us("kafka") is None  # not ours to count: no number, not zero
    assert measured.rows_per_transaction == pytest.approx(150.0)
