"""A private Docker daemon, a Debian base image made with debootstrap, and the image's build context.

Nothing here reaches a container registry: the base is a bookworm minbase root file system
imported with ``docker import``, and the image is built FROM it with the host's CPU torch wheel
and version pins, so the container computes what the host computes.

Expensive things are kept between runs under :func:`cache_dir` (``~/.cache/tilecast-container``,
or ``$TILECAST_CONTAINER_CACHE``), held by one test run at a time (a lock file):

- ``rootfs-bookworm-<key>.tar``, the debootstrap root file system (key: suite, packages, mirror);
- ``docker/``, the daemon's data root: the imported base and the image's layers, so a second run
  rebuilds only what changed (Docker's own cache, keyed by each instruction and the checksums of
  the files it copies). Untagged images are pruned at the end of each run.

The daemon's socket, exec root and pid file live in a fresh folder under /tmp; stopping the
daemon unmounts whatever it left mounted there and under the data root. The Debian mirror is
``$TILECAST_DEBIAN_MIRROR`` (default deb.debian.org).
"""

from __future__ import annotations

import ast
import contextlib
import fcntl
import hashlib
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name, parse_wheel_filename

log = logging.getLogger(__name__)

REPO = Path(__file__).resolve().parents[2]

DEBIAN_SUITE = "bookworm"
DEBIAN_PACKAGES = ("python3", "python3-venv", "ca-certificates")
DEBIAN_MIRROR = os.environ.get("TILECAST_DEBIAN_MIRROR", "http://deb.debian.org/debian")
# removed from the root file system before it becomes the base (what debian:*-slim leaves out)
ROOTFS_TRIM = (
    "var/cache/apt/archives",
    "var/lib/apt/lists",
    "usr/share/doc",
    "usr/share/man",
    "usr/share/info",
    "usr/share/locale",
)
# Docker's predefined build args: passed through when set, never stored in the image
PROXY_VARIABLES = tuple(
    v
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "ALL_PROXY")
    for v in (name, name.lower())
)
LOCAL_CA_DIR = Path("/usr/local/share/ca-certificates")  # what update-ca-certificates adds
CGROUP_PARENT = "tilecast-test"  # the containers' cgroups, apart from any other Docker's


class CommandError(AssertionError):
    """A command the fixture ran failed; the message holds its command line and output tail."""


def run(
    cmd: Sequence[str | os.PathLike[str]],
    *,
    timeout: float,
    env: Mapping[str, str] | None = None,
    log_to: Path | None = None,
    check: bool = True,
) -> subprocess.CompletedProcess[str]:
    """Run ``cmd``; its output goes to ``log_to`` (appended) or is captured. Raises
    :class:`CommandError` with the output's last lines when it fails and ``check`` is set."""
    args = [os.fspath(c) for c in cmd]
    start = time.monotonic()
    if log_to is None:
        proc = subprocess.run(
            args, env=env, timeout=timeout, capture_output=True, text=True, check=False
        )
        output = proc.stdout + proc.stderr
    else:
        with log_to.open("a") as fh:
            fh.write(f"$ {' '.join(args)}\n")
            fh.flush()
            proc = subprocess.run(
                args, env=env, timeout=timeout, stdout=fh, stderr=subprocess.STDOUT, text=True
            )
        output = log_to.read_text(errors="replace")
    log.debug("%s: exit %d in %.1f s", args[:3], proc.returncode, time.monotonic() - start)
    if check and proc.returncode != 0:
        tail = "\n".join(output.splitlines()[-60:])
        raise CommandError(f"{' '.join(args)} exited {proc.returncode}:\n{tail}")
    return proc


# --- the tools ------------------------------------------------------------------------------


def ensure_tools() -> None:
    """dockerd, docker and debootstrap, installed with apt-get when missing; skips the test only
    when they cannot be (not root, or no apt-get)."""
    if os.geteuid() != 0:
        pytest.skip("the image test starts its own dockerd and runs debootstrap: both need root")
    missing = [t for t in ("dockerd", "docker", "debootstrap") if shutil.which(t) is None]
    if not missing:
        return
    if shutil.which("apt-get") is None:
        pytest.skip(f"{', '.join(missing)} missing and no apt-get to install docker.io debootstrap")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    run(["apt-get", "update", "-q"], timeout=600, env=env)
    run(["apt-get", "install", "-y", "-q", "docker.io", "debootstrap"], timeout=900, env=env)
    still = [t for t in ("dockerd", "docker", "debootstrap") if shutil.which(t) is None]
    assert not still, f"apt-get install docker.io debootstrap left {still} missing"


