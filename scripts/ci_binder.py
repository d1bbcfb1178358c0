"""CI job: recreate the Binder environment as an unprivileged user and run notebooks 00 and 01 in it.

Run by scripts/ci-binder.sh (which bounds the whole job in time); standard library only, so it runs
with the system's python3 before the project's .venv exists. The steps follow the Dockerfile that
repo2docker renders from binder/ (tests/test_binder.py checks that order):

1. a venv from a CPython 3.12 (binder/runtime.txt) that the user can run;
2. binder/requirements.txt (the pinned lock) installed *before* the repository is copied;
3. the repository copied, owned by the user; ./binder/postBuild run in it (installs nova_nb with
   --no-deps, enables and verifies the server extension, builds the font cache, runs doctor);
4. the server started through binder/start on 127.0.0.1 (bounded wait for /api/status), and the
   extension checked twice: listed as enabled by ``jupyter server extension list``, and loaded
   (its log line);
5. notebooks 00 and 01 executed with nbconvert, also through binder/start, while the server runs.

Steps 4-5 run under a 1.5 GiB memory ceiling: a memory cgroup (v2 or v1) with that limit where one
can be made (as Binder's own 2 GB limit is a cgroup), and in every case a sampler that records each
process's peak RSS (VmHWM, kept by the kernel, so no spike between samples is missed) and fails the
job if the processes alive together could have exceeded the ceiling. ``prlimit --as`` is not used:
it limits virtual address space, which numba, the CRT and threads' stacks reserve far beyond what
they touch. docs/BINDER.md has the reasoning and the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
USER = "nova-binder"
CEILING = 1536 * 2**20  # 1.5 GiB, below Binder's 2 GB so the job fails before a Binder user would
NOTEBOOKS = ("00_quick_start.ipynb", "01_provider.ipynb")
EXTENSION = "nova_nb.widgets.server"
EXTENSION_LOG = "nova_nb.widgets.server: TCP_NODELAY on kernel websockets"
#: What repo2docker would not see in a fresh clone, or would not want: never copied.
SKIP = {".venv", ".git", "test-artifacts", ".mypy_cache", ".ruff_cache", ".pytest_cache", "build", ".nova_nb"}
SERVER_START_TIMEOUT_S = 90.0
NOTEBOOK_TIMEOUT_S = 300


def log(message: str) -> None:
    print(f"[ci-binder] {message}", flush=True)


class Failure(Exception):
    pass


# ------------------------------------------------------------------------------------------------
# who runs it
# ------------------------------------------------------------------------------------------------


class Runner:
    """Runs commands as the unprivileged user (setpriv when we are root), with a clean environment."""

    def __init__(self, work: Path) -> None:
        self.root = os.geteuid() == 0
        if self.root:
            try:
                pwd.getpwnam(USER)
            except KeyError:
                subprocess.run(
                    ["useradd", "--create-home", "--user-group", "--shell", "/bin/bash", USER], check=True
                )
            entry = pwd.getpwnam(USER)
        else:
            entry = pwd.getpwuid(os.geteuid())
        self.name, self.uid, self.gid = entry.pw_name, entry.pw_uid, entry.pw_gid
        self.home = work / "home"  # a fresh HOME each run: no caches from a previous run
        self.env = {
            "HOME": str(self.home),
            "USER": self.name,
            "PATH": "/usr/local/bin:/usr/bin:/bin",
            "LANG": "C.UTF-8",
            "SHELL": "/bin/bash",
            "PIP_DISABLE_PIP_VERSION_CHECK": "1",
        }
        for name in (
            "PIP_CERT",
            "SSL_CERT_FILE",
            "PIP_INDEX_URL",
            "PIP_DEFAULT_TIMEOUT",
            "http_proxy",
            "https_proxy",
            "HTTP_PROXY",
            "HTTPS_PROXY",
            "no_proxy",
            "NO_PROXY",
        ):
            if name in os.environ:
                self.env[name] = os.environ[name]

    def chown(self, path: Path) -> None:
        if self.root:
            subprocess.run(["chown", "-R", f"{self.uid}:{self.gid}", str(path)], check=True)

    def argv(self, cmd: list[str], cgroup: Path | None = None) -> list[str]:
        prefix: list[str] = []
        if cgroup is not None:
            # Join the cgroup first (as root, who may write cgroup.procs), then drop privileges:
            # everything the command starts stays in the cgroup.
            prefix = ["sh", "-c", 'echo $$ > "$0/cgroup.procs" && exec "$@"', str(cgroup)]
        if self.root:
            prefix += ["setpriv", f"--reuid={self.uid}", f"--regid={self.gid}", "--init-groups", "--"]
        return prefix + cmd

    def run(
        self,
        cmd: list[str],
        *,
        cwd: Path,
        env: dict[str, str] | None = None,
        timeout: float,
        log_file: Path | None = None,
        cgroup: Path | None = None,
    ) -> float:
        """Run to completion; its output goes to log_file (printed on failure). Returns seconds taken."""
        started = time.monotonic()
        out = open(log_file, "w") if log_file else None
        try:
            result = subprocess.run(
                self.argv(cmd, cgroup),
                cwd=cwd,
                env={**self.env, **(env or {})},
                timeout=timeout,
                stdout=out or None,
                stderr=subprocess.STDOUT if out else None,
                stdin=subprocess.DEVNULL,
            )
        except subprocess.TimeoutExpired:
            raise Failure(f"{' '.join(cmd)} took longer than {timeout:.0f} s") from None
        finally:
            if out:
                out.close()
        if result.returncode != 0:
            if log_file:
                print(log_file.read_text()[-6000:], file=sys.stderr)
            raise Failure(f"{' '.join(cmd)} exited with {result.returncode}")
        return time.monotonic() - started


# ------------------------------------------------------------------------------------------------
# Python 3.12
# ------------------------------------------------------------------------------------------------


def find_python312() -> Path:
    """A CPython 3.12, as ./dev finds one: $NOVA_NB_BINDER_PYTHON, python3.12, pyenv's, /usr/local's."""
    candidates = [os.environ.get("NOVA_NB_BINDER_PYTHON", ""), shutil.which("python3.12") or ""]
    pyenv = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv")) / "versions"
    candidates += sorted((str(p / "bin/python3.12") for p in pyenv.glob("3.12*")), reverse=True)
    candidates += ["/usr/local/bin/python3.12", "/usr/bin/python3.12"]
    for candidate in candidates:
        if candidate and Path(candidate).is_file() and os.access(candidate, os.X_OK):
            real = Path(candidate).resolve()
            ok = subprocess.run(
                [str(real), "-c", "import sys, venv; sys.exit(sys.version_info[:2] != (3, 12))"],
                capture_output=True,
            )
            if ok.returncode == 0:
                return real
    raise Failure("no CPython 3.12 found (binder/runtime.txt says python-3.12); set NOVA_NB_BINDER_PYTHON")


def python_for_user(python: Path, runner: Runner, cache: Path) -> tuple[Path, dict[str, str]]:
    """The interpreter as the user can run it. pyenv's lives under /root, which other users cannot
    enter; then its installation is copied once (kept in the cache) and its shared libpython found
    through LD_LIBRARY_PATH, since the binary's run path names the original place."""
    probe = subprocess.run(runner.argv([str(python), "-c", "pass"]), env=runner.env, capture_output=True)
    if probe.returncode == 0:
        return python, {}
    prefix = Path(
        subprocess.check_output([str(python), "-c", "import sys; print(sys.base_prefix)"], text=True).strip()
    )
    version = subprocess.check_output(
        [str(python), "-c", "import platform; print(platform.python_version())"], text=True
    ).strip()
    copy = cache / f"cpython-{version}"
    if not (copy / "bin/python3.12").exists():
        log(f"{python} is not readable by {runner.name}; copying {prefix} to {copy}")
        shutil.rmtree(copy, ignore_errors=True)
        shutil.copytree(prefix, copy, symlinks=True)
        runner.chown(copy)
    return copy / "bin/python3.12", {"LD_LIBRARY_PATH": str(copy / "lib")}


