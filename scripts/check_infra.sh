#!/usr/bin/env bash
# Static checks of the deployment: terraform fmt, the provider schema check and checkov over
# infra/ (and checkov over the Dockerfiles). No Google account, no provider download, no network
# beyond the first install (checkov from PyPI, the schema's npm packages from package-lock.json).
#
# checkov lives in its own virtual environment (.venv-tools) because its dependencies clash with
# the project's. A failed check fails this script; a check that does not apply is skipped in the
# code with its reason (#checkov:skip=CKV_...:reason).
set -euo pipefail

CHECKOV_VERSION="3.3.30"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TOOLS="$ROOT/.venv-tools"
cd "$ROOT"

if ! command -v terraform >/dev/null 2>&1; then
    echo "check_infra: terraform is not on PATH" >&2
    exit 2
fi

# uv as the Makefile found it (on PATH, or `python3.12 -m uv`): split into words on purpose.
UV=${UV:-uv}

installed_version() {
    # importlib.metadata answers in milliseconds; `checkov --version` takes seconds.
    "$TOOLS/bin/python" -c 'import importlib.metadata as m; print(m.version("checkov"))' 2>/dev/null || true
}

if [[ ! -x "$TOOLS/bin/checkov" ]] || [[ "$(installed_version)" != "$CHECKOV_VERSION" ]]; then
    echo "check_infra: installing checkov $CHECKOV_VERSION into .venv-tools" >&2
    # The project's Python 3.12 (the one .venv was made with); uv never downloads one.
    [[ -d "$TOOLS" ]] || UV_PYTHON_DOWNLOADS=never $UV venv --quiet --python "$ROOT/.venv/bin/python" "$TOOLS"
    $UV pip install --quiet --python "$TOOLS" "checkov==$CHECKOV_VERSION"
fi

echo "check_infra: terraform fmt -check -recursive infra" >&2
terraform fmt -check -recursive -diff infra

# Every argument and block against the Google providers' schema (6.50, what versions.tf pins),
# read from @cdktf/provider-google(-beta) in node_modules: scripts/check_infra_schema.py.
if [[ ! -f node_modules/@cdktf/provider-google/.jsii || ! -f node_modules/@cdktf/provider-google-beta/.jsii ]]; then
    echo "check_infra: installing the npm packages of package-lock.json (npm ci)" >&2
    npm ci --no-audit --no-fund --loglevel=error
fi
echo "check_infra: provider schema check over infra" >&2
"$ROOT/.venv/bin/python" scripts/check_infra_schema.py infra

# --skip-download: no calls to the Prisma Cloud API (offline, and nothing to send).
export BC_SKIP_MAPPING=TRUE LOG_LEVEL=ERROR
echo "check_infra: checkov (terraform) over infra" >&2
"$TOOLS/bin/checkov" --directory infra --framework terraform \
    --quiet --compact --skip-download --download-external-modules false
echo "check_infra: checkov (dockerfile) over services/ws_edge/Dockerfile and ci/Dockerfile" >&2
"$TOOLS/bin/checkov" --file services/ws_edge/Dockerfile --file ci/Dockerfile --framework dockerfile \
    --quiet --compact --skip-download
