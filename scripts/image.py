"""Build and run the container image offline, with podman: no registry of images is needed.

    .venv/bin/python scripts/image.py all        # base, wheels, build, up, job, launch (timed)
    .venv/bin/python scripts/image.py down       # stop the stack (--volumes: forget its data)

Steps, each idempotent and timed (run one by naming it):
  host    install podman & co. from Debian (apt-get, as root) and write podman's engine settings
          when /etc/containers/containers.conf is missing (runc: crun refuses hybrid cgroups)
  base    two Debian bookworm bases made locally (mmdebstrap, then `podman import`): python3
          for the application, postgresql for the database; skipped when already imported
  wheels  uv.lock's runtime requirements (no dev or bench extras), their markers decided for the
          image's Python, as wheels in build/image/wheels (PyPI, hashes checked; torch from
          /opt/wheels, else PyTorch's CPU index), and the project's own in build/image/project
  build   the application image (Dockerfile: `pip install --no-index` from those wheels) and
          the PostgreSQL image (scripts/postgres-image)
  up      compose.yaml through podman-compose: PostgreSQL, code server, webserver, daemon;
          waits until the webserver has loaded the code server's location
  job     the main job (`signals run`) in a container of the image on the sample candles
          (mounted read-only), against the stack's PostgreSQL; then asks the webserver for its runs
  launch  a run launched through the webserver's GraphQL, queued, started by the daemon
  down    stop and remove the stack's containers (and its volumes with --volumes)
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BUILD = ROOT / "build" / "image"
WHEELS = BUILD / "wheels"
PROJECT_WHEEL = BUILD / "project"  # apart: a code change rebuilds only the image's last layers
PROJECT = "futures-signals"  # podman-compose's project: names the network and the volumes
APP_BASE = "localhost/futures-signals-base:bookworm"
DB_BASE = "localhost/futures-signals-postgres-base:bookworm"
APP_IMAGE = "localhost/futures-signals:latest"
DB_IMAGE = "localhost/futures-signals-postgres:latest"
MIRRORS = (
    "deb http://deb.debian.org/debian bookworm main",
    "deb http://deb.debian.org/debian bookworm-updates main",
    "deb http://deb.debian.org/debian-security bookworm-security main",
)
BASES = {  # image → Debian packages on top of minbase
    APP_BASE: "python3,python3-venv,ca-certificates,passwd",
    DB_BASE: "postgresql",
}
TORCH = "torch==2.13.0+cpu"
TORCH_WHEEL_DIR = Path("/opt/wheels")
TORCH_CPU_INDEX = "https://download.pytorch.org/whl/cpu"
HOST_PACKAGES = (
    "podman",
    "podman-compose",
    "runc",
    "mmdebstrap",
    "slirp4netns",
    "uidmap",
    "iptables",
)
CONTAINERS_CONF = Path("/etc/containers/containers.conf")
ENGINE_SETTINGS = """\
[containers]
default_ulimits = ["nofile={nofile}:{nofile}", "nproc={nproc}:{nproc}"]

