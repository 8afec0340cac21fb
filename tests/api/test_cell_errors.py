"""A null or non-numeric cell is a 422 that names its row and feature, whatever the body's size
(small bodies are parsed inline, large ones in a thread with the matrix built early) and
whether rows are positional or by feature name.
"""

from typing import Any

import httpx
import pytest

from training.data import load_dataset

ROW = [5.1, 3.5, 1.4, 0.2]
NAMES = load_dataset("iris").feature_names
BAD_ROW = 2_500  # in the large bodies: far past the 64 KiB inline limit
BAD_CELLS: list[tuple[object, str]] = [
    (None, "a missing value (null or NaN)"),
    ("x", "'x' is not a number"),
    ("3.5", "'3.5' is not a number"),
    (True, "True is not a number"),
    ([1.0], "list is not a number"),  # containers are named, not echoed
    ({"a": 1}, "dict is not a number"),
]


def _rows(bad: object, count: int, by_name: bool) -> list[Any]:
    rows: list[Any] = [list(ROW) for _ in range(count)]
    rows[-1][1] = bad
    if by_name:
        return [dict(zip(NAMES, row, strict=True)) for row in rows]
    return rows


@pytest.mark.parametrize(("bad", "says"), BAD_CELLS, ids=[repr(c) for c, _ in BAD_CELLS])
@pytest.mark.parametrize("count", [1, BAD_ROW + 1], ids=["small", "large"])
@pytest.mark.parametrize("by_name", [False, True], ids=["positional", "by-name"])
async def test_a_bad_cell_is_a_422_naming_its_row_and_feature(
    client: httpx.AsyncClient, bad: object, says: str, count: int, by_name: bool
) -> None:
    answer = await client.post(
        "/models/iris/predict", json={"instances": _rows(bad, count, by_name)}
    )

    assert answer.status_code == 422
    error = answer.json()["error"]
    assert error["code"] == "invalid_input"
    assert error["message"].startswith(f"row {count - 1}, feature 1 ({NAMES[1]}): {says}")


async def test_a_huge_string_cell_is_not_echoed_back_whole(client: httpx.AsyncClient) -> None:
    answer = await client.post(
        "/models/iris/predict", json={"instances": [[1, "z" * 100_000, 1, 1]]}
    )

    assert answer.status_code == 422
    assert len(answer.json()["error"]["message"]) < 200
