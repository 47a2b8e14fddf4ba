"""The settings module a deployed Django app runs with: its own settings, plus the hosts the
deployment answers on, from the environment.

Cloud Run's URL is only known once the service exists, and apps write ALLOWED_HOSTS in many
ways (a literal list, their own variable names). Importing the app's settings and extending
two lists works for all of them, without touching the app's files.
"""

from __future__ import annotations

MODULE = "deploychat_settings"
HOSTS_ENV = "DEPLOYCHAT_ALLOWED_HOSTS"
ORIGINS_ENV = "DEPLOYCHAT_CSRF_TRUSTED_ORIGINS"


def overlay_lines(settings_module: str) -> list[str]:
    """The module's lines; only double quotes inside, so they can be quoted for a shell."""
    return [
        "# Written by deploychat: the settings of the app, plus the hosts it is deployed on.",
        "import os",
        "",
        f"from {settings_module} import *  # noqa: F403",
        "",
        "",
        "def _env_list(name):",
        '    return [v.strip() for v in os.environ.get(name, "").split(",") if v.strip()]',
        "",
        "",
        'ALLOWED_HOSTS = [*globals().get("ALLOWED_HOSTS", []), *_env_list("' + HOSTS_ENV + '")]',
        "CSRF_TRUSTED_ORIGINS = [",
        '    *globals().get("CSRF_TRUSTED_ORIGINS", []),',
        '    *_env_list("' + ORIGINS_ENV + '"),',
        "]",
    ]


def overlay_text(settings_module: str) -> str:
    return "\n".join(overlay_lines(settings_module)) + "\n"


def placeholder(name: str) -> str:
    """A value for a variable the settings insist on, where the real one is not needed (a
    build step, a local try): URLs must still parse as URLs."""
    if name.endswith("_URL") or name.endswith("_URI"):
        return "sqlite:////tmp/deploychat-placeholder.db"
    return "deploychat-placeholder"
