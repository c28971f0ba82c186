"""Debian packages for the project's guest and nested-KVM images: the candidate .deb of a package,
downloaded once into ~/.cache/minivmm/debs, unpacked with dpkg-deb, and the load order of a Debian
kernel's modules (from each .ko's `depends=`; the .deb ships no modules.dep).

Used by scripts/build-guest-image (the Linux guest image) and tests/harness/nested_kvm.py (the L1 VM that
gives this host a real KVM). Needs apt's package lists (`apt-get update` once) and network access
only for a package that is not cached yet."""
import lzma
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

CACHE = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "minivmm"


class DebError(Exception):
    """A package could not be found, downloaded or unpacked; the message says which and why."""


def run(cmd, **kw):
    try:
        return subprocess.run([str(c) for c in cmd], check=True, **kw)
    except FileNotFoundError:
        raise DebError(f"{cmd[0]} is not installed") from None
    except subprocess.CalledProcessError as e:
        raise DebError(f"{' '.join(map(str, cmd))} failed with status {e.returncode}") from None


def candidate(package):
    """(version, Depends) of the package's candidate version in the apt cache."""
    out = subprocess.run(["apt-cache", "show", "--no-all-versions", package], capture_output=True, text=True)
    fields = dict(re.findall(r"^(Version|Depends): (.*)$", out.stdout, re.M))
    if out.returncode != 0 or "Version" not in fields:
        raise DebError(f"apt knows no package {package} (run apt-get update)")
    return fields["Version"], fields.get("Depends", "")


def fetch(package, say=print):
    """(path of the candidate .deb, version), downloaded once into CACHE/debs. Safe to run from several
    processes at once: each downloads into its own directory and the first to finish names it."""
    version, _ = candidate(package)
    (CACHE / "debs").mkdir(parents=True, exist_ok=True)
    directory = CACHE / "debs" / f"{package}_{version.replace(':', '%3a')}"
    debs = sorted(directory.glob("*.deb"))
    if not debs:
        say(f"downloading {package} {version}")
        tmp = Path(tempfile.mkdtemp(prefix="dl-", dir=CACHE / "debs"))
        sandbox = ["-o", "APT::Sandbox::User=root"] if os.geteuid() == 0 else []
        try:
            run(["apt-get", "download", "-q", *sandbox, f"{package}={version}"], cwd=tmp,
                stdout=subprocess.DEVNULL)
            try:
                tmp.rename(directory)
            except OSError:
                if not sorted(directory.glob("*.deb")):  # not another process's finished download
                    raise
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        debs = sorted(directory.glob("*.deb"))
    if not debs:
        raise DebError(f"no .deb of {package} in {directory}")
    return debs[0], version


def extract(deb, dest):
    """dpkg-deb -x into a fresh dest (removed first); returns dest."""
    dest = Path(dest)
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    run(["dpkg-deb", "-x", deb, dest])
    return dest


def module_depends(path):
    """The `depends=` entry of a module's .modinfo section (what modinfo -F depends prints)."""
    body = path.read_bytes()
    if path.name.endswith(".xz"):
        body = lzma.decompress(body)
    m = re.search(rb"(?:^|\0)depends=([^\0]*)\0", body)
    return [d.decode() for d in m.group(1).split(b",") if d] if m else []


class KernelPackage:
    """Debian's stock kernel (the package the meta-package `meta` depends on: linux-image-amd64, 6.1
    on Debian 12; linux-image-6.12-amd64, the newer kernel Debian 12 ships), unpacked into `work`."""

    def __init__(self, work, say=print, meta="linux-image-amd64"):
        _, depends = candidate(meta)
        image_pkg = re.match(r"(linux-image-[^\s,|]+)", depends)
        if not image_pkg:
            raise DebError(f"cannot find the kernel package in {meta}'s Depends: {depends}")
        self.deb, self.version = fetch(image_pkg.group(1), say)
        root = extract(self.deb, Path(work) / ("linux-image" if meta == "linux-image-amd64" else meta))
        self.vmlinuz = next(iter(sorted((root / "boot").glob("vmlinuz-*"))), None)
        if self.vmlinuz is None:
            raise DebError(f"no boot/vmlinuz-* in {self.deb.name}")
        moddir = next((root / "lib/modules").iterdir())
        self.builtin = {Path(line).stem.replace("-", "_") for line in (moddir / "modules.builtin").read_text().split()}
        self.files = {p.name.split(".ko")[0].replace("-", "_"): p for p in (moddir / "kernel").rglob("*.ko*")}

    def modules(self, names):
        """Module files for `names` and everything they depend on, dependencies first; built-in ones
        are left out."""
        order = []

        def add(name):
            name = name.replace("-", "_")
            if name in self.builtin or name in order:
                return
            if name not in self.files:
                raise DebError(f"module {name} is neither built into {self.vmlinuz.name} nor shipped with it")
            for dep in module_depends(self.files[name]):
                add(dep)
            order.append(name)

        for name in names:
            add(name)
        return [self.files[name] for name in order]
