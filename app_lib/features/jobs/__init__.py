"""Jobs: long work off the request path. Submit (202), follow, cancel; workers run the handlers
that features register in `app_lib.common.jobs`."""

from app_lib.common.feature import Feature
from app_lib.features.jobs import cli, queue, runner
from app_lib.features.jobs.routes import root_router, router
from app_lib.features.jobs.settings import JobsSettings
from app_lib.features.jobs.table import JobKeyTable, JobTable

FEATURE = Feature(
    name="jobs",
    router=router,
    tables=(JobTable, JobKeyTable),
    # Its result, the queue (or None), is the feature's state: the routes read it with
    # `feature_state(app, "jobs")`, the worker thread gets it as `Startup.state`, the worker
    # command from `open_database(...).states["jobs"]`.
    on_start=queue.start,
    root_router=root_router,
    background=(runner.start_background,),
    settings=JobsSettings,
    commands=cli.commands,
)
