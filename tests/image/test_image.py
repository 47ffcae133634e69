"""The built container image (Dockerfile, scripts/image.py): what it installed is uv.lock's,
its code location imports, its command answers, and its bytecode is compiled.

Skipped where podman or the image is missing: building takes minutes and a registry-free
base, so the suite never builds it. Build it with
`.venv/bin/python scripts/image.py host base wheels build` (README, Container image).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tomllib
from pathlib import Path

import pytest

from tests.orchestration.test_import_weight import HEAVY

REPO = Path(__file__).resolve().parents[2]
IMAGE = "localhost/futures-signals:latest"
BUILD_HINT = "build it with `.venv/bin/python scripts/image.py host base wheels build`"
KEY_PACKAGES = ("dagster", "dagster-webserver", "dagster-postgres", "torch", "pandas", "ccxt")

# Runs in the image as its user (argv: the heavy libraries): installed versions, the code
# location, the command, the bytecode the install compiled, and whether that user could
# write into the environment.
PROBE = """
import importlib.metadata as md, importlib.util, json, os, subprocess, sys, sysconfig
versions = {d.metadata["Name"]: d.version for d in md.distributions()}
import pipeline.definitions
heavy = sorted(m for m in sys.argv[1:] if m in sys.modules)
help_ = subprocess.run(["signals", "--help"], capture_output=True, text=True)
compiled = {}
for name in ("pandas", "dagster", "torch", "pipeline.definitions", "pipeline.cli.run"):
    origin = importlib.util.find_spec(name).origin
    compiled[name] = os.path.exists(importlib.util.cache_from_source(origin))
print(json.dumps({
    "python": sys.version.split()[0], "versions": versions, "heavy": heavy,
    "help_rc": help_.returncode, "help": help_.stdout, "compiled": compiled,
    "user": os.getuid(), "writable": os.access(sysconfig.get_paths()["purelib"], os.W_OK),
}))
"""


def _normalise(name: str) -> str:
    return name.lower().replace("_", "-").replace(".", "-")


@pytest.fixture(scope="module")
def probe() -> dict:
    podman = shutil.which("podman")
    if podman is None:
        pytest.skip(f"podman is not installed: {BUILD_HINT}")
    if subprocess.run([podman, "image", "exists", IMAGE], check=False).returncode != 0:
        pytest.skip(f"no image {IMAGE}: {BUILD_HINT}")
    done = subprocess.run(
        [podman, "run", "--rm", "--network", "none", IMAGE, "python", "-c", PROBE, *HEAVY],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def lock_versions() -> dict[str, str]:
    lock = tomllib.loads((REPO / "uv.lock").read_text(encoding="utf-8"))
    return {_normalise(p["name"]): p["version"] for p in lock["package"]}


def test_every_installed_package_is_the_locks_version(probe: dict, lock_versions: dict) -> None:
    installed = {_normalise(name): version for name, version in probe["versions"].items()}
    for name in KEY_PACKAGES:
        assert installed.get(name) == lock_versions[name], f"{name}: image {installed.get(name)}"
    # pip comes with the venv (Debian's ensurepip), not from the lock; everything else does.
    differ = {
        name: (version, lock_versions.get(name))
        for name, version in installed.items()
        if name != "pip" and lock_versions.get(name) != version
    }
    assert not differ, f"image vs uv.lock (rebuild the image?): {differ}"
    assert probe["python"].startswith("3.11.")


def test_the_code_location_imports_light_and_the_command_answers(probe: dict) -> None:
    assert probe["heavy"] == [], f"the code location imported {probe['heavy']}"
    assert probe["help_rc"] == 0
    assert "run" in probe["help"] and "worker" in probe["help"]


def test_bytecode_is_compiled_and_the_environment_read_only(probe: dict) -> None:
    assert all(probe["compiled"].values()), probe["compiled"]
    assert probe["user"] != 0
    assert probe["writable"] is False