# --- the cache ------------------------------------------------------------------------------


def cache_dir() -> Path:
    default = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    path = Path(os.environ.get("TILECAST_CONTAINER_CACHE") or default / "tilecast-container")
    path.mkdir(parents=True, exist_ok=True)
    return path


@contextlib.contextmanager
def cache_lock(cache: Path, timeout: float = 1800.0) -> Iterator[None]:
    """Hold the cache (and the daemon that uses its data root) for one test run at a time."""
    with (cache / ".lock").open("w") as fh:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise TimeoutError(
                        f"{cache} stayed locked by another run for {timeout} s"
                    ) from None
                time.sleep(2)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


# --- mounts and the daemon ------------------------------------------------------------------


def mounts_under(path: Path) -> list[str]:
    """Mount points at or below ``path`` (from /proc/self/mountinfo), deepest first."""
    prefix = os.path.realpath(path)
    points = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        point = line.split()[4].encode().decode("unicode_escape")  # \040 etc.
        if point == prefix or point.startswith(prefix + "/"):
            points.append(point)
    return sorted(set(points), key=len, reverse=True)


def unmount_under(path: Path) -> None:
    """Unmount everything at or below ``path`` (lazily when busy); fails when a mount stays."""
    for _ in range(5):
        points = mounts_under(path)
        if not points:
            return
        for point in points:
            if run(["umount", point], timeout=60, check=False).returncode != 0:
                run(["umount", "-l", point], timeout=60, check=False)
    left = mounts_under(path)
    assert not left, f"still mounted after cleanup: {left}"


