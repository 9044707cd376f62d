"""Build every image of the stack: `make images` (doc/containers.md).

With a Docker engine, or a registry podman can pull from, the Dockerfiles build as they are
(`FROM python:3.11-slim`, `FROM nginx:1.27`, packages from PyPI). Where no registry is reachable,
as on an air-gapped hospital network, the bases are made here instead: a minimal Debian bookworm
made with debootstrap and imported, then Debian's python3 and nginx on it (Debian's mirror, or the
hospital's copy of it); and the Python packages come from a wheelhouse built on this host from
constraints.txt, which the images install from alone (`--no-index`). Nothing of this machine's
own configuration (certificates, pip settings, proxies) goes into an image.
"""

import argparse
import hashlib
import inspect
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import IO

ROOT = Path(__file__).resolve().parents[1]
CONTAINERS = ROOT / "containers"
WHEELHOUSE = CONTAINERS / "wheelhouse"
MIRROR = os.environ.get("DEBIAN_MIRROR", "http://deb.debian.org/debian")
SUITE = "bookworm"
DEBIAN = f"localhost/painkiller/debian:{SUITE}"
PYTHON_BASE = f"localhost/painkiller/debian-python:{SUITE}"
NGINX_BASE = f"localhost/painkiller/debian-nginx:{SUITE}"
REGISTRY_PROBE = "docker.io/library/python:3.11-slim"


@dataclass(frozen=True)
class Image:
    name: str
    dockerfile: str
    target: str | None = None
    service: str | None = None  # SERVICE, for containers/service.Dockerfile


SERVICES = ("patient", "measurement")
SERVICE_DOCKERFILE = "containers/service.Dockerfile"
IMAGES = [
    *(Image(f"painkiller/{service}-service", SERVICE_DOCKERFILE, service=service) for service in SERVICES),
    *(Image(f"painkiller/{service}-service:test", SERVICE_DOCKERFILE, "test", service) for service in SERVICES),
    Image("painkiller/nginx", "nginx/Dockerfile"),
]


def engine() -> list[str]:
    """`docker` where a Docker engine answers, else podman with the project's settings."""
    if shutil.which("docker") and subprocess.run(["docker", "info"], capture_output=True).returncode == 0:
        return ["docker"]
    if shutil.which("podman"):
        return ["podman"]
    sys.exit("Neither a Docker engine nor podman is available: apt-get install podman runc debootstrap")


def engine_env() -> dict[str, str]:
    return {**os.environ, "CONTAINERS_CONF": str(CONTAINERS / "containers.conf")}


def run(*args: str, cwd: Path | None = None, stdin: IO[bytes] | None = None, quiet: bool = False) -> None:
    print("+", " ".join(args), flush=True)
    subprocess.run(args, check=True, env=engine_env(), cwd=cwd, stdin=stdin,
                   stdout=subprocess.DEVNULL if quiet else None)  # fmt: skip


def image_exists(tool: list[str], name: str) -> bool:
    return subprocess.run([*tool, "image", "inspect", name], capture_output=True, env=engine_env()).returncode == 0


def registry_reachable(tool: list[str]) -> bool:
    if tool == ["docker"] or image_exists(tool, REGISTRY_PROBE):
        return True
    probe = subprocess.run([*tool, "pull", "--quiet", REGISTRY_PROBE], capture_output=True, env=engine_env())
    return probe.returncode == 0


def recipe_label(*parts: str) -> str:
    """A hash of what a base is made from: a base is made again only when its recipe changes."""
    return hashlib.sha256("\n".join([SUITE, MIRROR, *parts]).encode()).hexdigest()[:16]


def label_of(tool: list[str], name: str) -> str | None:
    found = subprocess.run(
        [*tool, "image", "inspect", "--format", '{{ index .Config.Labels "painkiller.recipe" }}', name],
        capture_output=True,
        text=True,
        env=engine_env(),
    )
    return found.stdout.strip() if found.returncode == 0 else None


def debian_base(tool: list[str]) -> None:
    """A minimal Debian made with debootstrap, imported as DEBIAN (once per recipe)."""
    label = recipe_label(DPKG_EXCLUDES, inspect.getsource(slim))
    if label_of(tool, DEBIAN) == label:
        return
    if not shutil.which("debootstrap"):
        sys.exit("debootstrap is needed to make a base image offline: apt-get install debootstrap")
    with tempfile.TemporaryDirectory(prefix="painkiller-rootfs-") as rootfs:
        run("debootstrap", "--variant=minbase", SUITE, rootfs, MIRROR, quiet=True)
        slim(Path(rootfs))
        tar = subprocess.Popen(["tar", "-C", rootfs, "-c", "."], stdout=subprocess.PIPE)
        run(*tool, "import", "--change", f"LABEL painkiller.recipe={label}", "--change", 'CMD ["bash"]',
            "-", DEBIAN, stdin=tar.stdout)  # fmt: skip
        tar.wait()


