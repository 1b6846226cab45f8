"""The monitor's series: rows of the store's reads pivoted into chart lines."""

from __future__ import annotations

import time

from ecosms_gw.store.monitor import pivot


def test_lines_share_times_and_a_missing_value_is_none() -> None:
    rows = [{"at": 20.0, "line": "p95", "value": 3}, {"at": 10.0, "line": "p50", "value": 1},
            {"at": 20.0, "line": "p50", "value": 2}]
    series = pivot(rows)
    assert series.times == (10.0, 20.0)
    assert series.lines == {"p50": (1.0, 2.0), "p95": (None, 3.0)}


def test_a_rate_is_zero_where_nothing_happened_over_its_whole_span() -> None:
    now = time.time()
    busy = now // 10 * 10 - 60
    series = pivot([{"at": busy, "line": "main", "value": 15}], zero=True, step=10, span=900)
    assert 90 <= len(series.times) <= 92 and series.times == tuple(sorted(series.times))
    assert series.times[0] >= now - 910 and series.times[-1] <= now
    assert sum(series.lines["main"]) == 15 and series.lines["main"][series.times.index(busy)] == 15
    assert set(series.lines["main"]) == {0.0, 15.0}


def test_no_rows_no_points() -> None:
    assert pivot([], zero=True, step=10, span=900).times == ()
