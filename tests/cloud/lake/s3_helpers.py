"""Helpers of the object-storage lake tests: the moto S3 server's client, the lake's storage
options for it, and the keys under a prefix."""

from __future__ import annotations

from tests.conftest import MOTO_BUCKET as BUCKET
from tests.conftest import MOTO_CREDENTIALS as CREDENTIALS


def s3_client(endpoint: str):  # type: ignore[no-untyped-def]
    """A boto3 S3 client of the moto server at ``endpoint``."""
    import boto3

    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id=CREDENTIALS["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
    )


def s3_options(endpoint: str) -> dict[str, str]:
    """``lake_storage_options`` for the moto server at ``endpoint``."""
    return {"AWS_ENDPOINT_URL": endpoint, "AWS_ALLOW_HTTP": "true", "AWS_REGION": "us-east-1"}


def s3_keys(endpoint: str, prefix: str) -> list[str]:
    """Every key under ``prefix`` in the lake bucket, sorted."""
    pages = (
        s3_client(endpoint).get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix)
    )
    return sorted(o["Key"] for page in pages for o in page.get("Contents", []))
