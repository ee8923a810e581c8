"""passengers: the reference feature, the Titanic passenger list."""

from app_lib.common.feature import Feature
from app_lib.features.passengers import jobs
from app_lib.features.passengers.routes import router
from app_lib.features.passengers.seed import load_file
from app_lib.features.passengers.table import PassengerTable

jobs.register()

FEATURE = Feature(name="passengers", router=router, tables=(PassengerTable,), seed=load_file)
