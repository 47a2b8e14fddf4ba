"""The Cloud Build client and the source uploader: made lazily once per instance, injectable.

With endpoint overrides (local fakes) both use no credentials; otherwise Application Default
Credentials, on first use, so an instance that never deploys never looks for them.
"""

from __future__ import annotations

import threading

import requests
from google.cloud.devtools import cloudbuild_v1

from .settings import AgentSettings
from .tools.cloud_run_deploy import BuildOptions, build_client
from .tools.gcs_upload import STORAGE_ENDPOINT, GcsUploader, SourceUploader


class GcpClients:
    def __init__(
        self,
        settings: AgentSettings,
        builds: cloudbuild_v1.CloudBuildClient | None = None,
        uploader: SourceUploader | None = None,
    ) -> None:
        self._settings = settings
        self._builds = builds
        self._uploader = uploader
        self._lock = threading.Lock()

    @property
    def builds(self) -> cloudbuild_v1.CloudBuildClient:
        with self._lock:
            if self._builds is None:
                self._builds = build_client(self._settings.cloudbuild_endpoint)
            return self._builds

    def uploader(self, project: str) -> SourceUploader:
        if self._uploader is not None:
            return self._uploader
        endpoint = self._settings.storage_endpoint
        if endpoint:
            return GcsUploader(project, session=requests.Session(), endpoint=endpoint)
        return GcsUploader(project, endpoint=STORAGE_ENDPOINT)

    @property
    def build_options(self) -> BuildOptions:
        s = self._settings
        return BuildOptions(
            service_account=s.build_service_account,
            app_service_account=s.app_service_account,
            allow_unauthenticated=s.deploy_allow_unauthenticated,
        )


_clients: GcpClients | None = None
_clients_lock = threading.Lock()


def gcp_clients(settings: AgentSettings) -> GcpClients:
    global _clients
    with _clients_lock:
        if _clients is None:
            _clients = GcpClients(settings)
        return _clients


def set_gcp_clients(clients: GcpClients | None) -> None:
    """Inject clients (tests), or None to make them again from settings on next use."""
    global _clients
    with _clients_lock:
        _clients = clients
