"""SharedCounts: the drift window every worker adds to, by rows and by time."""

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from serving.dataplane.drift_window import SEGMENTS, DriftWindow, SharedCounts, read_header


def _header(window: DriftWindow) -> dict[str, Any]:
    return {"model": "m", "version": 1, "window": {"rows": window.rows, "seconds": window.seconds}}


def _ones(rows: int) -> np.ndarray:
    return np.full((2, 3), rows, dtype=np.int64)


@pytest.mark.parametrize(
    ("text", "window"),
    [
        ("10000", DriftWindow(rows=10_000)),
        ("15m", DriftWindow(seconds=900.0)),
        ("90s", DriftWindow(seconds=90.0)),
        ("1h", DriftWindow(seconds=3600.0)),
        ("0", DriftWindow()),
    ],
)
def test_the_window_setting_names_rows_or_a_time(text: str, window: DriftWindow) -> None:
    assert DriftWindow.parse(text) == window


def test_an_unknown_window_unit_is_refused() -> None:
    with pytest.raises(ValueError, match="drift window"):
        DriftWindow.parse("10d")


def test_two_openers_of_one_file_see_each_others_counts(tmp_path: Path) -> None:
    window = DriftWindow(rows=1000)
    first = SharedCounts(tmp_path / "v.counts", _header(window), 2, 3)
    second = SharedCounts(tmp_path / "v.counts", _header(window), 2, 3)

    first.add(_ones(30), 30, now=0.0)
    second.add(_ones(40), 40, now=0.0)

    counts, rows = first.read(now=0.0)
    assert rows == 70
    assert counts.tolist() == [[70] * 3] * 2
    assert read_header(tmp_path / "v.counts") == _header(window)


def test_a_rows_window_forgets_the_oldest_segment_once_it_is_full(tmp_path: Path) -> None:
    counts_file = SharedCounts(tmp_path / "v.counts", _header(DriftWindow(rows=100)), 2, 3)

    for _ in range(SEGMENTS * 3):  # 300 rows through a 100-row window, 10 at a time
        counts_file.add(_ones(10), 10, now=0.0)

    _, rows = counts_file.read(now=0.0)
    assert rows == 100


def test_a_time_window_drops_counts_older_than_the_window(tmp_path: Path) -> None:
    counts_file = SharedCounts(tmp_path / "v.counts", _header(DriftWindow(seconds=60)), 2, 3)
    counts_file.add(_ones(5), 5, now=1000.0)
    counts_file.add(_ones(7), 7, now=1030.0)

    assert counts_file.read(now=1031.0)[1] == 12
    assert counts_file.read(now=1065.0)[1] == 7  # the first segment is past the minute
    assert counts_file.read(now=1200.0)[1] == 0


def test_a_file_written_for_another_window_starts_again_from_zero(tmp_path: Path) -> None:
    old = SharedCounts(tmp_path / "v.counts", _header(DriftWindow(rows=100)), 2, 3)
    old.add(_ones(10), 10, now=0.0)
    old.close()

    new = SharedCounts(tmp_path / "v.counts", _header(DriftWindow(rows=500)), 2, 3)

    assert new.read(now=0.0)[1] == 0
