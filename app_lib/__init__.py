"""app-lib: FastAPI on DynamoDB, in the PynamoDB feature-folder pattern."""

__version__ = "0.1.0"