[engine]
runtime = "runc"
"""
SAMPLE = ROOT.parent / "shared" / "data"
WEBSERVER = "http://127.0.0.1:3000"
DB_PASSWORD = os.environ.get("SIGNALS_DB_PASSWORD", "signals")


class StepError(RuntimeError):
    """A step that cannot go on; its message says what to do."""


def sh(*args: str, capture: bool = False, **kwargs) -> str:
    """Run a command, echoed; its output returned when captured. Fails on a non-zero exit."""
    shown = (a if "\n" not in a else "<script>" for a in args)
    print("+", " ".join(shown), flush=True)
    done = subprocess.run(args, check=False, text=True, capture_output=capture, **kwargs)
    if done.returncode != 0:
        detail = (done.stderr or "").strip()[-2000:] if capture else ""
        raise StepError(f"{args[0]} exited with {done.returncode}\n{detail}".strip())
    return done.stdout if capture else ""


def image_exists(name: str) -> bool:
    return subprocess.run(["podman", "image", "exists", name], check=False).returncode == 0


def compose(*args: str, capture: bool = False) -> str:
    return sh(
        "podman-compose", "-p", PROJECT, "-f", str(ROOT / "compose.yaml"), *args, capture=capture
    )


# -- host ----------------------------------------------------------------------------------


def step_host(args: argparse.Namespace) -> None:
    commands = {"uidmap": "newuidmap"}  # packages named otherwise than their command
    missing = [p for p in HOST_PACKAGES if shutil.which(commands.get(p, p)) is None]
    if missing:
        packages = missing
        if os.geteuid() != 0:
            raise StepError(f"missing {missing}; as root: apt-get install {' '.join(packages)}")
        sh(
            "apt-get",
            "install",
            "-y",
            "-qq",
            *packages,
            env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"},
        )
    if CONTAINERS_CONF.exists():
        print(f"{CONTAINERS_CONF} exists: left as it is")
        return
    import resource

    # No higher than this machine's hard limits: a container that asks for more fails to start.
    nofile = min(20000, resource.getrlimit(resource.RLIMIT_NOFILE)[1])
    nproc = min(32768, resource.getrlimit(resource.RLIMIT_NPROC)[1])
    CONTAINERS_CONF.parent.mkdir(parents=True, exist_ok=True)
    CONTAINERS_CONF.write_text(ENGINE_SETTINGS.format(nofile=nofile, nproc=nproc), encoding="utf-8")
    print(f"wrote {CONTAINERS_CONF}: runc, limits nofile {nofile}, nproc {nproc}")


# -- base ----------------------------------------------------------------------------------


def step_base(args: argparse.Namespace) -> None:
    BUILD.mkdir(parents=True, exist_ok=True)
    for image, packages in BASES.items():
        if image_exists(image) and not args.force:
            print(f"{image} exists (--force rebuilds it)")
            continue
        rootfs = BUILD / (image.split("/")[-1].replace(":", "-") + ".tar")
        started = time.monotonic()
        sh(
            "mmdebstrap",
            "--variant=minbase",
            f"--include={packages}",
            "--quiet",
            "bookworm",
            str(rootfs),
            *MIRRORS,
        )
        sh("podman", "import", "--quiet", "--change", 'CMD ["/bin/bash"]', str(rootfs), image)
        rootfs.unlink()
        print(f"{image}: {time.monotonic() - started:.0f} s")


# -- wheels --------------------------------------------------------------------------------

MARKER_ENVIRONMENT = """
import json, os, platform, sys
v = sys.implementation.version
print(json.dumps({
    "implementation_name": sys.implementation.name,
    "implementation_version": f"{v.major}.{v.minor}.{v.micro}",
    "os_name": os.name, "platform_machine": platform.machine(),
    "platform_release": platform.release(), "platform_system": platform.system(),
    "platform_version": platform.version(), "python_full_version": platform.python_version(),
    "platform_python_implementation": platform.python_implementation(),
    "python_version": ".".join(platform.python_version_tuple()[:2]), "sys_platform": sys.platform,
    "glibc": os.confstr("CS_GNU_LIBC_VERSION"),
}))
"""


def image_python() -> dict[str, str]:
    """The base image's marker environment (packaging's keys) and glibc: the interpreter the
    wheels are for, whatever Python or C library this host runs."""
    if not image_exists(APP_BASE):
        raise StepError(f"no {APP_BASE}: run `scripts/image.py base` first")
    out = sh(
        "podman",
        "run",
        "--rm",
        "--network",
        "none",
        APP_BASE,
        "python3",
        "-c",
        MARKER_ENVIRONMENT,
        capture=True,
    )
    return json.loads(out)


def lock_requirements(environment: dict[str, str]) -> list[tuple[str, list[str]]]:
    """uv.lock's runtime requirements (`name==version`, hashes) whose markers hold in the
    image, from `uv export`: the lock's own resolution, nothing re-resolved."""
    from packaging.requirements import Requirement

    exported = sh(
        "uv",
        "export",
        "--frozen",
        "--no-dev",
        "--no-emit-project",
        "--no-header",
        "--no-annotate",
        "--format",
        "requirements-txt",
        capture=True,
        cwd=ROOT,
    )
    logical = exported.replace("\\\n", " ").splitlines()
    chosen = []
    for line in logical:
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        spec, *hashes = line.split(" --hash=")
        requirement = Requirement(spec)
        if requirement.marker is None or requirement.marker.evaluate(environment):
            pins = [s for s in requirement.specifier if s.operator == "=="]
            if len(pins) != 1:
                raise StepError(f"not pinned to one version in the export: {spec}")
            chosen.append((f"{requirement.name}=={pins[0].version}", [h.strip() for h in hashes]))
    return chosen


def manylinux_platforms(glibc: str) -> list[str]:
    """pip's --platform takes tags literally: every manylinux tag the image's glibc runs."""
    major, minor = (int(x) for x in glibc.split()[-1].split(".")[:2])
    if major != 2:
        raise StepError(f"unexpected C library: {glibc}")
    tags = [f"manylinux_2_{m}_x86_64" for m in range(minor, 4, -1)]
    return [*tags, "manylinux2014_x86_64", "manylinux2010_x86_64", "manylinux1_x86_64"]