# ------------------------------------------------------------------------------------------------
# memory ceiling and measurement
# ------------------------------------------------------------------------------------------------


def make_cgroup(name: str) -> tuple[Path | None, str]:
    """A memory cgroup with the ceiling, as a child of our own; (None, why) where none can be made."""
    try:
        lines = Path("/proc/self/cgroup").read_text().splitlines()
    except OSError as exc:
        return None, f"no /proc/self/cgroup ({exc})"
    for line in lines:
        _, controllers, path = line.split(":", 2)
        if controllers == "" and Path("/sys/fs/cgroup/cgroup.controllers").exists():
            parent = Path("/sys/fs/cgroup") / path.lstrip("/")
            limit_file = "memory.max"
        elif "memory" in controllers.split(","):
            parent = Path("/sys/fs/cgroup/memory") / path.lstrip("/")
            limit_file = "memory.limit_in_bytes"
        else:
            continue
        group = parent / name
        try:
            if group.exists():
                group.rmdir()
            group.mkdir()
            (group / limit_file).write_text(str(CEILING))
            if limit_file == "memory.limit_in_bytes" and (group / "memory.memsw.limit_in_bytes").exists():
                (group / "memory.memsw.limit_in_bytes").write_text(str(CEILING))
            return group, f"memory cgroup {group} ({limit_file} = {CEILING})"
        except OSError as exc:
            reason = f"cannot make a memory cgroup under {parent}: {exc}"
            continue
    return None, locals().get("reason", "no memory cgroup controller")


