"""The agent's tools: analyse a repository, write its Dockerfile, deploy it here or to Cloud Run.

Each tool is a plain function with typed inputs and outputs. Failures the user should hear about
raise ToolError (or TransientError when a retry may help); a cancel raises Cancelled after the
tool has cleaned up what it started.
"""

from .analysis import analyse_directory, analyse_repository
from .analysis_model import Analysis, EnvVar, Evidence, Tests
from .cloud_run_deploy import BuildStarted, CloudRunTarget, start_cloud_run_build
from .deploy_result import DeployResult
from .dockerfile_gen import GeneratedFiles, generate_dockerfile
from .errors import Cancelled, ToolError
from .gcs_upload import GcsUploader, SourceUploader
from .local_deploy import deploy_local, stop_local
from .progress import CancelCheck, Progress, ProgressCallback, ProgressReporter

__all__ = [
    "Analysis",
    "BuildStarted",
    "CancelCheck",
    "Cancelled",
    "CloudRunTarget",
    "DeployResult",
    "EnvVar",
    "Evidence",
    "GcsUploader",
    "GeneratedFiles",
    "Progress",
    "ProgressCallback",
    "ProgressReporter",
    "SourceUploader",
    "Tests",
    "ToolError",
    "analyse_directory",
    "analyse_repository",
    "deploy_local",
    "generate_dockerfile",
    "start_cloud_run_build",
    "stop_local",
]
