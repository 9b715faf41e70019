"""Image attachments: uploaded by the browser straight to S3 with a presigned URL, then checked and read by the relay.

    s3://<ATTACHMENTS_BUCKET>/<chatSessionId>/<attachmentId>    one image; its Content-Type the media type declared

Nothing big passes through the function URL (6 MB a request) or the relay's JSON bodies (64 KiB): ``upload`` presigns
a PUT of one image whose media type and exact length are signed (S3 refuses another type or size), valid for
``config.UPLOAD_URL_SECONDS``. A key under a session's prefix is its owner's: the relay presigns one only for the
session's owner, and reads only under the prefix of the session a chat request names, whose owner the same request
checks; another user's attachment id is simply not found there.

At use each image is read whole (GetObject; its size is checked before its body is read) and its type sniffed from
its first bytes, by the magic numbers of PNG, JPEG, WebP and GIF: bytes that are none of those are refused, whatever
the file's name or the media type declared; an image declared as another of the four (a browser's guess from a
name) is sent as what its bytes are. Erasing a conversation deletes every
object under its prefix (``delete_session``); the bucket's lifecycle rule expires any object ``MessageTtlDays``
after its upload, which also takes an upload that lands after an erase, through a URL handed out before it.

The S3 client is created at the first use: a deployment whose users send no images never pays for it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from ulid import ULID

from relay import config
from relay.aws import BoundedClient, create_client, error_code
from relay.errors import (
    ATTACHMENT_NOT_AN_IMAGE,
    ATTACHMENT_NOT_FOUND,
    ATTACHMENT_TOO_LARGE,
    RequestRejected,
    StoreError,
)
from relay.providers.base import Image
from relay.records import Attachment, StoredMessage

__all__ = ["AttachmentRefused", "AttachmentStore", "Upload", "create_s3_client", "earlier_attachments",
           "sniff_media_type"]

# The first bytes of each image format taken (WebP: "RIFF", four bytes of length, "WEBP").
SIGNATURES: tuple[tuple[bytes, int, str], ...] = (
    (b"\x89PNG\r\n\x1a\n", 0, "image/png"),
    (b"\xff\xd8\xff", 0, "image/jpeg"),
    (b"GIF87a", 0, "image/gif"),
    (b"GIF89a", 0, "image/gif"),
    (b"WEBP", 8, "image/webp"),
)
DELETE_BATCH = 1_000  # DeleteObjects' limit, and ListObjectsV2's page
NOT_FOUND_CODES = {"NoSuchKey", "404", "NotFound"}


class AttachmentRefused(RequestRejected):
    """When an attachment a chat request names is missing, too large, or not the image it claims to be."""


@dataclass(frozen=True, slots=True)
class Upload:
    """Where and how the browser uploads one image: a PUT of exactly its bytes, with these headers, before
    ``expires_at``."""

    attachment_id: str
    url: str
    headers: dict[str, str]
    expires_at: str  # ISO 8601, UTC

    def to_json(self) -> dict[str, Any]:
        return {"attachmentId": self.attachment_id, "uploadUrl": self.url, "uploadHeaders": self.headers,
                "expiresAt": self.expires_at}


def create_s3_client() -> Any:
    # Signature V4 signs a presigned PUT's Content-Type and Content-Length, which S3 then enforces (V2 cannot).
    # Virtual-hosted addressing names the bucket's region (<bucket>.s3.<region>.amazonaws.com): botocore's default
    # presigns the global name, which S3 redirects for a day or so after a bucket outside us-east-1 is created, and
    # a browser's preflight cannot follow a redirect. In us-east-1 too (botocore's default there is the global
    # <bucket>.s3.amazonaws.com): the page's policy lists the regional origin (README), and would block the other.
    # An IP endpoint (the local run's moto) stays path-style.
    return create_client("s3", signature_version="s3v4",
                         s3={"addressing_style": "virtual", "us_east_1_regional_endpoint": "regional"})


class S3(BoundedClient):
    service = "S3"


def sniff_media_type(data: bytes) -> str | None:
    """The image type the bytes are, by their magic number; None for anything else."""
    for signature, offset, media_type in SIGNATURES:
        if data[offset:offset + len(signature)] == signature and (offset == 0 or data[:4] == b"RIFF"):
            return media_type
    return None


def earlier_attachments(history: Sequence[StoredMessage], *, images: int, total_bytes: int) -> list[Attachment]:
    """The attachments of earlier user messages that go with a new message, within what the request has room for:
    newest message first, all of a message's images or none, and the first message that does not fit ends it (an
    older one's images without a newer one's would read out of order)."""
    chosen: list[Attachment] = []
    for message in reversed(history):
        if not message.attachments:
            continue
        size = sum(attachment.size for attachment in message.attachments)
        if len(message.attachments) > images or size > total_bytes:
            break
        chosen[:0] = message.attachments
        images -= len(message.attachments)
        total_bytes -= size
    return chosen


class AttachmentStore:
    """The attachments bucket: presigned uploads, images read back for a turn, a conversation's objects erased."""

    def __init__(self, bucket: str, *, client_factory: Callable[[], Any] = create_s3_client,
                 upload_seconds: int = config.UPLOAD_URL_SECONDS) -> None:
        self.bucket = bucket
        self.upload_seconds = upload_seconds
        self.s3 = S3(client_factory)

    async def upload(self, chat_session_id: str, media_type: str, size: int) -> Upload:
        """A presigned PUT for one image of ``media_type`` and exactly ``size`` bytes (checked by the caller: one of
        config.IMAGE_MEDIA_TYPES, at most config.MAX_IMAGE_BYTES). Signing needs no network."""
        attachment_id = str(ULID())
        params = {"Bucket": self.bucket, "Key": _key(chat_session_id, attachment_id), "ContentType": media_type,
                  "ContentLength": size}
        url = await self.s3.call("generate_presigned_url", ClientMethod="put_object", Params=params,
                                 ExpiresIn=self.upload_seconds)
        expires_at = datetime.fromtimestamp(time.time() + self.upload_seconds, UTC)
        return Upload(attachment_id, url, {"Content-Type": media_type},
                      expires_at.isoformat(timespec="seconds").replace("+00:00", "Z"))

    async def view_urls(self, chat_session_id: str, attachments: Sequence[Attachment]) -> dict[str, str]:
        """Presigned GETs of stored images, by attachment id, for a page to show them (``img src``): each served
        as the type its bytes were sniffed as, for ``config.UPLOAD_URL_SECONDS``. Signing needs no network."""
        def sign(client: Any) -> dict[str, str]:
            return {attachment.attachment_id: client.generate_presigned_url(
                "get_object", ExpiresIn=self.upload_seconds,
                Params={"Bucket": self.bucket, "Key": _key(chat_session_id, attachment.attachment_id),
                        "ResponseContentType": attachment.media_type}) for attachment in attachments}

        return await self.s3.run(sign, "presign GetObject") if attachments else {}

    async def read(self, chat_session_id: str, attachment_ids: Sequence[str]) -> list[tuple[Attachment, Image]]:
        """The images a message names, read whole and checked, in order. Raises AttachmentRefused (404: not in the
        session, or not uploaded; 422: over config.MAX_IMAGE_BYTES, or not the image its media type says),
        StoreError when S3 fails."""
        return list(await asyncio.gather(*(self._read(chat_session_id, attachment_id)
                                           for attachment_id in attachment_ids)))

    async def read_stored(self, chat_session_id: str, attachments: Sequence[Attachment]) -> dict[str, Image]:
        """The images stored messages name, by attachment id. One that is gone is left out: the lifecycle rule
        expires an image MessageTtlDays after its upload, while a conversation in use lives on. StoreError when S3
        fails."""
        results = await asyncio.gather(*(self._read(chat_session_id, attachment.attachment_id)
                                         for attachment in attachments), return_exceptions=True)
        images = {}
        for result in results:
            if isinstance(result, AttachmentRefused):
                continue
            if isinstance(result, BaseException):
                raise result
            images[result[0].attachment_id] = result[1]
        return images

    async def _read(self, chat_session_id: str, attachment_id: str) -> tuple[Attachment, Image]:
        def fetch(client: Any) -> tuple[int, bytes]:
            response = client.get_object(Bucket=self.bucket, Key=_key(chat_session_id, attachment_id))
            body = response["Body"]
            try:
                size = int(response["ContentLength"])
                # S3 refuses an upload of another length than the one signed; this guards against anything else.
                data = body.read(config.MAX_IMAGE_BYTES + 1) if size <= config.MAX_IMAGE_BYTES else b""
            finally:
                body.close()
            return size, data

        try:
            size, data = await self.s3.run(fetch, "GetObject")
        except StoreError as exc:
            if error_code(exc) in NOT_FOUND_CODES:
                raise AttachmentRefused(404, ATTACHMENT_NOT_FOUND, f"attachment {attachment_id} is not in this "
                                        "session, or was not uploaded") from None
            raise
        if size > config.MAX_IMAGE_BYTES or len(data) > config.MAX_IMAGE_BYTES:
            raise AttachmentRefused(422, ATTACHMENT_TOO_LARGE, f"attachment {attachment_id} is over "
                                    f"{config.MAX_IMAGE_BYTES} bytes")
        media_type = sniff_media_type(data)
        if media_type is None:
            raise AttachmentRefused(422, ATTACHMENT_NOT_AN_IMAGE, f"attachment {attachment_id} is not a PNG, JPEG, "
                                    "WebP or GIF image, whatever its name or declared type says")
        return Attachment(attachment_id, media_type, len(data)), Image.of(media_type, data)

    async def delete_session(self, chat_session_id: str) -> None:
        """Delete every object under the session's prefix: its images, and any upload never sent with a message.
        Raises StoreError when S3 fails (the erase is finished by asking again)."""
        while True:
            listed = await self.s3.call("list_objects_v2", Bucket=self.bucket, Prefix=_prefix(chat_session_id),
                                        MaxKeys=DELETE_BATCH)
            keys = [{"Key": item["Key"]} for item in listed.get("Contents") or ()]
            if not keys:
                return
            deleted = await self.s3.call("delete_objects", Bucket=self.bucket, Delete={"Objects": keys,
                                                                                         "Quiet": True})
            if deleted.get("Errors"):
                raise StoreError(f"S3 did not delete {len(deleted['Errors'])} objects of a session")


def _prefix(chat_session_id: str) -> str:
    return f"{chat_session_id}/"


def _key(chat_session_id: str, attachment_id: str) -> str:
    return _prefix(chat_session_id) + attachment_id
