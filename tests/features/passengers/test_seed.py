"""Seeding: all-or-nothing validation, idempotent batch writes, the command line."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import pytest

from app_lib.features.passengers.data_service import PassengerDataService
from app_lib.features.passengers.seed import (
    BUNDLED,
    CsvRejectedError,
    ProgressBar,
    load_file,
    parse_csv,
)
from app_lib.features.passengers.table import PassengerTable
from tests.factories import record_operations

HEADER = "PassengerId,Survived,Pclass,Name,Sex,Age,SibSp,Parch,Ticket,Fare,Cabin,Embarked\n"


def test_bundled_file_loads_in_batches_of_25_and_twice_leaves_891(tables: str) -> None:
    with record_operations(PassengerTable) as calls:
        assert load_file() == 891
    batches = [params for name, params in calls if name == "BatchWriteItem"]
    sizes = [len(next(iter(p["RequestItems"].values()))) for p in batches]
    assert sizes == [25] * 35 + [16]
    assert load_file() == 891
    assert PassengerDataService().count() == 891


def test_bad_rows_are_refused_by_line_and_nothing_is_written(tables: str, tmp_path: Path) -> None:
    good = BUNDLED.read_text().splitlines(keepends=True)[1:4]
    bad = [
        '900,1,4,"Four, Mr. Class",male,30,0,0,X1,5,,S\n',  # line 5: pclass 4
        '901,1,1,"Neg, Mrs. Age",female,-2,0,0,X2,5,,S\n',  # line 6: negative age
        '902,1,1,"Who, Mr. X",x,20,0,0,X3,5,,Z\n',  # line 7: sex and port
        '2,1,1,"Dup, Mr. Id",male,20,0,0,X4,5,,S\n',  # line 8: repeats line 3
    ]
    path = tmp_path / "bad.csv"
    path.write_text(HEADER + "".join(good + bad))
    with pytest.raises(CsvRejectedError) as caught:
        load_file(path)
    problems = caught.value.problems
    assert [p.split(":")[0] for p in problems] == ["line 5", "line 6", "line 7", "line 8"]
    assert "Pclass" in problems[0] and "Age" in problems[1]
    assert "Sex" in problems[2] and "Embarked" in problems[2] and "repeats line 3" in problems[-1]
    assert PassengerDataService().count() == 0


def test_missing_columns_are_refused() -> None:
    with pytest.raises(CsvRejectedError) as caught:
        parse_csv("PassengerId,Name\n1,A\n")
    assert "missing column" in caught.value.problems[0]


def test_command_line_loads_a_file_and_reports_bad_rows(
    tables: str, dynamodb_endpoint: str, tmp_path: Path
) -> None:
    env = {**os.environ, "DYNAMODB_HOST": dynamodb_endpoint, "APP_NAMESPACE": tables}
    small = tmp_path / "small.csv"
    small.write_text("".join(BUNDLED.read_text().splitlines(keepends=True)[:31]))
    command = [sys.executable, "-m", "app_lib", "seed", "passengers", "--file"]
    done = subprocess.run(
        [*command, str(small)], env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    assert "seeded 30 items" in done.stderr
    assert PassengerDataService().count() == 30

    broken = tmp_path / "broken.csv"
    broken.write_text(HEADER + '5000,2,1,"A, Mr. B",male,20,0,0,T,1,,S\n')
    failed = subprocess.run(
        [*command, str(broken)], env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert failed.returncode == 1
    assert "line 2: Survived" in failed.stderr and "Traceback" not in failed.stderr
    assert PassengerDataService().count() == 30


def test_the_progress_bar_shows_items_rate_and_time_left() -> None:
    out = io.StringIO()
    bar = ProgressBar(1000, width=10, stream=out)
    assert bar.line(250, 2.0) == "[##--------] 250/1000  125 items/s  00:06 left"
    assert bar.line(0, 0.0).endswith("0/1000  0 items/s  --:-- left")
    bar(1000)
    assert out.getvalue().startswith("\r[##########] 1000/1000") and out.getvalue().endswith("\n")
    assert not ProgressBar(0, stream=out).enabled
