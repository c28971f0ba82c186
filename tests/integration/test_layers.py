#!/usr/bin/env python3
"""The house rules of the source tree, checked on every test run:

1. Floors: a source folder includes only its own floor and the floors below it. From the ground up:
     vmm/base   log, errors, the platform constants, checked guest memory, fds and mappings
     devices    the device models and the buses that dispatch to them (no KVM, no sockets)
     firmware   what SeaBIOS is given: fw_cfg contents, e820, SMBIOS, the table loader, -kernel
     acpi       the ACPI tables and AML
     vmm/tpm    the host side of the TPM: swtpm, libtpms, the worker thread, the state directory
     vmm        the roof: KVM, the vCPU loop, the machine, the CLI, main (may include anything)
2. No source file (C++, C, Python, meson, scripts) is longer than 400 lines.

Usage: test_layers.py SOURCE_ROOT. The self-test runs the same checks on a small tree that breaks
each rule once, so a check that stopped finding anything would fail here too.
"""
import pathlib
import re
import sys
import tempfile

FLOORS = ["vmm/base", "devices", "firmware", "acpi", "vmm/tpm", "vmm"]
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


def self_test():
    with tempfile.TemporaryDirectory() as tmp:
        root = pathlib.Path(tmp)
        files = {
            "vmm/base/log.hpp": '#include <cstdio>\n',
            "devices/good.cpp": '#include "vmm/base/log.hpp"\n#include "devices/good.hpp"\n',
            "devices/bad.cpp": '#include "vmm/tpm/tpm_worker.hpp"\n',
            "firmware/bad.hpp": '#include "acpi/tables.hpp"\n',
            "vmm/tpm/ok.cpp": '#include "devices/tpm_interface.hpp"\n',
            "vmm/base/bad.hpp": '#include "vmm/machine.hpp"\n',
            "vmm/main.cpp": '#include "vmm/tpm/tpm_worker.hpp"\n#include "acpi/tables.hpp"\n',
            "scripts/long": "x\n" * (MAX_LINES + 1),
            "tests/short.py": "x\n" * MAX_LINES,
        }
        for name, text in files.items():
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            (root / name).write_text(text)
        got = layer_violations(root)
        want_bad = {"devices/bad.cpp", "firmware/bad.hpp", "vmm/base/bad.hpp"}
        assert {v.split(" ")[0] for v in got} == want_bad, got
        longs = long_files(root)
        assert [v.split(":")[0] for v in longs] == ["scripts/long"], longs


def main():
    root = pathlib.Path(sys.argv[1]).resolve()
    self_test()
    print("self-test: every planted violation found, nothing else")
    problems = layer_violations(root) + long_files(root)
    for problem in problems:
        print("FAIL", problem)
    if problems:
        return 1
    print(f"floors {' < '.join(FLOORS)}: no folder includes a floor above it")
    print(f"no source file over {MAX_LINES} lines")
    return 0


if __name__ == "__main__":
    sys.exit(main())
