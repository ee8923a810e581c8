"""Passenger data access: the generic service, told which indexes serve which filters."""

from __future__ import annotations

import builtins
from collections import defaultdict
from collections.abc import Iterable
from typing import Any

from app_lib.common.aws_errors import aws_errors
from app_lib.common.data.pynamodb_data_service import IndexPlan, PynamoDataService
from app_lib.features.passengers.table import PassengerTable

STATS_ATTRIBUTES = ["survived", "pclass", "sex", "embarked"]


class PassengerDataService(PynamoDataService[PassengerTable]):
    model = PassengerTable
    # Each filter combination is a Query: the planner picks the index that turns the most
    # filters into key conditions (hash key, then the range-key prefix).
    index_plans = (
        IndexPlan(PassengerTable.by_pclass, "pclass", ("sex",)),
        IndexPlan(PassengerTable.by_sex, "sex", ("survived",)),
        IndexPlan(PassengerTable.by_survived, "survived", ("embarked",)),
        IndexPlan(PassengerTable.by_embarked, "embarked", ("pclass",)),
    )

    def by_ticket(self, ticket: str) -> builtins.list[PassengerTable]:
        """Every passenger on a ticket (tickets are shared by families and groups)."""
        with aws_errors():
            return builtins.list(PassengerTable.by_ticket.query(ticket))

    def stats_rows(self) -> Iterable[PassengerTable]:
        """Only the four attributes the statistics need, over the whole table."""
        with aws_errors():
            yield from PassengerTable.scan(attributes_to_get=STATS_ATTRIBUTES, page_size=1000)

    def stats(self) -> dict[str, Any]:
        """Survival counts overall and by class, sex, class and sex, and port of embarkation."""
        overall = [0, 0]
        groups: dict[str, dict[str, list[int]]] = defaultdict(lambda: defaultdict(lambda: [0, 0]))
        pairs: dict[str, dict[str, list[int]]] = defaultdict(lambda: defaultdict(lambda: [0, 0]))
        for row in self.stats_rows():
            survived = int(row.survived or 0)
            pclass = str(int(row.pclass))
            counters = [
                overall,
                groups["by_class"][pclass],
                groups["by_sex"][row.sex],
                groups["by_embarked"][row.embarked or "unknown"],
                pairs[pclass][row.sex],
            ]
            for counter in counters:
                counter[0] += survived
                counter[1] += 1
        return {
            "overall": _rate(overall),
            **{name: _rates(values) for name, values in sorted(groups.items())},
            "by_class_and_sex": {key: _rates(values) for key, values in sorted(pairs.items())},
        }


def _rate(counts: list[int]) -> dict[str, Any]:
    survived, total = counts
    return {
        "survived": survived,
        "total": total,
        "rate": round(survived / total, 4) if total else None,
    }


def _rates(values: dict[str, list[int]]) -> dict[str, dict[str, Any]]:
    return {key: _rate(counts) for key, counts in sorted(values.items())}