def _pids_mentioning(text: str) -> list[int]:
    """Processes whose command line names ``text`` (the daemon's own folder: its containerd and
    shims), this process excluded."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        with contextlib.suppress(OSError):
            if text.encode() in (entry / "cmdline").read_bytes():
                found.append(int(entry.name))
    return found


class Dockerd:
    """``dockerd`` on a private socket, exec root and pid file, with ``data_root`` as its store.

    Host networking only (no bridge, no iptables); its own containerd namespace, so a system
    Docker on the same machine is left alone. Use as a context manager: leaving it stops the
    daemon, kills anything it left running and unmounts what it mounted, whatever happened.
    """

    def __init__(self, data_root: Path) -> None:
        self.data_root = data_root
        self.run_dir = Path(tempfile.mkdtemp(prefix="tc-dockerd-", dir="/tmp"))  # short: sockets
        self.socket = self.run_dir / "docker.sock"
        self.exec_root = self.run_dir / "exec"
        self.log_path = self.run_dir / "dockerd.log"
        self.proc: subprocess.Popen[bytes] | None = None
        dockerd = shutil.which("dockerd")
        assert dockerd is not None
        self.dockerd = dockerd
        # the client installed beside the daemon when there is one (same release)
        beside = Path(dockerd).resolve().parent.parent / "bin" / "docker"
        self.client = str(beside) if beside.is_file() else shutil.which("docker") or "docker"
        self.env = {
            **os.environ,
            "DOCKER_HOST": f"unix://{self.socket}",
            "DOCKER_CONFIG": str(self.run_dir / "client"),
            "DOCKER_BUILDKIT": "0",  # the classic builder: no buildx plugin, no frontend image
            "DOCKER_CLI_HINTS": "false",
        }

    def __enter__(self) -> Dockerd:
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _start(self, timeout: float = 90.0) -> None:
        try:
            self._start_once(timeout)
        except CommandError as err:  # a data root left broken by a killed run: start afresh
            log.warning(
                "dockerd did not start on %s (%s); retrying on an empty one", self.data_root, err
            )
            self.stop(keep_run_dir=True)
            shutil.rmtree(self.data_root, ignore_errors=True)
            self._start_once(timeout)

    def _start_once(self, timeout: float) -> None:
        unmount_under(self.data_root)
        self.data_root.mkdir(parents=True, exist_ok=True)
        cmd = [
            self.dockerd,
            "--host",
            f"unix://{self.socket}",
            "--data-root",
            str(self.data_root),
            "--exec-root",
            str(self.exec_root),
            "--pidfile",
            str(self.run_dir / "dockerd.pid"),
            "--iptables=false",
            "--ip-masq=false",
            "--bridge=none",
            "--containerd-namespace=tilecast-test",
            "--containerd-plugins-namespace=tilecast-test-plugins",
            f"--cgroup-parent={CGROUP_PARENT}",
        ]
        with self.log_path.open("a") as fh:
            self.proc = subprocess.Popen(
                cmd, stdout=fh, stderr=subprocess.STDOUT, start_new_session=True
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                break
            if self.docker("version", check=False, timeout=20).returncode == 0:
                return
            time.sleep(0.5)
        tail = "\n".join(self.log_path.read_text(errors="replace").splitlines()[-30:])
        raise CommandError(f"dockerd did not answer on {self.socket} within {timeout} s:\n{tail}")

    def docker(
        self,
        *args: str | os.PathLike[str],
        timeout: float = 120,
        check: bool = True,
        log_to: Path | None = None,
    ) -> subprocess.CompletedProcess[str]:
        return run([self.client, *args], timeout=timeout, env=self.env, check=check, log_to=log_to)

    def stop(self, *, keep_run_dir: bool = False) -> None:
        """Stop the daemon and everything it started; unmount what it mounted. Never raises
        before the cleanup is done."""
        errors: list[str] = []
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(Exception):
                ids = self.docker("ps", "--all", "--quiet", check=False, timeout=30).stdout.split()
                if ids:
                    self.docker("rm", "--force", *ids, check=False, timeout=120)
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                errors.append("dockerd ignored SIGTERM for 60 s; killed")
                self.proc.kill()
                with contextlib.suppress(subprocess.TimeoutExpired):
                    self.proc.wait(timeout=30)
        self.proc = None
        # its containerd and any shim outlive a daemon that was killed: they name our folder
        for pid in _pids_mentioning(str(self.run_dir)):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        try:
            unmount_under(self.run_dir)
            unmount_under(self.data_root)
        except AssertionError as err:
            errors.append(str(err))
        # the (empty) cgroups the containers ran under; rmdir refuses one still in use
        for group in [
            *Path("/sys/fs/cgroup").glob(f"*/{CGROUP_PARENT}"),
            Path("/sys/fs/cgroup", CGROUP_PARENT),
        ]:
            with contextlib.suppress(OSError):
                group.rmdir()
        if not keep_run_dir:
            shutil.rmtree(self.run_dir, ignore_errors=True)
        assert not errors, "; ".join(errors)

    def has_image(self, ref: str) -> bool:
        return self.docker("image", "inspect", ref, check=False, timeout=30).returncode == 0


# --- the base image -------------------------------------------------------------------------


def debian_base(daemon: Dockerd, cache: Path, log_to: Path) -> str:
    """The tag of a Debian minbase image with :data:`DEBIAN_PACKAGES`, imported into ``daemon``
    from a cached debootstrap root file system (made when missing)."""
    spec = json.dumps([DEBIAN_SUITE, "minbase", DEBIAN_PACKAGES, DEBIAN_MIRROR, ROOTFS_TRIM])
    key = hashlib.sha256(spec.encode()).hexdigest()[:12]
    tag = f"tilecast-test-base:{DEBIAN_SUITE}-{key}"
    if daemon.has_image(tag):
        return tag
    tarball = cache / f"rootfs-{DEBIAN_SUITE}-{key}.tar"
    if not tarball.is_file():
        work = Path(tempfile.mkdtemp(prefix="rootfs-", dir=cache))
        try:
            rootfs = work / "rootfs"
            run(
                [
                    "debootstrap",
                    "--variant=minbase",
                    f"--include={','.join(DEBIAN_PACKAGES)}",
                    DEBIAN_SUITE,
                    rootfs,
                    DEBIAN_MIRROR,
                ],
                timeout=1800,
                log_to=log_to,
            )
            for rel in ROOTFS_TRIM:
                for child in (rootfs / rel).glob("*"):
                    if child.is_dir() and not child.is_symlink():
                        shutil.rmtree(child)
                    else:
                        child.unlink()
            run(
                ["tar", "--numeric-owner", "-C", rootfs, "-cf", work / "rootfs.tar", "."],
                timeout=600,
            )
            os.replace(work / "rootfs.tar", tarball)
        finally:
            unmount_under(work)  # debootstrap mounts /proc and /sys in the target while it works
            shutil.rmtree(work, ignore_errors=True)
    daemon.docker("import", tarball, tag, timeout=600)
    return tag


# --- the build context ----------------------------------------------------------------------


def pinned_requirements(
    root: str = "tilecast", extras: Sequence[str] = ("report", "serve")
) -> dict[str, str]:
    """``{name: version}`` of every installed distribution that ``root[extras]`` needs, walked
    through this interpreter's metadata (``root`` itself left out)."""
    pins: dict[str, str] = {}
    seen: set[tuple[str, frozenset[str]]] = set()
    todo = [(root, frozenset(extras))]
    while todo:
        name, wanted = todo.pop()
        if (canonicalize_name(name), wanted) in seen:
            continue
        seen.add((canonicalize_name(name), wanted))
        dist = metadata.distribution(name)
        if canonicalize_name(name) != canonicalize_name(root):
            pins[canonicalize_name(name)] = dist.version
        for text in dist.requires or []:
            req = Requirement(text)
            if req.marker and not any(req.marker.evaluate({"extra": e}) for e in {"", *wanted}):
                continue
            todo.append((req.name, frozenset(req.extras)))
    return dict(sorted(pins.items()))