def cgroup_peak(group: Path | None) -> tuple[int | None, int | None]:
    """(peak usage incl. page cache, times the limit was hit) as the cgroup counted them."""
    if group is None:
        return None, None
    for peak_file, fail_file in (
        ("memory.max_usage_in_bytes", "memory.failcnt"),
        ("memory.peak", "memory.events"),
    ):
        if (group / peak_file).exists():
            peak = int((group / peak_file).read_text())
            text = (group / fail_file).read_text()
            if fail_file == "memory.events":
                fails = sum(
                    int(v) for k, v in (ln.split() for ln in text.splitlines()) if k in ("max", "oom")
                )
            else:
                fails = int(text)
            return peak, fails
    return None, None


class Sampler(threading.Thread):
    """Every 0.2 s: each process of the job (the cgroup's, or the user's descendants of ours), its own
    peak RSS so far (VmHWM), and the total of those over the processes alive at that moment."""

    def __init__(self, group: Path | None) -> None:
        super().__init__(daemon=True)
        self.group = group
        self.stop_event = threading.Event()
        self.peaks: dict[int, tuple[str, int]] = {}  # pid -> (role, VmHWM bytes)
        self.max_total = 0
        self.kernel_env_ok: set[bool] = set()
        self.others: dict[str, str] = {}  # role -> a command line, for the report

    def pids(self) -> list[int]:
        if self.group is not None:
            return [int(p) for p in (self.group / "cgroup.procs").read_text().split()]
        # No cgroup: this job's processes are our descendants.
        parents: dict[int, int] = {}
        for entry in Path("/proc").glob("[0-9]*"):
            try:
                # The command name (field 2) may hold spaces; the parent pid follows its ")".
                parents[int(entry.name)] = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
        ours, found = {os.getpid()}, []
        changed = True
        while changed:
            changed = False
            for pid, ppid in parents.items():
                if ppid in ours and pid not in ours:
                    ours.add(pid)
                    found.append(pid)
                    changed = True
        return found

    @staticmethod
    def role(argv: list[str]) -> str:
        text = " ".join(argv)
        if "ipykernel_launcher" in text:
            return "kernel"
        if "nbconvert" in text:
            return "nbconvert"
        if "jupyter" in text and "server" in text:
            return "server"
        return Path(argv[0]).name if argv else "?"

    def sample(self) -> None:
        total = 0
        for pid in self.pids():
            proc = Path(f"/proc/{pid}")
            try:
                argv = [a.decode(errors="replace") for a in (proc / "cmdline").read_bytes().split(b"\0") if a]
                status = (proc / "status").read_text()
            except OSError:
                continue
            hwm = next(
                (int(ln.split()[1]) * 1024 for ln in status.splitlines() if ln.startswith("VmHWM:")), 0
            )
            if not argv:  # exiting: its command line is gone, its last VmHWM is already recorded
                continue
            role = self.role(argv)
            if role not in ("kernel", "nbconvert", "server"):
                self.others.setdefault(role, " ".join(argv)[:200])
            if role == "kernel":
                try:
                    env = (proc / "environ").read_bytes().split(b"\0")
                    self.kernel_env_ok.add(b"AWS_EC2_METADATA_DISABLED=true" in env)
                except OSError:
                    pass
            self.peaks[pid] = (role, max(hwm, self.peaks.get(pid, ("", 0))[1]))
            total += self.peaks[pid][1]
        self.max_total = max(self.max_total, total)

    def run(self) -> None:
        while not self.stop_event.wait(0.2):
            self.sample()

    def stop(self) -> None:
        self.stop_event.set()
        self.join(timeout=5)
        self.sample()

    def by_role(self) -> dict[str, int]:
        roles: dict[str, int] = {}
        for role, hwm in self.peaks.values():
            roles[role] = max(roles.get(role, 0), hwm)
        return roles


