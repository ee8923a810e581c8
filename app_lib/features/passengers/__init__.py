"""passengers: the reference feature, the Titanic passenger list."""

from app_lib.common.auth import public_reads
from app_lib.common.feature import Feature
from app_lib.features.passengers import jobs
from app_lib.features.passengers.routes import router
from app_lib.features.passengers.seed import load_file
from app_lib.features.passengers.table import PassengerTable

jobs.register()

# Reads are public; every write needs the scope passengers:write (or admin).
FEATURE = Feature(
    name="passengers",
    router=router,
    dependencies=public_reads("passengers:write"),
    tables=(PassengerTable,),
    seed=load_file,
)
