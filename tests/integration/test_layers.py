#!/usr/bin/env python3
"""The house rules of the source tree, checked on every test run:

1. Floors: a source folder includes only its own floor and the floors below it. From the ground up:
     vmm/base   log, errors, the platform constants, checked guest memory, fds and mappings
     devices    the device models and the buses that dispatch to them (no KVM, no sockets)
     firmware   what SeaBIOS is given: fw_cfg contents, e820, SMBIOS, the table loader, -kernel
     acpi       the ACPI tables and AML
     vmm/tpm    the host side of the TPM: swtpm, libtpms, the worker thread, the state directory
     vmm/host   the host's side of the machine: console, output queue, disk images, sandbox, -runas
     vmm/kvm    KVM: the VM and vCPU fds, the vCPU loop and its exit handler, coalesced MMIO, CPUID
     vmm        the roof: the machine, the CLI, main (may include anything)
2. No source file (C++, C, Python, meson, scripts) is longer than 400 lines.
3. The build follows the floors (meson.build): every static library holds the sources of one floor
   and links only libraries of its floor or below; every C++ source of a floor is in a library
   (vmm/main.cpp is the executable's); every unit suite (tests/meson.build) is named after the
   library it tests.
4. The README is a front door of at most 250 lines; every relative link in the README files
   (README.md and those beside the code) reaches an existing file and, with #anchor, a heading in it.

Usage: test_layers.py SOURCE_ROOT. The self-test runs the same checks on a small tree that breaks
each rule once, so a check that stopped finding anything would fail here too.
"""
import pathlib
import re
import sys
import tempfile

FLOORS = ["vmm/base", "devices", "firmware", "acpi", "vmm/tpm", "vmm/host", "vmm/kvm", "vmm"]
ROOF = "vmm"
MAX_LINES = 400
INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"', re.M)
SOURCE_SUFFIXES = {".cpp", ".hpp", ".c", ".h", ".S", ".py", ".build", ".ld"}
SOURCE_DIRS = ["vmm", "devices", "firmware", "acpi", "tests", "scripts"]


def floor_of(path: str):
    """The floor a repository path belongs to: its longest matching folder, or None."""
    best = None
    for floor in FLOORS:
        if path.startswith(floor + "/") and (best is None or len(floor) > len(best)):
            best = floor
    return best


def layer_violations(root: pathlib.Path):
    found = []
    for floor in FLOORS:
        for src in sorted((root / floor).glob("*")):
            if src.suffix not in (".cpp", ".hpp") or not src.is_file():
                continue
            rel = src.relative_to(root).as_posix()
            if floor_of(rel) != floor or floor == ROOF:
                continue
            for target in INCLUDE.findall(src.read_text(errors="replace")):
                target_floor = floor_of(target)
                if target_floor is None:
                    continue  # a system or generated header
                if FLOORS.index(target_floor) > FLOORS.index(floor):
                    found.append(f"{rel} ({floor}) includes {target} ({target_floor}), a floor above it")
    return found


def long_files(root: pathlib.Path):
    found = []
    for top in SOURCE_DIRS:
        for src in sorted((root / top).rglob("*")):
            if not src.is_file() or "corpus" in src.parts or "data" in src.parts:
                continue
            is_script = src.parent.name == "scripts" and src.suffix == ""
            if src.suffix not in SOURCE_SUFFIXES and not is_script:
                continue
            lines = src.read_bytes().count(b"\n")
            if lines > MAX_LINES:
                found.append(f"{src.relative_to(root).as_posix()}: {lines} lines (at most {MAX_LINES})")
    return found


LIBRARY = re.compile(r"^(\w+)\s*=\s*static_library\(\s*'([\w-]+)'", re.M)
LINK_WITH = re.compile(r"link_with\s*:\s*(\[[^\]]*\]|\w+)")
UNIT_SUITE = re.compile(r"^\s*'(\w+)'\s*:\s*\[\[", re.M)


def call_body(text: str, open_paren: int) -> str:
    """The text of a meson call from its opening parenthesis to the matching one."""
    depth = 0
    for i in range(open_paren, len(text)):
        depth += {"(": 1, ")": -1}.get(text[i], 0)
        if depth == 0:
            return text[open_paren:i + 1]
    return text[open_paren:]


def build_violations(root: pathlib.Path):
    text = (root / "meson.build").read_text()
    libs = {}  # variable -> (library name, floor or None, sources, linked variables)
    found = []
    for m in LIBRARY.finditer(text):
        body = call_body(text, text.index("(", m.start()))
        sources = [s for s in re.findall(r"'([^']+\.(?:cpp|S))'", body)]
        floors = {floor_of(s) for s in sources}
        link = LINK_WITH.search(body)
        linked = re.findall(r"\w+", link.group(1)) if link else []
        if len(floors) != 1 or None in floors:
            found.append(f"meson.build: {m.group(2)} holds sources of {sorted(map(str, floors))}, not one floor")
        libs[m.group(1)] = (m.group(2), floors.pop() if len(floors) == 1 else None, sources, linked)
    for var, (name, floor, _, linked) in libs.items():
        for dep in linked:
            dep_floor = libs.get(dep, (None, None))[1]
            if floor and dep_floor and FLOORS.index(dep_floor) > FLOORS.index(floor):
                found.append(f"meson.build: {name} ({floor}) links {libs[dep][0]} ({dep_floor}), a floor above it")
    built = {s for _, _, sources, _ in libs.values() for s in sources}
    for floor in FLOORS:
        for src in sorted((root / floor).glob("*.cpp")):
            rel = src.relative_to(root).as_posix()
            if floor_of(rel) == floor and rel not in built and rel != "vmm/main.cpp":
                found.append(f"meson.build: {rel} is in no library")
    names = {name for name, _, _, _ in libs.values()}
    suites = root / "tests" / "meson.build"
    for suite in UNIT_SUITE.findall(suites.read_text() if suites.exists() else ""):
        if "mv" + suite not in names:
            found.append(f"tests/meson.build: unit suite {suite} is named after no library (mv{suite})")
    return found