# ------------------------------------------------------------------------------------------------
# the job
# ------------------------------------------------------------------------------------------------


def du(path: Path) -> int:
    return int(subprocess.check_output(["du", "-sb", str(path)], text=True).split()[0])


def added_on_binder(env_dir: Path, lock: Path) -> int:
    """Bytes of the installed distributions that repo2docker's conda environment does not already have:
    what pip and postBuild add on Binder. The lock marks the ones it has ("via repo2docker conda env",
    the constraint scripts/binder-lock.sh took from it). Sizes: the files each dist-info's RECORD lists."""
    preinstalled, name = set(), None
    for line in lock.read_text().splitlines():
        if line and line[0].isalnum() and "==" in line:
            name = line.split("==", 1)[0].lower().replace("_", "-").replace(".", "-")
        elif "repo2docker conda env" in line and name:
            preinstalled.add(name)
    total = 0
    for record in env_dir.glob("lib/python3.12/site-packages/*.dist-info/RECORD"):
        dist = record.parent.name.removesuffix(".dist-info").rsplit("-", 1)[0].lower().replace("_", "-")
        if dist in preinstalled or dist in ("pip",):
            continue
        for row in record.read_text().splitlines():
            # The file as installed (RECORD's size column is empty for the .pyc files pip compiles).
            path = record.parent.parent / row.rsplit(",", 2)[0]
            try:
                total += path.stat().st_size
            except OSError:
                continue
    return total


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def copy_repo(dest: Path) -> None:
    def ignore(directory: str, names: list[str]) -> set[str]:
        return {n for n in names if n in SKIP or n == "__pycache__" or n.endswith(".egg-info")}

    shutil.copytree(ROOT, dest, ignore=ignore, symlinks=True)


def wait_for_server(url: str, log_file: Path, proc: subprocess.Popen[bytes]) -> float:
    started = time.monotonic()
    while time.monotonic() - started < SERVER_START_TIMEOUT_S:
        if proc.poll() is not None:
            print(log_file.read_text()[-6000:], file=sys.stderr)
            raise Failure(f"the server exited with {proc.returncode} before answering")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return time.monotonic() - started
        except OSError:
            pass
        time.sleep(0.25)
    print(log_file.read_text()[-6000:], file=sys.stderr)
    raise Failure(f"the server did not answer {url.split('?')[0]} within {SERVER_START_TIMEOUT_S:.0f} s")