def build_project() -> None:
    """The project's wheel, dated by the last commit (SOURCE_DATE_EPOCH) so that the same
    sources give the same bytes and the image's layer cache holds."""
    shutil.rmtree(PROJECT_WHEEL, ignore_errors=True)
    epoch = sh("git", "-C", str(ROOT), "log", "-1", "--format=%ct", capture=True).strip()
    sh(
        "uv",
        "build",
        "--wheel",
        "--quiet",
        "--out-dir",
        str(PROJECT_WHEEL),
        str(ROOT),
        env={**os.environ, "SOURCE_DATE_EPOCH": epoch},
    )


def remove_stale_wheels(pins: list[str]) -> None:
    """Wheels an older lock left in the folder: the build context holds the lock's alone."""
    from packaging.utils import canonicalize_name, parse_wheel_filename
    from packaging.version import Version

    wanted = {(canonicalize_name(n), Version(v)) for n, v in (p.split("==") for p in pins)}
    for wheel in WHEELS.glob("*.whl"):
        name, version, _, _ = parse_wheel_filename(wheel.name)
        if (name, version) not in wanted:
            print(f"removing {wheel.name}: not in uv.lock")
            wheel.unlink()


def step_wheels(args: argparse.Namespace) -> None:
    if shutil.which("uv") is None:
        raise StepError("uv exports the lock and builds the project's wheel: pip install uv")
    environment = image_python()
    glibc = environment.pop("glibc")
    print(f"image: Python {environment['python_full_version']}, {glibc}")
    requirements = lock_requirements(environment)
    torch = [r for r in requirements if r[0] == TORCH]
    hashed = [r for r in requirements if r[0] != TORCH]
    if len(torch) != 1 or any(not hashes for _, hashes in hashed):
        raise StepError(f"expected {TORCH} (no hash in the lock) and every other line hashed")
    WHEELS.mkdir(parents=True, exist_ok=True)
    listing = WHEELS / "requirements.txt"
    listing.write_text(
        "# uv.lock's runtime requirements for the image's Python (scripts/image.py wheels)\n"
        + "".join(
            f"{spec} " + " ".join(f"--hash={h}" for h in hashes) + "\n" for spec, hashes in hashed
        ),
        encoding="utf-8",
    )
    target = [
        "--only-binary=:all:",
        "--no-deps",
        "--implementation",
        "cp",
        "--python-version",
        environment["python_version"],
        "--abi",
        "cp311",
        "--abi",
        "abi3",
        "--abi",
        "none",
    ]
    for platform_tag in manylinux_platforms(glibc):
        target += ["--platform", platform_tag]
    pip = [args.pip_python, "-m", "pip"]
    sh(
        *pip,
        "download",
        "--quiet",
        "--disable-pip-version-check",
        "--require-hashes",
        "-r",
        str(listing),
        "-d",
        str(WHEELS),
        *target,
    )
    if any(TORCH_WHEEL_DIR.glob("torch-2.13.0+cpu-*.whl")):
        source = ["--no-index", "--find-links", str(TORCH_WHEEL_DIR)]
        print(f"torch: {TORCH_WHEEL_DIR}")
    else:
        source = ["--index-url", TORCH_CPU_INDEX]
        print(f"torch: no wheel in {TORCH_WHEEL_DIR}, from {TORCH_CPU_INDEX}")
    sh(
        *pip,
        "download",
        "--quiet",
        "--disable-pip-version-check",
        *source,
        "-d",
        str(WHEELS),
        *target,
        TORCH,
    )
    build_project()
    remove_stale_wheels([spec for spec, _ in requirements])
    size = sum(w.stat().st_size for w in WHEELS.glob("*.whl")) / 2**20
    print(f"{len(requirements)} requirements: {size:.0f} MiB of wheels in {WHEELS}")


# -- build ---------------------------------------------------------------------------------


def step_build(args: argparse.Namespace) -> None:
    if not (WHEELS / "requirements.txt").exists() or not any(PROJECT_WHEEL.glob("*.whl")):
        raise StepError(f"no wheels in {WHEELS}: run `scripts/image.py wheels` first")
    for base in BASES:
        if not image_exists(base):
            raise StepError(f"no {base}: run `scripts/image.py base` first")
    started = time.monotonic()
    sh(
        "podman",
        "build",
        "--network",
        "none",
        "--build-arg",
        f"BASE={APP_BASE}",
        "-t",
        APP_IMAGE,
        "-f",
        str(ROOT / "Dockerfile"),
        str(ROOT),
    )
    print(f"{APP_IMAGE}: {time.monotonic() - started:.0f} s")
    sh(
        "podman",
        "build",
        "--network",
        "none",
        "--build-arg",
        f"BASE={DB_BASE}",
        "-t",
        DB_IMAGE,
        str(ROOT / "scripts" / "postgres-image"),
    )
    for image in (APP_IMAGE, DB_IMAGE):
        size = sh("podman", "image", "inspect", "--format", "{{.Size}}", image, capture=True)
        print(f"{image}: {int(size) / 1e6:.0f} MB")


