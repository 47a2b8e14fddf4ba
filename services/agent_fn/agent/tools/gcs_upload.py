"""Uploads the source archive to Cloud Storage for Cloud Build, creating the bucket if needed.

Uses the JSON API's media upload through google-auth's AuthorizedSession: no storage client
library to add to the function's dependencies for one request.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from urllib.parse import quote

import requests

from deploychat.errors import TransientError

from .errors import ToolError

STORAGE_ENDPOINT = "https://storage.googleapis.com"
_SCOPES = ("https://www.googleapis.com/auth/devstorage.read_write",)

# (archive on disk, bucket, object name) -> None. Raises ToolError or TransientError.
SourceUploader = Callable[[Path, str, str], None]


class GcsUploader:
    def __init__(
        self,
        project: str,
        *,
        session: requests.Session | None = None,
        endpoint: str = STORAGE_ENDPOINT,
        timeout_s: float = 300,
    ) -> None:
        self._project = project
        self._session = session
        self._endpoint = endpoint.rstrip("/")
        self._timeout_s = timeout_s

    def _get_session(self) -> requests.Session:
        if self._session is None:
            import google.auth
            from google.auth.exceptions import DefaultCredentialsError
            from google.auth.transport.requests import AuthorizedSession

            try:
                credentials, _ = google.auth.default(scopes=list(_SCOPES))
            except DefaultCredentialsError as exc:
                raise ToolError(f"No Google Cloud credentials to upload the source: {exc}") from exc
            self._session = AuthorizedSession(credentials)  # type: ignore[no-untyped-call]
        return self._session

    def __call__(self, archive: Path, bucket: str, name: str) -> None:
        response = self._upload(archive, bucket, name)
        if response.status_code == 404:
            # gcloud makes `<project>_cloudbuild` on first use; so do we.
            self._create_bucket(bucket)
            response = self._upload(archive, bucket, name)
        _raise_for(response, f"upload the source to gs://{bucket}/{name}")

    def _upload(self, archive: Path, bucket: str, name: str) -> requests.Response:
        url = f"{self._endpoint}/upload/storage/v1/b/{quote(bucket, safe='')}/o"
        try:
            with open(archive, "rb") as body:
                return self._get_session().post(
                    url,
                    params={"uploadType": "media", "name": name},
                    data=body,
                    headers={"Content-Type": "application/gzip"},
                    timeout=(10, self._timeout_s),
                )
        except requests.RequestException as exc:
            raise TransientError(f"Could not reach Cloud Storage: {exc}") from exc

    def _create_bucket(self, bucket: str) -> None:
        try:
            response = self._get_session().post(
                f"{self._endpoint}/storage/v1/b",
                params={"project": self._project},
                json={
                    "name": bucket,
                    "iamConfiguration": {"uniformBucketLevelAccess": {"enabled": True}},
                },
                timeout=(10, 60),
            )
        except requests.RequestException as exc:
            raise TransientError(f"Could not reach Cloud Storage: {exc}") from exc
        if response.status_code == 409:
            return  # created meanwhile, by us or another deploy: fine if the upload works now
        _raise_for(response, f"create the bucket gs://{bucket}")


def _raise_for(response: requests.Response, what: str) -> None:
    if response.ok:
        return
    try:
        detail = response.json()["error"]["message"]
    except (ValueError, KeyError, TypeError):
        detail = response.text[:300]
    message = f"Could not {what}: HTTP {response.status_code}: {detail}"
    if response.status_code in (408, 429) or response.status_code >= 500:
        raise TransientError(message)
    if response.status_code in (401, 403):
        message += " (the account needs the Storage Admin or Storage Object Creator role)"
    raise ToolError(message)