FRONT_DOOR_LINES = 250
LINK = re.compile(r"\]\(([^)\s]+)\)")


def slug(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def doc_violations(root: pathlib.Path):
    found = []
    readme = root / "README.md"
    if readme.exists() and readme.read_text().count("\n") > FRONT_DOOR_LINES:
        found.append(f"README.md: {readme.read_text().count(chr(10))} lines (the front door: at most {FRONT_DOOR_LINES})")
    docs = [readme] + sorted(p for top in SOURCE_DIRS for p in (root / top).rglob("README.md"))
    for doc in (d for d in docs if d.exists()):
        for target in LINK.findall(doc.read_text()):
            if re.match(r"[a-z]+:", target):
                continue  # http:, https:, mailto:
            path, _, anchor = target.partition("#")
            dest = (doc.parent / path).resolve() if path else doc
            rel = doc.relative_to(root).as_posix()
            if not dest.exists():
                found.append(f"{rel}: link {target}: no such file")
            elif anchor and dest.is_file() and anchor not in {
                    slug(h) for h in re.findall(r"^#+ (.*)$", dest.read_text(errors="replace"), re.M)}:
                found.append(f"{rel}: link {target}: no such heading")
    return found


def self_test():
    with tempfile.TemporaryDirectory() as tmp:
        root = pathlib.Path(tmp)
        files = {
            "vmm/base/log.hpp": '#include <cstdio>\n',
            "devices/good.cpp": '#include "vmm/base/log.hpp"\n#include "devices/good.hpp"\n',
            "devices/bad.cpp": '#include "vmm/tpm/tpm_worker.hpp"\n',
            "firmware/bad.hpp": '#include "acpi/tables.hpp"\n',
            "vmm/tpm/ok.cpp": '#include "devices/tpm_port.hpp"\n',
            "vmm/base/bad.hpp": '#include "vmm/machine.hpp"\n',
            "vmm/main.cpp": '#include "vmm/tpm/tpm_worker.hpp"\n#include "acpi/tables.hpp"\n',
            "scripts/long": "x\n" * (MAX_LINES + 1),
            "tests/short.py": "x\n" * MAX_LINES,
            "devices/orphan.cpp": "",
            "meson.build": "a_lib = static_library('mva', 'vmm/base/log.cpp')\n"
                           "b_lib = static_library('mvb', 'devices/good.cpp', 'devices/bad.cpp',\n  link_with : a_lib)\n"
                           "c_lib = static_library('mvc', 'vmm/tpm/ok.cpp', 'acpi/x.cpp')\n"
                           "d_lib = static_library('mvd', 'firmware/f.cpp', link_with : [a_lib, e_lib])\n"
                           "e_lib = static_library('mve', 'vmm/machine.cpp')\n",
            "README.md": "# x\n## Set up (Debian 12, as root)\n[a](#set-up-debian-12-as-root) [b](vmm/README.md#gone)"
                         " [c](tests/README.md) [d](https://example.org)\n" + "\n" * FRONT_DOOR_LINES,
            "vmm/README.md": "# The machine\n[back](../README.md#y)\n",
            "tests/meson.build": "unit_tests = {\n  'a' : [['unit/test_a.cpp'], [a_lib]],\n  'tisreplay' : [[]],\n}\n",
        }
        for name, text in files.items():
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            (root / name).write_text(text)
        got = layer_violations(root)
        want_bad = {"devices/bad.cpp", "firmware/bad.hpp", "vmm/base/bad.hpp"}
        assert {v.split(" ")[0] for v in got} == want_bad, got
        longs = long_files(root)
        assert [v.split(":")[0] for v in longs] == ["scripts/long"], longs
        build = build_violations(root)
        want = ["mvc holds sources of", "mvd (firmware) links mve (vmm)", "devices/orphan.cpp is in no library",
                "unit suite tisreplay is named after no library"]
        assert len(build) == len(want) and all(any(w in v for v in build) for w in want), build
        docs = doc_violations(root)
        want = ["README.md: 253 lines (the front door: at most 250)", "README.md: link vmm/README.md#gone: no such heading",
                "README.md: link tests/README.md: no such file", "vmm/README.md: link ../README.md#y: no such heading"]
        assert sorted(docs) == sorted(want), docs


def main():
    root = pathlib.Path(sys.argv[1]).resolve()
    self_test()
    print("self-test: every planted violation found, nothing else")
    problems = layer_violations(root) + long_files(root) + build_violations(root) + doc_violations(root)
    for problem in problems:
        print("FAIL", problem)
    if problems:
        return 1
    print(f"floors {' < '.join(FLOORS)}: no folder includes a floor above it")
    print(f"no source file over {MAX_LINES} lines")
    print(f"README.md at most {FRONT_DOOR_LINES} lines; every relative link in the READMEs reaches its file and heading")
    print("meson.build: every library holds one floor and links none above it; unit suites named after libraries")
    return 0


if __name__ == "__main__":
    sys.exit(main())