def stop_server(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)  # setpriv and binder/start exec: this is the server itself
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--work", type=Path, default=None, help="work directory (default: /var/tmp/nova-binder-ci)"
    )
    parser.add_argument("--cold", action="store_true", help="empty the pip download cache first")
    args = parser.parse_args()
    default_work = (
        Path("/var/tmp/nova-binder-ci") if os.geteuid() == 0 else Path(f"/tmp/nova-binder-ci-{os.geteuid()}")
    )
    work = (args.work or default_work).resolve()
    cache = work.parent / (work.name + "-cache")  # kept between runs: downloads and the Python copy
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    if args.cold:
        shutil.rmtree(cache / "pip", ignore_errors=True)
    (cache / "pip").mkdir(parents=True, exist_ok=True)
    job_started = time.monotonic()
    report: dict[str, object] = {"ceiling_bytes": CEILING}

    runner = Runner(work)
    runner.home.mkdir()
    runner.chown(work)
    runner.chown(cache / "pip")
    python, python_env = python_for_user(find_python312(), runner, cache)
    runner.env.update(python_env)
    log(f"user {runner.name} (uid {runner.uid}), Python {python}, work {work}")

    # 1. The environment, from the pinned files only.
    env_dir, repo = work / "env", work / "repo"
    runner.run([str(python), "-m", "venv", str(env_dir)], cwd=work, timeout=120)
    runner.env["PATH"] = f"{env_dir}/bin:{runner.env['PATH']}"
    runner.env["VIRTUAL_ENV"] = str(env_dir)
    # The pip repo2docker's conda environment has (named in the lock's header).
    pip_version = next(
        (
            ln.split(":", 1)[1].strip()
            for ln in (ROOT / "binder/requirements.txt").read_text().splitlines()
            if ln.startswith("# repo2docker-pip:")
        ),
        None,
    )
    if pip_version is None:
        raise Failure("binder/requirements.txt has no '# repo2docker-pip:' line; run scripts/binder-lock.sh")
    runner.run(
        ["python", "-m", "pip", "install", "--quiet", f"pip=={pip_version}"],
        cwd=work,
        timeout=120,
        env={"PIP_CACHE_DIR": str(cache / "pip")},
        log_file=work / "pip-pip.log",
    )
    # 2. The lock alone first, as repo2docker's cached layer does.
    (repo / "binder").mkdir(parents=True)
    shutil.copy2(ROOT / "binder/requirements.txt", repo / "binder/requirements.txt")
    runner.chown(repo)
    pip_s = runner.run(
        ["python", "-m", "pip", "install", "--quiet", "-r", "binder/requirements.txt"],
        cwd=repo,
        env={"PIP_CACHE_DIR": str(cache / "pip")},
        timeout=420,
        log_file=work / "pip.log",
    )
    report["pip_install_s"] = round(pip_s, 1)
    log(f"pip install -r binder/requirements.txt: {pip_s:.1f} s")
    # 3. The repository, then postBuild.
    shutil.rmtree(repo)
    copy_repo(repo)
    runner.chown(repo)
    post_s = runner.run(["./binder/postBuild"], cwd=repo, timeout=240, log_file=work / "postBuild.log")
    report["postbuild_s"] = round(post_s, 1)
    print((work / "postBuild.log").read_text(), end="")
    log(f"postBuild: {post_s:.1f} s")
    report["env_bytes"] = du(env_dir)
    report["home_bytes"] = du(runner.home)
    report["added_on_binder_bytes"] = added_on_binder(env_dir, repo / "binder/requirements.txt")
    log(
        f"environment: {report['env_bytes'] / 2**20:.0f} MiB in {env_dir}; "
        f"{report['home_bytes'] / 2**20:.1f} MiB in the user's home (font cache); of the environment, "
        f"{report['added_on_binder_bytes'] / 2**20:.0f} MiB are packages repo2docker's own environment lacks "
        "(what Binder adds)"
    )

    # 4-5. Server and notebooks, under the ceiling.
    group, how = make_cgroup(f"nova-binder-ci-{os.getpid()}")
    report["ceiling_enforced_by"] = how if group else f"measurement only ({how})"
    log(f"memory ceiling {CEILING / 2**20:.0f} MiB: {report['ceiling_enforced_by']}")
    sampler = Sampler(group)
    sampler.start()
    port, token = free_port(), secrets.token_hex(16)
    server_log = work / "server.log"
    server_cmd = [
        "./binder/start",
        "jupyter",
        "server",
        "--no-browser",
        "--ip=127.0.0.1",
        f"--port={port}",
        f"--IdentityProvider.token={token}",
        f"--ServerApp.root_dir={repo}",
    ]
    with open(server_log, "w") as out:
        server = subprocess.Popen(
            runner.argv(server_cmd, group),
            cwd=repo,
            env=runner.env,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    try:
        up_s = wait_for_server(f"http://127.0.0.1:{port}/api/status?token={token}", server_log, server)
        log(f"server answered /api/status after {up_s:.1f} s")
        if EXTENSION_LOG not in server_log.read_text():
            print(server_log.read_text()[-6000:], file=sys.stderr)
            raise Failure(f"the server did not load {EXTENSION} (no '{EXTENSION_LOG}' in its log)")
        listing = subprocess.run(
            runner.argv(["jupyter", "server", "extension", "list"]),
            cwd=repo,
            env={**runner.env, "NO_COLOR": "1"},
            capture_output=True,
            text=True,
            timeout=60,
        )
        plain = (listing.stdout + listing.stderr).replace("\x1b[32m", "").replace("\x1b[0m", "")
        if f"{EXTENSION} enabled" not in plain:
            print(plain, file=sys.stderr)
            raise Failure(f"'jupyter server extension list' does not list {EXTENSION} as enabled")
        log(f"{EXTENSION}: listed as enabled, and loaded by the running server")
        times = {}
        for name in NOTEBOOKS:
            seconds = runner.run(
                [
                    "./binder/start",
                    "jupyter",
                    "nbconvert",
                    "--to",
                    "notebook",
                    "--execute",
                    f"--ExecutePreprocessor.timeout={NOTEBOOK_TIMEOUT_S}",
                    "--output-dir",
                    str(work / "executed"),
                    f"notebooks/{name}",
                ],
                cwd=repo,
                timeout=NOTEBOOK_TIMEOUT_S + 60,
                log_file=work / f"{name}.log",
                cgroup=group,
            )
            times[name] = round(seconds, 1)
            log(f"{name}: executed in {seconds:.1f} s")
        report["notebook_s"] = times
    finally:
        stop_server(server)
        sampler.stop()
        peak, fails = cgroup_peak(group)
        if group is not None:
            for _ in range(50):
                try:
                    group.rmdir()
                    break
                except OSError:
                    time.sleep(0.1)

    roles = sampler.by_role()
    report["peak_rss_by_role_bytes"] = roles
    report["other_processes"] = sampler.others
    report["peak_total_rss_bytes"] = sampler.max_total
    report["cgroup_peak_bytes"] = peak
    report["cgroup_limit_hits"] = fails
    log("peak RSS: " + ", ".join(f"{role} {b / 2**20:.0f} MiB" for role, b in sorted(roles.items())))
    log(
        f"peak total RSS of the processes alive together: {sampler.max_total / 2**20:.0f} MiB "
        f"(ceiling {CEILING / 2**20:.0f} MiB)"
        + (
            f"; the cgroup's own peak, page cache included: {peak / 2**20:.0f} MiB, limit hit {fails} times"
            if peak is not None
            else ""
        )
    )
    if sampler.max_total > CEILING:
        raise Failure(f"the server and notebooks together took {sampler.max_total / 2**20:.0f} MiB")
    if sampler.kernel_env_ok != {True}:
        raise Failure("a kernel ran without AWS_EC2_METADATA_DISABLED=true (binder/start not in effect?)")
    report["job_s"] = round(time.monotonic() - job_started, 1)
    artifacts = Path(os.environ.get("NOVA_NB_TEST_ARTIFACTS", work))
    artifacts.mkdir(parents=True, exist_ok=True)
    (artifacts / "binder-ci.json").write_text(json.dumps(report, indent=2) + "\n")
    log(f"done in {report['job_s']} s; figures in {artifacts / 'binder-ci.json'}")
    return 0


if __name__ == "__main__":
    # ci-binder.sh's timeout sends SIGTERM: unwind, so that the server is stopped and the cgroup removed.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        sys.exit(main())
    except Failure as exc:
        log(f"FAILED: {exc}")
        sys.exit(1)
