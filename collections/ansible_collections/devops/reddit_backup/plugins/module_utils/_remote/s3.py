# Copyright: devops.reddit_backup contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""An S3 bucket (or an S3-compatible store, with ``s3_endpoint_url``) as the remote: ``s3://bucket/prefix``.

An object exists only once it is complete: a PUT, or for a large archive a multipart upload that appears at
CompleteMultipartUpload. A push killed half-way leaves an unfinished multipart upload, which no listing shows
(abort them with the bucket's AbortIncompleteMultipartUpload lifecycle rule; a later push of the same archive
aborts those it finds first).

Credentials come from the options (never logged, never in a result), else from boto3's usual chain (the
AWS_* environment variables, ~/.aws, an instance profile).
"""

from __future__ import annotations

import os
import time

from ansible_collections.devops.reddit_backup.plugins.module_utils._errors import BackupError
from ansible_collections.devops.reddit_backup.plugins.module_utils._redact import (
    UNSAFE_CHARACTERS, redact_url, scrub, secrets_of_url, url_problem,
)

PART_SIZE = 64 << 20  # multipart above this; 10000 parts of 64 MiB allow archives up to 625 GiB
MIN_PART_SIZE = 5 << 20  # S3's smallest part: a smaller file was never sent in parts


class S3Store:
    """A prefix in a bucket; paths given to it are relative to the prefix (``daily/x.tar.zst``)."""

    kind = "s3"

    def __init__(self, bucket: str, prefix: str, endpoint_url: str = None, region: str = None, access_key: str = None,
                 secret_key: str = None, session_token: str = None, timeout: float = 30) -> None:
        try:
            import boto3  # pylint: disable=import-outside-toplevel
            from boto3.s3.transfer import TransferConfig  # pylint: disable=import-outside-toplevel
            from botocore.config import Config  # pylint: disable=import-outside-toplevel
            from botocore.exceptions import BotoCoreError, ClientError  # pylint: disable=import-outside-toplevel
        except ImportError:
            raise BackupError("boto3 is needed on this host for an s3:// remote; install it (Debian: apt-get install "
                              "python3-boto3)") from None
        for option, value in (("s3_access_key", access_key), ("s3_secret_key", secret_key),
                              ("s3_session_token", session_token), ("s3_region", region)):
            if value is not None and UNSAFE_CHARACTERS.search(str(value)):
                raise BackupError("%s holds a space, a line break or a control character; remove it" % option)
        if bool(access_key) != bool(secret_key):
            raise BackupError("give both s3_access_key and s3_secret_key, or neither (to use the AWS environment)")
        problem = url_problem(endpoint_url, "s3_endpoint_url") if endpoint_url else None
        if problem:
            raise BackupError(problem)
        self.errors = (BotoCoreError, ClientError)
        self.client_error = ClientError
        self.secrets = [access_key, secret_key, session_token] + (secrets_of_url(endpoint_url) if endpoint_url else [])
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.description = "s3://%s/%s" % (bucket, self.prefix)
        try:
            session = boto3.session.Session(aws_access_key_id=access_key or None,
                                            aws_secret_access_key=secret_key or None,
                                            aws_session_token=session_token or None, region_name=region or None)
            config = Config(connect_timeout=timeout, read_timeout=max(timeout, 60), retries={"max_attempts": 5},
                            s3={"addressing_style": "path"} if endpoint_url else {})
            self.client = session.client("s3", endpoint_url=endpoint_url or None, config=config)
        except (BotoCoreError, ValueError) as error:  # their texts may quote the endpoint or a region
            raise BackupError("cannot set up the S3 client for %s (endpoint %s, region %s): %s; check s3_endpoint_url "
                              "and s3_region" % (self.description, redact_url(endpoint_url) if endpoint_url else
                                                 "AWS", region or "default", scrub(error, self.secrets))) from None
        self.transfer = TransferConfig(multipart_threshold=PART_SIZE, multipart_chunksize=PART_SIZE,
                                       max_concurrency=4)

    def _key(self, relative: str) -> str:
        return "%s/%s" % (self.prefix, relative) if self.prefix else relative

    def _fail(self, error, what: str) -> BackupError:
        code = ""
        if isinstance(error, self.client_error):
            code = error.response.get("Error", {}).get("Code", "")
        hint = ""
        if code in ("AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch"):
            hint = "; check the credentials (s3_access_key/s3_secret_key or the AWS environment) and the policy"
        elif code == "NoSuchBucket":
            hint = "; create the bucket first, or check its name"
        return BackupError(scrub("S3 %s failed %s: %s%s" % (self.description, what, error, hint), self.secrets))

    def list(self) -> dict:
        """{relative path: size} of the objects under the prefix (hidden names left out)."""
        files = {}
        start = self._key("")
        try:
            for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=start):
                for item in page.get("Contents", []):
                    relative = item["Key"][len(start):]
                    if relative and not any(part.startswith(".") for part in relative.split("/")):
                        files[relative] = item["Size"]
        except self.errors as error:
            raise self._fail(error, "listing the backups") from error
        return files

    def fetch(self, relatives: list, dest_root: str, max_size: int) -> None:
        """Copy ``relatives`` (small files: sidecars) into ``dest_root``; an object that has grown past
        ``max_size`` since the listing is not copied (only its first bytes are ever asked for)."""
        for relative in relatives:
            path = os.path.join(dest_root, relative)
            os.makedirs(os.path.dirname(path), 0o700, exist_ok=True)
            try:
                body = self.client.get_object(Bucket=self.bucket, Key=self._key(relative),
                                              Range="bytes=0-%d" % max_size)["Body"].read(max_size + 1)
            except self.errors as error:
                raise self._fail(error, "fetching %s" % relative) from error
            if len(body) > max_size:
                continue
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "wb") as handle:
                handle.write(body)

    def download(self, relatives: list, dest_root: str, max_size: int, dest_fd: int = None) -> dict:
        """Copy ``relatives`` into ``dest_root`` (a private folder, ``/proc/self/fd/<dest_fd>`` when held by a
        descriptor), in order; {relative: seconds}. An object larger than ``max_size`` (what the listing said)
        is refused before a byte is written."""
        done = {}
        if dest_fd is not None:
            dest_root = "/proc/self/fd/%d" % dest_fd
        for relative in relatives:
            began = time.monotonic()
            path = os.path.join(dest_root, relative)
            os.makedirs(os.path.dirname(path), 0o700, exist_ok=True)
            self._check_size(relative, max_size)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
            with os.fdopen(fd, "wb") as handle:
                try:
                    self.client.download_fileobj(self.bucket, self._key(relative), handle, Config=self.transfer)
                except self.errors as error:
                    raise self._fail(error, "copying %s" % relative) from error
            done[relative] = time.monotonic() - began
        return done

    def _check_size(self, relative: str, max_size: int) -> None:
        try:
            size = self.client.head_object(Bucket=self.bucket, Key=self._key(relative))["ContentLength"]
        except self.errors as error:
            raise self._fail(error, "copying %s" % relative) from error
        if size > max_size:
            raise BackupError("S3 %s: %s is now %d bytes, more than the listing said (%d); it was not copied: the "
                              "remote changed during the pull" % (self.description, relative, size, max_size))

    def upload(self, local_root: str, relatives: list) -> dict:
        """PUT each file (large ones as a multipart upload, complete or invisible), in order; {relative: seconds}."""
        done = {}
        for relative in relatives:
            began = time.monotonic()
            key = self._key(relative)
            source = os.path.join(local_root, relative)
            try:
                if os.path.getsize(source) >= MIN_PART_SIZE:  # it may have been a multipart upload before
                    self._abort_unfinished(key)
                self.client.upload_file(source, self.bucket, key, Config=self.transfer)
            except self.errors as error:
                raise self._fail(error, "copying %s" % relative) from error
            except OSError as error:
                raise BackupError("cannot read %s: %s" % (source, error.strerror)) from error
            done[relative] = time.monotonic() - began
        return done

    def _abort_unfinished(self, key: str) -> None:
        """Abort the multipart uploads of ``key`` that an interrupted push left (they cost storage)."""
        found = self.client.list_multipart_uploads(Bucket=self.bucket, Prefix=key).get("Uploads", [])
        for upload in found:
            if upload["Key"] == key:
                self.client.abort_multipart_upload(Bucket=self.bucket, Key=key, UploadId=upload["UploadId"])

    def delete(self, relatives: list) -> None:
        for start in range(0, len(relatives), 1000):
            batch = relatives[start:start + 1000]
            try:
                answer = self.client.delete_objects(Bucket=self.bucket, Delete={
                    "Objects": [{"Key": self._key(relative)} for relative in batch], "Quiet": True})
            except self.errors as error:
                raise self._fail(error, "removing %s" % ", ".join(batch[:5])) from error
            if answer.get("Errors"):
                first = answer["Errors"][0]
                raise BackupError("S3 %s refused to remove %s: %s"
                                  % (self.description, first.get("Key"), first.get("Message")))

    def close(self) -> None:
        pass
