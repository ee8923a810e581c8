"""The jobs queue: SQS on AWS, or moto's SQS on the embedded server (same API, same code).

A message carries only a job id; the job itself (params, status, result) lives in DynamoDB, so
messages stay far below SQS's size limit and a duplicate delivery can be recognised.
"""

from __future__ import annotations

import json
import logging
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import boto3
from botocore.config import Config

from app_lib.common.aws import install_time_budget
from app_lib.common.aws_errors import aws_errors
from app_lib.common.config import Settings
from app_lib.common.startup import Startup
from app_lib.common.util.pynamodb_util import PynamodbUtil
from app_lib.features.jobs.settings import JobsSettings, get_jobs_settings

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient

log = logging.getLogger(__name__)

DEAD_LETTER_SUFFIX = "-dlq"
# SQS's limit for one message attribute value is large, but the error is for humans.
_MAX_ERROR_ATTRIBUTE = 1000


@dataclass(frozen=True)
class QueueMessage:
    message_id: str
    receipt_handle: str
    body: str
    receive_count: int


class JobQueue:
    """One SQS queue (and its dead-letter queue): send, receive, delete, extend, dead-letter."""

    def __init__(
        self,
        url: str,
        *,
        region: str,
        connect_timeout: float = 2.0,
        read_timeout: float = 5.0,
        retries: int = 2,
        wait_seconds: int = 20,
        dead_letter_url: str | None = None,
        request_timeout: float | None = None,
    ) -> None:
        self.url = url
        self.wait_seconds = wait_seconds
        self._dead_letter_url = dead_letter_url
        self._lock = threading.Lock()
        endpoint = endpoint_for(url)
        self._client = _client(region, endpoint, connect_timeout, read_timeout, retries)
        if request_timeout is not None:
            # Like the database's: one time budget per call, retries included. Not the long
            # poll below, which waits on purpose.
            install_time_budget(self._client, request_timeout, read_timeout)
        # A long poll holds the connection for up to wait_seconds: it needs its own read timeout.
        self._poller = _client(region, endpoint, connect_timeout, wait_seconds + 10.0, retries)

    @classmethod
    def from_settings(cls, settings: Settings, jobs: JobsSettings, url: str) -> JobQueue:
        return cls(
            url,
            region=settings.aws_region,
            connect_timeout=settings.dynamodb_connect_timeout,
            read_timeout=settings.dynamodb_read_timeout,
            retries=settings.dynamodb_max_retries,
            wait_seconds=jobs.jobs_wait_seconds,
            request_timeout=settings.dynamodb_request_timeout,
        )

    def send(self, body: dict[str, Any]) -> str:
        """Queue a message; returns its id."""
        with aws_errors():
            response = self._client.send_message(QueueUrl=self.url, MessageBody=json.dumps(body))
        return response["MessageId"]

    def receive(self, max_messages: int = 1, wait_seconds: int | None = None) -> list[QueueMessage]:
        wait = self.wait_seconds if wait_seconds is None else wait_seconds
        with aws_errors():
            response = self._poller.receive_message(
                QueueUrl=self.url,
                MaxNumberOfMessages=max_messages,
                WaitTimeSeconds=wait,
                MessageSystemAttributeNames=["ApproximateReceiveCount"],
            )
        return [
            QueueMessage(
                message_id=item["MessageId"],
                receipt_handle=item["ReceiptHandle"],
                body=item["Body"],
                receive_count=int(item.get("Attributes", {}).get("ApproximateReceiveCount", "1")),
            )
            for item in response.get("Messages", [])
        ]

    def delete(self, receipt_handle: str) -> None:
        with aws_errors():
            self._client.delete_message(QueueUrl=self.url, ReceiptHandle=receipt_handle)

    def change_visibility(self, receipt_handle: str, seconds: int) -> None:
        """Keep a message hidden `seconds` from now (a heartbeat), or show it again (0)."""
        with aws_errors():
            self._client.change_message_visibility(
                QueueUrl=self.url, ReceiptHandle=receipt_handle, VisibilityTimeout=seconds
            )

    def dead_letter(self, body: str, job_id: str, error: str) -> bool:
        """Copy a message to the dead-letter queue; False when the queue has none."""
        url = self.dead_letter_url()
        if url is None:
            log.error("the jobs queue has no dead-letter queue", extra={"job_id": job_id})
            return False
        with aws_errors():
            self._client.send_message(
                QueueUrl=url,
                MessageBody=body,
                MessageAttributes={
                    "job_id": {"DataType": "String", "StringValue": job_id},
                    "error": {
                        "DataType": "String",
                        "StringValue": error[:_MAX_ERROR_ATTRIBUTE] or "-",
                    },
                },
            )
        return True

    def dead_letter_url(self) -> str | None:
        """The dead-letter queue named by the queue's RedrivePolicy (looked up once)."""
        with self._lock:
            if self._dead_letter_url is None:
                self._dead_letter_url = self._find_dead_letter_url()
            return self._dead_letter_url or None

    def _find_dead_letter_url(self) -> str:
        with aws_errors():
            attributes = self._client.get_queue_attributes(
                QueueUrl=self.url, AttributeNames=["RedrivePolicy"]
            ).get("Attributes", {})
            policy = attributes.get("RedrivePolicy")
            if not policy:
                return ""
            # arn:aws:sqs:<region>:<account>:<name>
            *_, account, name = json.loads(policy)["deadLetterTargetArn"].split(":")
            return self._client.get_queue_url(QueueName=name, QueueOwnerAWSAccountId=account)[
                "QueueUrl"
            ]