# -- up / job / down -----------------------------------------------------------------------


def graphql(query: str, variables: dict | None = None) -> dict:
    request = urllib.request.Request(
        f"{WEBSERVER}/graphql",
        data=json.dumps({"query": query, "variables": variables or {}}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.load(response)["data"]


LOCATIONS = (
    "{ workspaceOrError { ... on Workspace { locationEntries { name loadStatus "
    "locationOrLoadError { __typename ... on PythonError { message } } } } } }"
)


def wait_for(what: str, check: Callable[[], object], timeout_s: float) -> object:
    """Poll `check` until it returns something true; its last error in the failure."""
    deadline = time.monotonic() + timeout_s
    error: object = None
    while time.monotonic() < deadline:
        try:
            result = check()
            if result:
                return result
        except Exception as err:
            error = err
        time.sleep(2)
    raise StepError(f"{what}: not ready after {timeout_s:.0f} s (last: {error})")


def location_loaded() -> list[dict]:
    entries = graphql(LOCATIONS)["workspaceOrError"]["locationEntries"]
    loaded = [
        e
        for e in entries
        if e["locationOrLoadError"]
        and e["locationOrLoadError"]["__typename"] == "RepositoryLocation"
    ]
    return entries if loaded else []


def server_info() -> str:
    with urllib.request.urlopen(f"{WEBSERVER}/server_info", timeout=5) as response:
        return response.read().decode().strip()


def database_ready() -> bool:
    """The stack's PostgreSQL accepts connections (its container found by compose's labels:
    podman-compose versions name containers differently)."""
    find = ["podman", "ps", "-q", "--filter", f"label=io.podman.compose.project={PROJECT}"]
    find += ["--filter", "label=com.docker.compose.service=db"]
    found = subprocess.run(find, check=False, capture_output=True, text=True).stdout.split()
    if not found:
        return False
    ready = ["podman", "exec", found[0], "pg_isready", "-q", "-h", "/tmp"]
    return subprocess.run(ready, check=False).returncode == 0


def step_up(args: argparse.Namespace) -> None:
    for image in (APP_IMAGE, DB_IMAGE):
        if not image_exists(image):
            raise StepError(f"no {image}: run `scripts/image.py build` first")
    # All at once (podman-compose 1.0.3 would start db again for a second `up`): the Dagster
    # processes restart on failure until PostgreSQL's first start has made its cluster.
    compose("up", "-d")
    wait_for("PostgreSQL", database_ready, 60)
    info = wait_for("the webserver", server_info, 180)
    print("webserver /server_info:", info)
    entries = wait_for("the code location", location_loaded, 180)
    print("webserver's code locations:", json.dumps(entries))
    sh(
        "podman",
        "ps",
        "--filter",
        f"label=io.podman.compose.project={PROJECT}",
        "--format",
        "{{.Names}}\t{{.Status}}\t{{.Command}}",
    )


RUNS = "{ runsOrError { ... on Runs { results { runId jobName status } } } }"


def step_job(args: argparse.Namespace) -> None:
    candles, funding = args.data.resolve(), args.funding.resolve() if args.funding else None
    if not candles.is_dir():
        raise StepError(f"no candle folder at {candles} (--data)")
    mounts = ["-v", f"{candles}:/data/candles:ro", "-e", "SIGNALS_DATA_DIR=/data/candles"]
    if funding and funding.is_dir():
        mounts += ["-v", f"{funding}:/data/funding:ro", "-e", "SIGNALS_FUNDING_DIR=/data/funding"]
    url = f"signals:{DB_PASSWORD}@db:5432"
    started = time.monotonic()
    sh(
        "podman",
        "run",
        "--rm",
        "--network",
        f"{PROJECT}_default",
        "-v",
        f"{PROJECT}_signals-home:/opt/dagster/signals",
        *mounts,
        "-e",
        f"SIGNALS_DATABASE_URL=postgresql://{url}/signals",
        "-e",
        f"DAGSTER_PG_URL=postgresql+psycopg2://{url}/signals_dagster",
        APP_IMAGE,
        "signals",
        "run",
        *shlex.split(args.run_args),
    )
    print(f"main job in the image: {time.monotonic() - started:.0f} s")
    runs = graphql(RUNS)["runsOrError"]["results"]
    statuses: dict[str, int] = {}
    for run in runs:
        statuses[run["status"]] = statuses.get(run["status"], 0) + 1
    print(f"the webserver shows {len(runs)} runs: {statuses}")


LAUNCH = """mutation($params: ExecutionParams!) { launchRun(executionParams: $params) {
  __typename ... on LaunchRunSuccess { run { runId } } ... on PythonError { message } } }"""
RUN_STATUS = "query($id: ID!) { runOrError(runId: $id) { ... on Run { status } } }"


def run_finished(run_id: str) -> str | None:
    """The run's status once it has ended, else None."""
    status = graphql(RUN_STATUS, {"id": run_id})["runOrError"]["status"]
    return status if status in ("SUCCESS", "FAILURE", "CANCELED") else None


def step_launch(args: argparse.Namespace) -> None:
    """A run launched through the webserver (market_factor_job, 1h: light; after `job` it
    reads the candles the job stored), queued, and started by the daemon in its container:
    the stack's own path, which `job` (in-process runs) does not take."""
    params = {
        "selector": {
            "repositoryLocationName": "futures_signals",
            "repositoryName": "__repository__",
            "jobName": "market_factor_job",
        },
        "executionMetadata": {"tags": [{"key": "dagster/partition", "value": "1h"}]},
        "runConfigData": {},
    }
    launched = graphql(LAUNCH, {"params": params})["launchRun"]
    if launched["__typename"] != "LaunchRunSuccess":
        raise StepError(f"launch refused: {launched}")
    run_id = launched["run"]["runId"]
    status = wait_for(f"run {run_id}", lambda: run_finished(run_id), 300)
    print(f"run {run_id} of market_factor_job (1h), launched by the daemon: {status}")
    if status != "SUCCESS":
        raise StepError(
            f"run {run_id} ended {status}: see the webserver, {WEBSERVER}/runs/{run_id}"
        )


def step_down(args: argparse.Namespace) -> None:
    compose("down", *(["-v"] if args.volumes else []))
    network = f"{PROJECT}_default"  # podman-compose 1.0.3 leaves it behind
    if subprocess.run(["podman", "network", "exists", network], check=False).returncode == 0:
        sh("podman", "network", "rm", network)


# -- main ----------------------------------------------------------------------------------

STEPS: dict[str, Callable[[argparse.Namespace], None]] = {
    "host": step_host,
    "base": step_base,
    "wheels": step_wheels,
    "build": step_build,
    "up": step_up,
    "job": step_job,
    "launch": step_launch,
    "down": step_down,
}
ALL = ("base", "wheels", "build", "up", "job", "launch")


@contextmanager
def timed(name: str, times: dict[str, float]) -> Iterator[None]:
    started = time.monotonic()
    print(f"== {name}", flush=True)
    yield
    times[name] = time.monotonic() - started
    print(f"== {name}: {times[name]:.1f} s", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "steps",
        nargs="+",
        choices=[*STEPS, "all"],
        metavar="STEP",
        help=f"one or more of {', '.join(STEPS)}, or all ({' '.join(ALL)})",
    )
    parser.add_argument("--force", action="store_true", help="base: rebuild existing bases")
    parser.add_argument("--volumes", action="store_true", help="down: remove the volumes too")
    parser.add_argument(
        "--data",
        type=Path,
        default=SAMPLE / "binance-usdm-1h",
        help="job: the candle folder (default: the sample, ../shared/data)",
    )
    parser.add_argument(
        "--funding",
        type=Path,
        default=SAMPLE / "binance-usdm-funding",
        help="job: recorded funding folder (default: the sample's)",
    )
    parser.add_argument(
        "--run-args",
        default="",
        metavar="ARGS",
        help="job: arguments of `signals run`, e.g. '--assets ohlcv'",
    )
    parser.add_argument(
        "--pip-python",
        default="python3",
        metavar="PYTHON",
        help="wheels: the Python whose pip downloads (default python3; the "
        "wheels are chosen for the image's Python, not this one)",
    )
    args = parser.parse_args(argv)
    steps = [s for name in args.steps for s in (ALL if name == "all" else (name,))]
    times: dict[str, float] = {}
    try:
        for name in steps:
            with timed(name, times):
                STEPS[name](args)
    except StepError as err:
        print(f"scripts/image.py: {err}", file=sys.stderr)
        return 1
    finally:
        if times:
            print("times: " + ", ".join(f"{k} {v:.0f} s" for k, v in times.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
