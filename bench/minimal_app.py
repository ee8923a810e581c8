"""The baseline of `make bench`: FastAPI and one botocore GetItem per request, nothing else.

`uvicorn bench.minimal_app:app` with DYNAMODB_HOST (a URL) and BENCH_TABLE in the environment.
"""

import os

import botocore.session
from botocore.config import Config
from fastapi import FastAPI, HTTPException

TABLE = os.environ["BENCH_TABLE"]
client = botocore.session.get_session().create_client(
    "dynamodb",
    region_name=os.environ.get("AWS_REGION", "us-east-1"),
    endpoint_url=os.environ["DYNAMODB_HOST"],
    config=Config(parameter_validation=False, retries={"mode": "standard", "max_attempts": 3}),
)
app = FastAPI()


def plain(value: dict[str, str]) -> object:
    """{"S": "x"} -> "x", {"N": "3"} -> 3, {"N": "7.25"} -> 7.25."""
    ((kind, raw),) = value.items()
    if kind == "N":
        return float(raw) if "." in raw or "e" in raw.lower() else int(raw)
    return raw


@app.get("/api/v1/passengers/{passenger_id}")
def get_passenger(passenger_id: str) -> dict[str, object]:
    item = client.get_item(TableName=TABLE, Key={"passenger_id": {"S": passenger_id}}).get("Item")
    if item is None:
        raise HTTPException(404, f"no passenger {passenger_id}")
    return {name: plain(value) for name, value in item.items()}
