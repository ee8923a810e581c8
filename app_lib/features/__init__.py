"""One folder per feature; each declares `FEATURE` in its `__init__.py`."""
