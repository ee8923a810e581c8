"""The passengers table: one item per passenger, keyed by PassengerId.

Low-cardinality filters (class, sex, survived, port) are served by four GSIs whose hash key is one
filter and whose range key starts with the next ("female#<id>"), so any one filter, and these
pairs, are DynamoDB key conditions: class+sex, sex+survived, survived+port, port+class. Further
filters ride on the chosen index as filter expressions. Tickets are not unique: a GSI of its own.
"""

from __future__ import annotations

from pynamodb.attributes import NumberAttribute, UnicodeAttribute
from pynamodb.indexes import AllProjection, GlobalSecondaryIndex

from app_lib.common.data.versioned_table import VersionedTable, key_part
from app_lib.common.util.pynamodb_util import PynamodbUtil


class ByPclassIndex(GlobalSecondaryIndex["PassengerTable"]):
    class Meta:
        index_name = "by-pclass"
        projection = AllProjection()

    pclass = NumberAttribute(hash_key=True)
    pclass_sk = UnicodeAttribute(range_key=True)  # sex#id


class BySexIndex(GlobalSecondaryIndex["PassengerTable"]):
    class Meta:
        index_name = "by-sex"
        projection = AllProjection()

    sex = UnicodeAttribute(hash_key=True)
    sex_sk = UnicodeAttribute(range_key=True)  # survived#id


class BySurvivedIndex(GlobalSecondaryIndex["PassengerTable"]):
    class Meta:
        index_name = "by-survived"
        projection = AllProjection()

    survived = NumberAttribute(hash_key=True)
    survived_sk = UnicodeAttribute(range_key=True)  # embarked#id


class ByEmbarkedIndex(GlobalSecondaryIndex["PassengerTable"]):
    """Sparse: passengers with no port of embarkation are not in it."""

    class Meta:
        index_name = "by-embarked"
        projection = AllProjection()

    embarked = UnicodeAttribute(hash_key=True)
    embarked_sk = UnicodeAttribute(range_key=True)  # pclass#id


class ByTicketIndex(GlobalSecondaryIndex["PassengerTable"]):
    class Meta:
        index_name = "by-ticket"
        projection = AllProjection()

    ticket = UnicodeAttribute(hash_key=True)
    passenger_id = UnicodeAttribute(range_key=True)


class PassengerTable(VersionedTable):
    class Meta:
        table_name = PynamodbUtil.env_table_name("passengers")

    passenger_id = UnicodeAttribute(hash_key=True)
    survived = NumberAttribute()  # 0 or 1, as in the Kaggle data
    pclass = NumberAttribute()
    name = UnicodeAttribute()
    sex = UnicodeAttribute()
    age = NumberAttribute(null=True)
    sibsp = NumberAttribute(default=0)
    parch = NumberAttribute(default=0)
    ticket = UnicodeAttribute(null=True)
    fare = NumberAttribute(null=True)
    cabin = UnicodeAttribute(null=True)
    embarked = UnicodeAttribute(null=True)

    pclass_sk = UnicodeAttribute()
    sex_sk = UnicodeAttribute()
    survived_sk = UnicodeAttribute()
    embarked_sk = UnicodeAttribute()

    by_pclass = ByPclassIndex()
    by_sex = BySexIndex()
    by_survived = BySurvivedIndex()
    by_embarked = ByEmbarkedIndex()
    by_ticket = ByTicketIndex()

    derived_attributes = ("pclass_sk", "sex_sk", "survived_sk", "embarked_sk")

    def derive_keys(self) -> None:
        pid = self.passenger_id
        self.pclass_sk = f"{self.sex}#{pid}"
        self.sex_sk = f"{key_part(self.survived)}#{pid}"
        self.survived_sk = f"{self.embarked or ''}#{pid}"
        self.embarked_sk = f"{key_part(self.pclass)}#{pid}"
