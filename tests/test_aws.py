"""The AWS clients on their own: a call and the reading of its answer bounded as one, failures read whatever botocore
raised, and the endpoints the template's empty variables leave to botocore."""

import asyncio
import time

import pytest
from botocore.exceptions import ClientError, ReadTimeoutError

from relay.attachments import create_s3_client
from relay.aws import BoundedClient, error_code
from relay.errors import StoreError


def test_a_call_that_answers_but_whose_answer_reads_slowly_fails_within_its_budget():
    class SlowBody:
        def get_object(self, **kwargs):
            return {"Body": self}

        def read(self):
            time.sleep(2)

    async def read() -> float:
        started = time.monotonic()
        with pytest.raises(StoreError, match="S3 GetObject did not answer in time"):
            client = BoundedClient(SlowBody, call_timeout=0.2)
            client.service = "S3"
            await client.run(lambda s3: s3.get_object(Key="k")["Body"].read(), "GetObject")
        return time.monotonic() - started

    assert asyncio.run(read()) < 1.5  # not the 2 s reading the body would have taken


def test_a_failure_names_aws_error_code_when_there_is_one():
    async def fail(cause: Exception) -> StoreError:
        def work(client: object) -> None:
            raise cause

        try:
            await BoundedClient(object).run(work, "GetObject")
        except StoreError as exc:
            return exc
        raise AssertionError("no failure")

    missing = asyncio.run(fail(ClientError({"Error": {"Code": "NoSuchKey"}}, "GetObject")))
    assert error_code(missing) == "NoSuchKey" and "GetObject failed: ClientError" in str(missing)
    assert error_code(asyncio.run(fail(ReadTimeoutError(endpoint_url="http://s3")))) is None


def test_the_templates_empty_s3_endpoint_is_unset_for_botocore(monkeypatch):
    # Deployed, AWS_ENDPOINT_URL_S3 is "" (declared only for sam local's env file): S3's own regional endpoint is used,
    # so a presigned URL names the bucket's region (a global one would redirect, and a redirect fails CORS).
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", "")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")  # signing is local: any key will do
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "secret")
    url = create_s3_client().generate_presigned_url("put_object", Params={"Bucket": "chat-images", "Key": "S/A"})
    assert url.startswith("https://chat-images.s3.eu-west-1.amazonaws.com/S/A?")
    assert "X-Amz-Algorithm=AWS4-HMAC-SHA256" in url
