"""The emulators a stack runs: Pub/Sub and Firestore (gcloud), Firebase Authentication (npm)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import urllib.request
from pathlib import Path

from .processes import ManagedProcess, free_port, http_get
from .stack_config import ROOT, StackConfig


class Emulator:
    def __init__(self, kind: str, config: StackConfig) -> None:
        self.kind = kind
        self.port = free_port()
        self.host = f"127.0.0.1:{self.port}"
        gcloud = shutil.which("gcloud") or "gcloud"
        if kind == "pubsub":
            argv = [
                gcloud,
                "beta",
                "emulators",
                "pubsub",
                "start",
                f"--host-port={self.host}",
                f"--project={config.project}",
            ]
        else:
            argv = [gcloud, "emulators", "firestore", "start", f"--host-port={self.host}"]
            saved = firestore_export(config)
            if saved is not None:
                argv.append(f"--import-data={saved}")
        self.process = ManagedProcess(
            f"{kind}-emulator",
            argv,
            env=dict(os.environ),
            log_path=config.log_dir / f"{kind}-emulator.log",
        )

    def start(self) -> None:
        self.process.start()

    def wait_ready(self) -> None:
        self.process.wait_ready(
            lambda: (
                http_get(f"http://{self.host}/") == (200, "Ok\n")
                or http_get(f"http://{self.host}/")[1].strip() == "Ok"
            ),
            90,
        )

    def stop(self) -> None:
        self.process.stop()


class AuthEmulator:
    """The Firebase Authentication emulator (firebase-tools from npm), on ports of its own.

    Its config is written per stack, so stacks of parallel test runs never share a port; the
    UI is off (firebase-tools would download it at run time).
    """

    def __init__(self, config: StackConfig) -> None:
        self.port = config.auth_port or free_port()
        self.host = f"127.0.0.1:{self.port}"
        self.hub_port = free_port()
        state = config.log_dir / "firebase"
        state.mkdir(parents=True, exist_ok=True)
        firebase_json = state / "firebase.json"
        firebase_json.write_text(
            json.dumps(
                {
                    "emulators": {
                        "auth": {"host": "127.0.0.1", "port": self.port},
                        "hub": {"host": "127.0.0.1", "port": self.hub_port},
                        "logging": {"host": "127.0.0.1", "port": free_port()},
                        "ui": {"enabled": False},
                        "singleProjectMode": True,
                    }
                }
            )
        )
        env = dict(os.environ)
        # firebase-tools asks nobody anything, and reports nothing home, in a test run.
        env.update({"CI": "true", "FIREBASE_CLI_DISABLE_UPDATE_CHECK": "true"})
        # firebase-tools finds "other instances" of a project through a locator file in the
        # temp folder: each stack keeps its own, so parallel stacks never see each other.
        env["TMPDIR"] = str(state)
        self.process = ManagedProcess(
            "auth-emulator",
            [
                str(firebase_cli()),
                "emulators:start",
                "--only",
                "auth",
                "--project",
                config.project,
                "--config",
                str(firebase_json),
                *auth_import_args(config),
            ],
            env=env,
            cwd=state,
            log_path=config.log_dir / "auth-emulator.log",
        )

    def start(self) -> None:
        self.process.start()

    def wait_ready(self) -> None:
        self.process.wait_ready(lambda: http_get(f"http://{self.host}/")[0] == 200, 180)

    def reset(self, project: str) -> None:
        url = f"http://{self.host}/emulator/v1/projects/{project}/accounts"
        urllib.request.urlopen(urllib.request.Request(url, method="DELETE"), timeout=10).close()

    def stop(self) -> None:
        self.process.stop()


def firestore_export(config: StackConfig) -> Path | None:
    """The metadata file of the Firestore data `make dev` saved last (devstack/persist.py)."""
    if config.data_dir is None:
        return None
    found = sorted((config.data_dir / "firestore").glob("*/*.overall_export_metadata"))
    return found[-1] if found else None


def auth_import_args(config: StackConfig) -> list[str]:
    saved = None if config.data_dir is None else config.data_dir / "auth"
    if saved is None or not (saved / "firebase-export-metadata.json").exists():
        return []
    return ["--import", str(saved)]


def firebase_cli() -> Path:
    """firebase-tools, installed from package-lock.json by `npm ci` when missing."""
    cli = ROOT / "node_modules" / ".bin" / "firebase"
    if not cli.exists():
        subprocess.run(
            ["npm", "ci", "--no-audit", "--no-fund", "--loglevel=error"], cwd=ROOT, check=True
        )
    return cli
