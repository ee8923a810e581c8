"""`make bench`: measured ratios for app-lib against a real (moto server) database.

Three measurements, all in one run on one moto server, with the app under test in its own
uvicorn process (`python -m app_lib serve`), as deployed:

- overhead: GET /api/v1/passengers/{id} over HTTP vs a bare botocore GetItem of the same item;
- read cost: items examined (ScannedCount) and time for a filtered page, 1,000 vs 100,000 rows;
- bulk load: items per second of the seed path (BatchWriteItem) vs one save() per item.

It prints a table and writes bench/results.json. Not part of `make test`. About 3 minutes on
2 cores, most of it loading the 100,000 rows. Options: `--quick` (1k vs 10k rows, fewer rounds),
`--strict` (exit 1 when a target is missed), `--app-python PATH` (run the app processes with
another interpreter, e.g. a venv with uvicorn[standard], to measure such a change).
"""
