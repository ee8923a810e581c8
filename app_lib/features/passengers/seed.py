"""Loading passengers from Kaggle-format CSV: validate every row first, then batch-write."""

from __future__ import annotations

import csv
import io
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, TextIO

from pydantic import ValidationError

from app_lib.common.errors import UnprocessableError
from app_lib.features.passengers.data_service import PassengerDataService
from app_lib.features.passengers.dto import PassengerCreate
from app_lib.features.passengers.table import PassengerTable

BUNDLED = Path(__file__).parent / "data" / "titanic.csv"
COLUMNS = {
    "PassengerId": "passenger_id",
    "Survived": "survived",
    "Pclass": "pclass",
    "Name": "name",
    "Sex": "sex",
    "Age": "age",
    "SibSp": "sibsp",
    "Parch": "parch",
    "Ticket": "ticket",
    "Fare": "fare",
    "Cabin": "cabin",
    "Embarked": "embarked",
}
MAX_PROBLEMS = 50


class CsvRejectedError(UnprocessableError):
    """The file has bad rows; nothing was written. `problems` has one line per bad row."""

    title = "Invalid data file"

    def __init__(self, problems: list[str]) -> None:
        shown = problems[:MAX_PROBLEMS]
        more = len(problems) - len(shown)
        super().__init__(
            f"{len(problems)} bad row(s); nothing was written", problems=shown, more=max(more, 0)
        )
        self.problems = problems


def _describe(error: ValidationError) -> str:
    parts = []
    for item in error.errors():
        field = ".".join(str(p) for p in item["loc"]) or "row"
        column = next((k for k, v in COLUMNS.items() if v == field), field)
        parts.append(f"{column}: {item['msg']} (got {item.get('input')!r})")
    return "; ".join(parts)


def parse_rows(rows: Iterable[dict[str, Any]], first_line: int = 1) -> list[PassengerCreate]:
    """Validate every row (dicts with API field names); all problems at once, by line."""
    parsed: list[PassengerCreate] = []
    problems: list[str] = []
    seen: dict[str, int] = {}
    for line, row in enumerate(rows, start=first_line):
        try:
            passenger = PassengerCreate.model_validate(row)
        except ValidationError as error:
            problems.append(f"line {line}: {_describe(error)}")
            continue
        pid = passenger.passenger_id
        if pid is None:
            problems.append(f"line {line}: PassengerId: is required in a data file")
        elif pid in seen:
            problems.append(f"line {line}: PassengerId: {pid!r} repeats line {seen[pid]}")
        else:
            seen[pid] = line
            parsed.append(passenger)
    if problems:
        raise CsvRejectedError(problems)
    return parsed


def parse_csv(text: str) -> list[PassengerCreate]:
    """Kaggle CSV text -> validated passengers. Line numbers count the header as line 1."""
    reader = csv.DictReader(io.StringIO(text))
    missing = [column for column in COLUMNS if column not in (reader.fieldnames or [])]
    if missing:
        raise CsvRejectedError([f"line 1: missing column(s) {', '.join(missing)}"])

    def rows() -> Iterable[dict[str, Any]]:
        for raw in reader:
            extra = raw.pop(None, None)
            row: dict[str, Any] = {
                COLUMNS[k]: (v if v != "" else None) for k, v in raw.items() if k in COLUMNS
            }
            if extra:
                row["extra_values"] = extra  # refused by the DTO: too many fields on the line
            for name in ("sibsp", "parch"):
                if row.get(name) is None:
                    row.pop(name, None)
            yield row

    return parse_rows(rows(), first_line=2)


def write(passengers: list[PassengerCreate], progress: Callable[[int], None] | None = None) -> int:
    """Batch-write validated passengers (an upsert: loading twice leaves one item per id)."""
    items: list[PassengerTable] = [
        p.to_model(p.passenger_id or PassengerDataService.new_id()) for p in passengers
    ]
    return PassengerDataService().batch_put(items, progress)


class ProgressBar:
    """A plain text progress bar on stderr for big files on a terminal: items, rate, time left."""

    def __init__(self, total: int, width: int = 30, stream: TextIO | None = None) -> None:
        self.total, self.width = total, width
        self.stream = stream or sys.stderr
        self.enabled = total > 0 and (stream is not None or sys.stderr.isatty())
        self.started = time.monotonic()

    def line(self, done: int, elapsed: float) -> str:
        filled = self.width * done // self.total
        bar = "#" * filled + "-" * (self.width - filled)
        rate = done / elapsed if elapsed > 0 else 0.0
        left = (self.total - done) / rate if rate > 0 else None
        eta = "--:--" if left is None else f"{int(left) // 60:02d}:{int(left) % 60:02d}"
        return f"[{bar}] {done}/{self.total}  {rate:,.0f} items/s  {eta} left"

    def __call__(self, done: int) -> None:
        if not self.enabled:
            return
        end = "\n" if done >= self.total else ""
        text = self.line(done, time.monotonic() - self.started)
        print(f"\r{text}", end=end, file=self.stream, flush=True)


def load_file(path: Path | None = None) -> int:
    """Load a CSV file (default: the bundled Titanic list). Bad rows: nothing is written."""
    try:
        text = (path or BUNDLED).read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as error:
        raise CsvRejectedError(
            [f"the file is not UTF-8 (byte {error.start}); save it as UTF-8 and load it again"]
        ) from None
    passengers = parse_csv(text)
    return write(passengers, ProgressBar(len(passengers)))
