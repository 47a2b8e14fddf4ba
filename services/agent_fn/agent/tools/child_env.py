"""The environment every process a tool starts gets: what installers and servers need, no more.

The agent's own settings and credentials (the Gemini key, Google credentials, tokens) are none of
a cloned repository's business, nor git's: a name that looks like a secret never passes, even
under a prefix that otherwise does.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping

PASSED_ENV = frozenset(
    {
        "PATH", "HOME", "USER", "LOGNAME", "LANG", "LANGUAGE", "LC_ALL", "LC_CTYPE", "TZ",
        "TMPDIR", "TERM", "SSL_CERT_FILE", "SSL_CERT_DIR", "REQUESTS_CA_BUNDLE",
        "NODE_EXTRA_CA_CERTS", "XDG_CACHE_HOME", "XDG_CONFIG_HOME", "XDG_DATA_HOME",
        "COREPACK_HOME", "GOPATH", "GOCACHE", "GOMODCACHE", "GOPROXY", "GOFLAGS",
        "JAVA_HOME", "MAVEN_OPTS", "GRADLE_USER_HOME",
        "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "http_proxy", "https_proxy", "no_proxy",
    }
)  # fmt: skip
PASSED_PREFIXES = ("UV_", "PIP_", "NPM_CONFIG_", "npm_config_", "YARN_", "PYENV")
_SECRET_NAME = re.compile(
    r"KEY|TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIAL|AUTH|COOKIE|SESSION|PRIVATE", re.IGNORECASE
)


def minimal_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """A copy of the few variables a child needs from our environment, plus `extra`."""
    env = {
        k: v
        for k, v in os.environ.items()
        if (k in PASSED_ENV or k.startswith(PASSED_PREFIXES)) and not _SECRET_NAME.search(k)
    }
    env.update(extra or {})
    return env