def _client(
    region: str, endpoint: str | None, connect: float, read: float, retries: int
) -> SQSClient:
    config = Config(
        connect_timeout=connect,
        read_timeout=read,
        retries={"max_attempts": retries, "mode": "standard"},
    )
    client: SQSClient = boto3.session.Session().client(
        "sqs", region_name=region, endpoint_url=endpoint, config=config
    )
    return client


def endpoint_for(queue_url: str) -> str | None:
    """The endpoint serving a queue URL: None (botocore's default) for AWS, else its origin."""
    parts = urlsplit(queue_url)
    if parts.hostname and parts.hostname.endswith(".amazonaws.com"):
        return None
    return f"{parts.scheme}://{parts.netloc}"


def default_queue_name(settings: Settings, namespace: str | None = None) -> str:
    """`{namespace}_{env}_jobs`, like the table; SQS names do not allow '.'."""
    ns = settings.app_namespace if namespace is None else namespace
    return str(PynamodbUtil.table_name("jobs", ns, settings.app_env)).replace(".", "-")


def ensure_queue(
    settings: Settings,
    endpoint: str,
    name: str,
    *,
    visibility_timeout: int | None = None,
    max_attempts: int | None = None,
    jobs: JobsSettings | None = None,
) -> str:
    """Create (idempotently) a queue and its dead-letter queue off AWS; returns the queue URL.
    The visibility timeout and attempts default to the jobs settings'."""
    jobs = jobs or get_jobs_settings()
    client = _client(
        settings.aws_region,
        endpoint,
        settings.dynamodb_connect_timeout,
        settings.dynamodb_read_timeout,
        settings.dynamodb_max_retries,
    )
    attempts = jobs.jobs_max_attempts if max_attempts is None else max_attempts
    visibility = jobs.jobs_visibility_timeout if visibility_timeout is None else visibility_timeout
    with aws_errors():
        dead_letter = client.create_queue(QueueName=name + DEAD_LETTER_SUFFIX)["QueueUrl"]
        arn = client.get_queue_attributes(QueueUrl=dead_letter, AttributeNames=["QueueArn"])[
            "Attributes"
        ]["QueueArn"]
        # The worker moves a job's message to the dead-letter queue itself when it gives up.
        # Redrive is the safety net for messages it never gets to record (a worker that crashes
        # on every receive, a malformed body): one receive more than the attempts, so that the
        # receive after the last crashed attempt still reaches a worker, which marks it FAILED.
        redrive = {"deadLetterTargetArn": arn, "maxReceiveCount": str(attempts + 1)}
        url = client.create_queue(
            QueueName=name,
            Attributes={"VisibilityTimeout": str(visibility), "RedrivePolicy": json.dumps(redrive)},
        )["QueueUrl"]
    log.info("jobs queue ready", extra={"queue": url})
    return url


def start(startup: Startup, jobs: JobsSettings | None = None) -> JobQueue | None:
    """Start-up hook: the jobs feature's queue (created off AWS when missing), or None when none
    is configured (submits then answer 503). What it returns is the feature's state: the routes
    read it with `feature_state(app, "jobs")`, the worker thread gets it as `Startup.state`."""
    jobs = jobs or get_jobs_settings()
    settings, host = startup.settings, startup.host
    url = jobs.jobs_queue_url
    if not url and settings.embedded and host:
        url = ensure_queue(settings, host, default_queue_name(settings), jobs=jobs)
    elif url and host is not None and (endpoint := endpoint_for(url)):
        # Off AWS, a queue URL on a local server: create the queue if it is missing, like tables.
        name = urlsplit(url).path.rstrip("/").rsplit("/", 1)[-1]
        url = ensure_queue(settings, endpoint, name, jobs=jobs)
    if not url:
        log.warning("JOBS_QUEUE_URL is not set: job submits answer 503")
    return JobQueue.from_settings(settings, jobs, url) if url else None
