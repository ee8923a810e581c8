"""`make bench`: CPU per request of the serving process, side by side, plus what users see.

1. CPU per request (run.py, cpu.py): app-lib and a minimal FastAPI + botocore app
   (minimal_app.py) under the same uvicorn command line, on one embedded database (moto, locked),
   the requests of all series taking turns; GET by id app-lib vs minimal, and the filtered page of
   50 app-lib vs the bare botocore Query it sends. Targets: 1.10x and 1.40x.
2. The embedded database as users see it (served.py): `python -m app_lib serve` as `make run`
   starts it; the page of 50 (p50 <= 20 ms) and ten concurrent limit=1000 pages (all 200).
3. Concurrency and scale-out (served.py): 8 clients, 1 and 2 uvicorn workers, one database.
4. Where the CPU goes (profile.py, profile_server.py): cProfile of the serving process, by layer
   and hot spot, and the pieces timed again in-process without a profiler.
5. Read cost and bulk load (readcost.py): items examined per page, 1k vs 100k rows; seed path vs
   save().

It prints a table and writes bench/results.json. Not part of `make test`. About 4-5 minutes on
2 cores. Options: `--quick`, `--only cpu,profile,...`, `--profiles DIR` (keep the .pstats
files), `--strict` (exit 1 when a target is missed).
"""
