"""commerce: products, users and orders in one DynamoDB table (single-table design)."""

from app_lib.common.feature import Feature
from app_lib.features.commerce.routes import router
from app_lib.features.commerce.seed import load_file
from app_lib.features.commerce.table import CommerceTable

FEATURE = Feature(name="commerce", router=router, tables=(CommerceTable,), seed=load_file)
