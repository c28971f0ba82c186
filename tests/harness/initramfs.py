"""An initramfs for a Debian kernel: a cpio "newc" archive, gzip-compressed, holding busybox, an /init
script, kernel modules listed in load order in /etc/modules, and any further files (for example host
binaries with their libraries). Used by scripts/build-guest-image (the Linux guest's initramfs) and
tests/harness/nested_kvm.py (the L1 VM's). Format: Documentation/driver-api/early-userspace/buffer-format.rst."""
import gzip
import subprocess

BASE_DIRS = ["bin", "sbin", "usr", "usr/bin", "usr/sbin", "dev", "proc", "sys", "etc", "lib", "lib/modules", "tmp"]


class Cpio:
    """A cpio archive in the "newc" format the kernel's initramfs unpacker reads."""

    def __init__(self):
        self.data = bytearray()
        self.ino = 1
        self.names = set()

    def _entry(self, name, mode, body=b"", rmajor=0, rminor=0):
        fields = [self.ino, mode, 0, 0, 1, 0, len(body), 0, 0, rmajor, rminor, len(name) + 1, 0]
        self.data += b"070701" + b"".join(b"%08X" % f for f in fields) + name.encode() + b"\0"
        self.data += b"\0" * (-len(self.data) % 4) + body
        self.data += b"\0" * (-len(self.data) % 4)
        self.ino += 1
        self.names.add(name)

    def dir(self, name):
        """name and its missing parents."""
        parts = name.strip("/").split("/")
        for i in range(1, len(parts) + 1):
            path = "/".join(parts[:i])
            if path not in self.names:
                self._entry(path, 0o040755)

    def file(self, name, body, perm=0o644):
        name = name.strip("/")
        if "/" in name:
            self.dir(name.rsplit("/", 1)[0])
        self._entry(name, 0o100000 | perm, body)

    def symlink(self, name, target):
        name = name.strip("/")
        if "/" in name:
            self.dir(name.rsplit("/", 1)[0])
        self._entry(name, 0o120777, target.encode())

    def chardev(self, name, major, minor, perm=0o600):
        self._entry(name, 0o020000 | perm, rmajor=major, rminor=minor)

    def finish(self):
        self._entry("TRAILER!!!", 0)
        return bytes(self.data)


def module_body(path):
    """A module's ELF bytes (Debian may ship .ko or .ko.xz)."""
    if path.name.endswith(".ko.xz"):
        return subprocess.run(["xz", "-dc", str(path)], check=True, capture_output=True).stdout
    if not path.name.endswith(".ko"):
        raise ValueError(f"cannot load a module compressed like {path.name}")
    return path.read_bytes()


def base(busybox, init, modules):
    """A Cpio with the usual directories, /dev/console, busybox, /init and the modules (+/etc/modules)."""
    cpio = Cpio()
    for d in BASE_DIRS:
        cpio.dir(d)
    cpio.chardev("dev/console", 5, 1)  # the kernel opens it for init before devtmpfs is mounted
    cpio.file("bin/busybox", busybox.read_bytes(), 0o755)
    cpio.file("init", init, 0o755)
    names = []
    for path in modules:
        name = path.name.split(".ko")[0].replace("-", "_")
        cpio.file(f"lib/modules/{name}.ko", module_body(path))
        names.append(name)
    if names:
        cpio.file("etc/modules", "".join(f"{n}\n" for n in names).encode())
    return cpio


def pack(cpio):
    return gzip.compress(cpio.finish(), compresslevel=6, mtime=0)


def shared_libraries(program):
    """The absolute paths ldd lists for program: its libraries and the dynamic loader."""
    out = subprocess.run(["ldd", str(program)], capture_output=True, text=True)
    if out.returncode != 0:
        raise ValueError(f"ldd {program} failed: {out.stderr.strip() or out.stdout.strip()}")
    paths = []
    for line in out.stdout.splitlines():
        parts = line.split()
        if "=>" in parts and len(parts) > parts.index("=>") + 1 and parts[parts.index("=>") + 1].startswith("/"):
            paths.append(parts[parts.index("=>") + 1])
        elif parts and parts[0].startswith("/"):
            paths.append(parts[0])
    return paths


def add_host_programs(cpio, programs, libraries=(), links=()):
    """Host binaries into the archive at their own paths, with every library they and `libraries`
    (dlopen()ed ones, which ldd cannot see) load, and `links` as (name, target) symlinks."""
    wanted = []
    for path in list(programs) + list(libraries):
        wanted += [path] + shared_libraries(path)
    done = set()
    for path in wanted:
        if path in done:
            continue
        done.add(path)
        with open(path, "rb") as f:
            cpio.file(path, f.read(), 0o755)
    for name, target in links:
        cpio.symlink(name, target)