def pip_config() -> dict[str, list[str]]:
    """pip's settings as ``pip config list`` shows them (files and PIP_* variables), by option:
    ``{"find-links": [...], "index-url": [...], ...}``, the environment's first."""
    out = run([sys.executable, "-m", "pip", "config", "list"], timeout=60).stdout
    options: dict[str, list[str]] = {}
    for line in sorted(out.splitlines(), key=lambda s: not s.startswith(":env:")):
        key, sep, raw = line.partition("=")
        if not sep:
            continue
        value = ast.literal_eval(raw) if raw[:1] in "'\"" else raw
        options.setdefault(key.rsplit(".", 1)[-1], []).extend(str(value).split())
    return options


def is_url(value: str) -> bool:
    return value.startswith(("http://", "https://"))


def pip_build_args(options: Mapping[str, list[str]]) -> dict[str, str]:
    """The build args that hand the host's remote pip sources to the build (local paths and
    file:// indexes do not exist there: wheels from local folders travel in the context)."""
    args = {}
    if index := [v for v in options.get("index-url", []) if is_url(v)]:
        args["PIP_INDEX_URL"] = index[0]
    for option, arg in (
        ("extra-index-url", "PIP_EXTRA_INDEX_URL"),
        ("find-links", "PIP_FIND_LINKS"),
        ("trusted-host", "PIP_TRUSTED_HOST"),
    ):
        values = options.get(option, [])
        if option != "trusted-host":
            values = [v for v in values if is_url(v)]
        if values:
            args[arg] = " ".join(dict.fromkeys(values))
    return args


def local_wheel_dirs(options: Mapping[str, list[str]]) -> list[Path]:
    dirs = []
    for value in options.get("find-links", []):
        path = Path(value.removeprefix("file://"))
        if not is_url(value) and path.is_dir():
            dirs.append(path)
    return list(dict.fromkeys(dirs))


def make_build_context(
    dest: Path, *, pins: Mapping[str, str], wheel_dirs: Sequence[Path], ca_dir: Path = LOCAL_CA_DIR
) -> dict[str, list[str]]:
    """The repository's files that .dockerignore lets in (its ``!`` lines), plus, under docker/:
    ``constraints.txt`` (``pins``), ``wheels/`` (the wheels in ``wheel_dirs`` of a pinned version)
    and ``ca-certificates/`` (the machine's locally added CAs). Returns what was added."""
    dest.mkdir(parents=True, exist_ok=True)
    for name in ("Dockerfile", ".dockerignore"):
        shutil.copy2(REPO / name, dest / name)
    for line in (REPO / ".dockerignore").read_text().splitlines():
        if not line.startswith("!"):
            continue
        rel = line[1:].strip().strip("/")
        src, dst = REPO / rel, dest / rel
        if src.is_dir():
            shutil.copytree(
                src, dst, ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")
            )
        elif src.is_file():
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dst)
    docker = dest / "docker"
    (docker / "constraints.txt").write_text("".join(f"{n}=={v}\n" for n, v in pins.items()))
    added: dict[str, list[str]] = {"wheels": [], "ca-certificates": []}
    (docker / "wheels").mkdir(parents=True, exist_ok=True)
    for folder in wheel_dirs:
        for wheel in sorted(folder.glob("*.whl")):
            name, version, _, _ = parse_wheel_filename(wheel.name)
            if pins.get(name) == str(version):
                _link_or_copy(wheel, docker / "wheels" / wheel.name)
                added["wheels"].append(wheel.name)
    (docker / "ca-certificates").mkdir(parents=True, exist_ok=True)
    for cert in sorted(ca_dir.rglob("*.crt")) if ca_dir.is_dir() else []:
        shutil.copy2(cert, docker / "ca-certificates" / cert.name)
        added["ca-certificates"].append(cert.name)
    return added


def _link_or_copy(src: Path, dst: Path) -> None:
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def proxy_build_args(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    env = os.environ if environ is None else environ
    return {name: env[name] for name in PROXY_VARIABLES if env.get(name)}
