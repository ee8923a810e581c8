"""Jobs: long work off the request path. Submit (202), follow, cancel; workers run the handlers
that features register in `app_lib.common.jobs`."""

from app_lib.common.feature import Feature
from app_lib.features.jobs import queue, worker
from app_lib.features.jobs.routes import root_router, router
from app_lib.features.jobs.table import JobKeyTable, JobTable

FEATURE = Feature(
    name="jobs",
    router=router,
    tables=(JobTable, JobKeyTable),
    on_start=queue.start,
    root_router=root_router,
    background=(worker.start_background,),
)