# What a container never reads: manuals, translations, docs (their copyright notices stay), and
# apt's caches. dpkg leaves them out of what is installed later too, as Debian's slim images do.
DPKG_EXCLUDES = """\
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
path-include /usr/share/locale/locale.alias
"""


def slim(rootfs: Path) -> None:
    (rootfs / "etc/dpkg/dpkg.cfg.d/painkiller-slim").write_text(DPKG_EXCLUDES)
    (rootfs / "etc/apt/apt.conf.d/painkiller-clean").write_text(
        'DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/*.bin || true"; };\n'
    )
    for pattern in ("usr/share/man/*", "usr/share/info/*", "var/cache/apt/*.bin", "var/cache/apt/archives/*.deb",
                    "var/lib/apt/lists/*"):  # fmt: skip
        for path in rootfs.glob(pattern):
            shutil.rmtree(path) if path.is_dir() and not path.is_symlink() else path.unlink()
    for path in (rootfs / "usr/share/locale").iterdir():
        if path.name != "locale.alias":
            shutil.rmtree(path) if path.is_dir() else path.unlink()
    for doc in (rootfs / "usr/share/doc").iterdir():
        for path in doc.iterdir() if doc.is_dir() and not doc.is_symlink() else []:
            if path.name != "copyright":
                shutil.rmtree(path) if path.is_dir() and not path.is_symlink() else path.unlink()


def base_on_debian(tool: list[str], name: str, dockerfile: Path) -> None:
    label = recipe_label(label_of(tool, DEBIAN) or "", dockerfile.read_text())
    if label_of(tool, name) == label:
        return
    run(*tool, "build", "--network", "host", "--label", f"painkiller.recipe={label}",
        "--build-arg", f"BASE={DEBIAN}", "-f", str(dockerfile), "-t", name, str(CONTAINERS))  # fmt: skip


def wheelhouse() -> None:
    """Every package the images install, as wheels built here from constraints.txt."""
    for wheel in WHEELHOUSE.glob("*.whl"):
        wheel.unlink()
    run(sys.executable, "-m", "pip", "wheel", "--quiet", "--disable-pip-version-check",
        "--wheel-dir", str(WHEELHOUSE), "-c", str(ROOT / "constraints.txt"),
        "./common", "./patient_service", "./measurement_service", "pytest", "hl7", "setuptools", "wheel",
        cwd=ROOT)  # fmt: skip


def build(offline: bool | None = None) -> None:
    """Build every image; offline (None: when no registry answers) from local bases and the
    wheelhouse."""
    tool = engine()
    if offline is None:
        offline = not registry_reachable(tool)
    args: list[str] = []
    if offline:
        debian_base(tool)
        base_on_debian(tool, PYTHON_BASE, CONTAINERS / "debian-python.Dockerfile")
        base_on_debian(tool, NGINX_BASE, CONTAINERS / "debian-nginx.Dockerfile")
        wheelhouse()
        args = ["--build-arg", f"PYTHON_BASE={PYTHON_BASE}", "--build-arg", f"NGINX_BASE={NGINX_BASE}",
                "--build-arg", "PIP_OPTIONS=--no-index --find-links /wheelhouse"]  # fmt: skip
    try:
        for image in IMAGES:
            target = ["--target", image.target] if image.target else []
            service = ["--build-arg", f"SERVICE={image.service}"] if image.service else []
            run(*tool, "build", "--network", "host", *args, *service, *target, "-f", image.dockerfile,
                "-t", image.name, ".", cwd=ROOT)  # fmt: skip
    finally:
        for wheel in WHEELHOUSE.glob("*.whl"):  # the build context stays small for the next build
            wheel.unlink()


def sizes(tool: list[str] | None = None) -> dict[str, int]:
    """Each built image's size in bytes."""
    tool = tool or engine()
    found = {}
    for image in IMAGES:
        out = subprocess.run([*tool, "image", "inspect", "--format", "{{.Size}}", image.name],
                             capture_output=True, text=True, env=engine_env(), check=True)  # fmt: skip
        found[image.name] = int(out.stdout.strip())
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--offline", action="store_true", help="use the local bases even if a registry answers")
    args = parser.parse_args()
    build(offline=True if args.offline else None)
    for name, size in sizes().items():
        print(f"{name}: {size / 1e6:.0f} MB")


if __name__ == "__main__":
    main()
