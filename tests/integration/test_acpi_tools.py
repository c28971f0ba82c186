#!/usr/bin/env python3
"""Checks minivmm's ACPI tables with ACPICA's own tools.

usage: test_acpi_tools.py ACPI_DUMP

1. acpi_dump writes every table to a temporary directory (DSDT.dat, FACP.dat, ...).
2. `iasl -d` must disassemble every table (RSDP excepted: iasl only reads tables with a standard
   header, so the RSDP checksums are checked here in Python); the disassembly must show the
   expected devices and FADT fields, and recompiling the DSDT source (`iasl -on`) must give back
   exactly our AML.
3. `acpiexec` loads the DSDT and evaluates \\_S5, \\_SB.PCI0._CRS and \\_SB.PCI0._PRT.
Exits 0 on success, 1 on failure, 77 (meson "skip") when iasl/acpiexec are not installed.
"""
import os
import re
import shutil
import struct
import subprocess
import sys
import tempfile

failures = []


def check(cond, what):
    print(("ok   " if cond else "FAIL ") + what)
    if not cond:
        failures.append(what)
    return cond


def run(cmd, cwd):
    return subprocess.run(cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=120)


PPI_UUID = "(a6 fa dd 3d 1b 36 b4 4e a4 24 8d 10 08 9d 16 53)"  # ToUUID ("3dddfaa6-361b-...-8d10089d1653")


def check_ppi(d, version, with_ppi):
    """The Physical Presence Interface's _DSM (TCG PPI 1.3 §2.1) as acpiexec evaluates it. acpiexec
    backs the mailbox region with plain memory, so the results read back as zeros; what this checks
    is the AML's side: the types and sizes Linux's tpm_ppi.c expects, and what a request leaves in
    the mailbox registers (revision, operation, parameter, then the function index)."""
    dsm = "evaluate \\_SB.TPM._DSM " + PPI_UUID
    cmds = [f"{dsm} 1 0 []", f"{dsm} 1 1 []", f"{dsm} 1 3 []", f"{dsm} 2 3 []", f"{dsm} 1 4 []", f"{dsm} 1 5 []",
            f"{dsm} 1 8 [5]", "evaluate \\_SB.TPM._DSM (00 01 02 03 04 05 06 07 08 09 0a 0b 0c 0d 0e 0f) 1 0 []",
            f"{dsm} 2 7 [22 9]", "evaluate \\_SB.TPM.PFUN", "evaluate \\_SB.TPM.PREV", "evaluate \\_SB.TPM.PPOP",
            "evaluate \\_SB.TPM.PPAR"]
    more = [f"{dsm} 1 7 [0x100000005]", "evaluate \\_SB.TPM.PPOP", f"{dsm} 1 0x100000002 [5]",
            "evaluate \\_SB.TPM.PFUN"]
    # Two runs: acpiexec's batch line has a length limit.
    r = run(["acpiexec", "-b", "; ".join(cmds), "DSDT.dat"], d)
    r2 = run(["acpiexec", "-b", "; ".join(more), "DSDT.dat"], d)
    r.stdout += r2.stdout
    cmds += more
    results = re.findall(r"returned object.*\n((?:  .*\n)+)", r.stdout)
    if not with_ppi:
        check(not results and "AE_NOT_FOUND" in r.stdout, f"acpiexec: TPM {version}: there is no _DSM")
        return
    if not check(len(results) == len(cmds), f"acpiexec: TPM {version}: every _DSM call returns ({len(results)})"):
        print(r.stdout[-3000:])
        return
    check("[Buffer] Length 02" in results[0] and "FF 01" in results[0],
          f"acpiexec: TPM {version}: _DSM function 0 = Buffer {{0xFF, 0x01}} (functions 0-8)")
    check('[String] Length 03 = "1.3"' in results[1], f"acpiexec: TPM {version}: _DSM function 1 = \"1.3\"")
    check("[Package] Contains 2 Elements" in results[2] and results[2].count("[Integer]") == 2,
          f"acpiexec: TPM {version}: function 3, revision 1 = Package of 2 integers (Linux: ppi/request)")
    check("[Package] Contains 3 Elements" in results[3] and results[3].count("[Integer]") == 3,
          f"acpiexec: TPM {version}: function 3, revision 2 = Package of 3 integers")
    check("[Integer]" in results[4], f"acpiexec: TPM {version}: function 4 = Integer (ppi/transition_action)")
    check("[Package] Contains 3 Elements" in results[5] and results[5].count("[Integer]") == 3,
          f"acpiexec: TPM {version}: function 5 = Package of 3 integers (ppi/response)")
    check("[Integer]" in results[6], f"acpiexec: TPM {version}: function 8 = Integer (ppi/tcg_operations)")
    check("[Buffer] Length 01" in results[7], f"acpiexec: TPM {version}: another UUID = Buffer {{0}}")
    fields = [re.search(r"\[Integer\] = ([0-9A-F]+)", x) for x in results[9:13]]
    values = [int(m.group(1), 16) if m else None for m in fields]
    check(values == [7, 2, 22, 9], f"acpiexec: TPM {version}: function 7, revision 2, {{22, 9}} leaves "
          f"FUNC 7, REV 2, OP 22, PARAM 9 in the mailbox (got {values})")
    clamped = re.search(r"\[Integer\] = ([0-9A-F]+)", results[14])
    check(clamped is not None and int(clamped.group(1), 16) == 0xFFFFFFFF,
          f"acpiexec: TPM {version}: operation 0x100000005 reaches the mailbox as 0xFFFFFFFF, not 5")
    last = re.search(r"\[Integer\] = ([0-9A-F]+)", results[16])
    check("[Buffer] Length 01" in results[15] and last is not None and int(last.group(1), 16) == 7,
          f"acpiexec: TPM {version}: function 0x100000002 = Buffer {{0}}, the mailbox untouched")
    check("AE_" not in r.stdout.replace("AE_OK", ""), f"acpiexec: TPM {version}: PPI: no ACPICA exceptions")


def main():
    if len(sys.argv) != 2:
        print(__doc__)
        return 2
    acpi_dump = os.path.abspath(sys.argv[1])
    for tool in ("iasl", "acpiexec"):
        if shutil.which(tool) is None:
            print(f"SKIP: {tool} not installed (acpica-tools)")
            return 77

    with tempfile.TemporaryDirectory(prefix="minivmm-acpi-") as d:
        r = run([acpi_dump, d, "--cpus", "4"], d)
        if not check(r.returncode == 0, "acpi_dump --cpus 4 succeeds"):
            print(r.stdout)
            return 1
        names = sorted(f[:-4] for f in os.listdir(d) if f.endswith(".dat"))
        check(names == ["APIC", "DSDT", "FACP", "FACS", "RSDP", "RSDT", "XSDT"], f"tables written: {names}")

        dsdt_raw = open(os.path.join(d, "DSDT.dat"), "rb").read()
        check(b"MSFT0101" not in dsdt_raw and bytes.fromhex("41d00c31") not in dsdt_raw,
              "no TPM configured: no TPM device in the DSDT and no TPM2/TCPA table")

        # RSDP: iasl -d cannot read it, so check it here (ACPI 6.5 §5.2.5.3).
        rsdp = open(os.path.join(d, "RSDP.dat"), "rb").read()
        check(len(rsdp) == 36 and rsdp[:8] == b"RSD PTR " and rsdp[15] == 2, "RSDP: signature, revision 2, 36 bytes")
        check(sum(rsdp[:20]) % 256 == 0 and sum(rsdp) % 256 == 0, "RSDP: both checksums valid")

        dsl = {}
        for name in names:
            if name == "RSDP":
                continue
            r = run(["iasl", "-d", f"{name}.dat"], d)
            ok = r.returncode == 0 and os.path.exists(os.path.join(d, f"{name}.dsl"))
            if check(ok, f"iasl -d {name}.dat"):
                dsl[name] = open(os.path.join(d, f"{name}.dsl")).read()
            else:
                print(r.stdout)
            raw = open(os.path.join(d, f"{name}.dat"), "rb").read()
            if name != "FACS":
                check(sum(raw) % 256 == 0, f"{name}: checksum valid")
            check(struct.unpack_from("<I", raw, 4)[0] == len(raw), f"{name}: length field = file size")

        dsdt = dsl.get("DSDT", "")
        for needle in ('EisaId ("PNP0A03")', 'EisaId ("PNP0501")', 'EisaId ("PNP0B00")', '"QEMU0002"',
                       "Name (\\_S5, Package (0x04)", "Name (_PRT, Package (0x7C)", "WordBusNumber", "QWordMemory",
                       "0xFEBFFFFF"):
            check(needle in dsdt, f"DSDT disassembly mentions {needle}")
        for absent in ("PNP0303", "PNP0F13", "Method ("):
            check(absent not in dsdt, f"DSDT disassembly has no {absent}")
        fadt = dsl.get("FACP", "")
        check(re.search(r"Reset Register : \[Generic Address Structure\]", fadt) is not None, "FADT: Reset Register")
        check(re.search(r"Address : 0000000000000CF9", fadt) is not None, "FADT: reset register at 0xCF9")
        check(re.search(r"Value to cause reset : 06", fadt) is not None, "FADT: reset value 6")
        check(re.search(r"SCI Interrupt : 0009", fadt) is not None, "FADT: SCI 9")
        check(re.search(r"8042 Present on ports 60/64 \(V2\) : 0", fadt) is not None, "FADT: no 8042")
        check(re.search(r"Reset Register Supported \(V2\) : 1", fadt) is not None, "FADT: RESET_REG_SUP")
        madt = dsl.get("APIC", "")
        check(len(re.findall(r"Subtable Type : 00 \[Processor Local APIC\]", madt)) == 4, "MADT: 4 local APICs")
        check("Subtable Type : 01 [I/O APIC]" in madt, "MADT: I/O APIC")
        check(len(re.findall(r"Subtable Type : 02 \[Interrupt Source Override\]", madt)) == 2, "MADT: 2 overrides")
        check("Subtable Type : 04 [Local APIC NMI]" in madt, "MADT: LAPIC NMI")

        # Recompile the disassembled DSDT; without name-path optimisation iasl must reproduce our AML.
        if dsdt:
            r = run(["iasl", "-on", "-p", "roundtrip", "DSDT.dsl"], d)
            if check(r.returncode == 0, "iasl recompiles the disassembled DSDT"):
                ours = open(os.path.join(d, "DSDT.dat"), "rb").read()[36:]
                theirs = open(os.path.join(d, "roundtrip.aml"), "rb").read()[36:]
                check(ours == theirs, f"recompiled DSDT body is byte-identical ({len(ours)} bytes)")
            else:
                print(r.stdout)

        # Evaluate the objects the OS uses.
        r = run(["acpiexec", "-b", "evaluate \\_S5; evaluate \\_SB.PCI0._CRS; evaluate \\_SB.PCI0._PRT", "DSDT.dat"], d)
        out = r.stdout
        check(r.returncode == 0, "acpiexec runs")
        s5 = re.search(r"Evaluating \\_S5\n.*?\n\s+\[Package\] Contains 4 Elements:\n((?:\s+\[Integer\] = \w+\n){4})",
                       out)
        check(s5 is not None and all(int(v, 16) == 0 for v in re.findall(r"= (\w+)", s5.group(1))),
              "acpiexec: \\_S5 = Package {0, 0, 0, 0}")
        crs_text = out[out.find("Evaluating \\_SB.PCI0._CRS"):out.find("Evaluating \\_SB.PCI0._PRT")]
        length = re.search(r"\[Buffer\] Length (\w+)", crs_text)
        crs = bytes(int(b, 16) for line in re.findall(r"^\s+[0-9A-F]{4}: ((?:[0-9A-F]{2} )+)", crs_text, re.M)
                    for b in line.split())
        check(length is not None and int(length.group(1), 16) == len(crs) == 0x9C,
              f"acpiexec: PCI0._CRS is a 156-byte buffer (got {len(crs)})")
        tags, at = [], 0
        while at < len(crs):  # walk the resource descriptors (ACPI 6.5 §6.4)
            tags.append(crs[at])
            at += 3 + (crs[at + 1] | crs[at + 2] << 8) if crs[at] & 0x80 else 1 + (crs[at] & 7)
        check(tags == [0x88, 0x47, 0x88, 0x88, 0x87, 0x87, 0x8A, 0x79],
              "acpiexec: PCI0._CRS = bus, IO 0xCF8, 2 x WordIO, 2 x DWordMemory, QWordMemory, EndTag")
        check(struct.pack("<II", 0xC0000000, 0xFEBFFFFF) in crs, "acpiexec: 32-bit PCI window 0xC0000000-0xFEBFFFFF")
        prt = out[out.find("Evaluating \\_SB.PCI0._PRT"):]
        check("[Package] Contains 124 Elements:" in prt, "acpiexec: _PRT has 124 entries")
        entries = re.findall(r"\[Package\] Contains 4 Elements:\n\s+\[Integer\] = (\w+)\n\s+\[Integer\] = (\w+)\n"
                             r"\s+\[Integer\] = (\w+)\n\s+\[Integer\] = (\w+)", prt)
        expected = [(((slot << 16) | 0xFFFF), pin, 0, 16 + (slot + pin) % 4) for slot in range(1, 32) for pin in range(4)]
        got = [tuple(int(v, 16) for v in e) for e in entries]
        check(got == expected, f"acpiexec: all {len(got)} _PRT entries route slot/pin to GSI 16 + (slot + pin) % 4")
        check("AE_" not in out.replace("AE_OK", ""), "acpiexec: no ACPICA exceptions")

    # With a TPM: the TPM2 (2.0) or TCPA (1.2) table disassembles, and the DSDT device that Linux's
    # tpm_tis (or, for 2.0-crb, tpm_crb) binds to evaluates as QEMU's does (QEMU build_tpm2,
    # hw/i386/acpi-build.c): TIS start method 6 and 0x5000 bytes, CRB start method 7 with its
    # control area 0x40 bytes into a 0x1000-byte region (Linux crb_map_io's layout check).
    # The TIS lists its interrupt, Interrupt (ResourceConsumer, Level, ActiveHigh, Exclusive) {13},
    # unless turned off; CRB has none.
    for version, table, hid, irq in (("2.0", "TPM2", '"MSFT0101"', True), ("2.0-crb", "TPM2", '"MSFT0101"', False),
                                     ("1.2", "TCPA", "[Integer] = 00000000310CD041", True),
                                     ("2.0 --no-tpm-irq", "TPM2", '"MSFT0101"', False)):
        crb = version == "2.0-crb"
        region = 0x1000 if crb else 0x5000
        with tempfile.TemporaryDirectory(prefix="minivmm-acpi-tpm-") as d:
            r = run([acpi_dump, d, "--tpm"] + version.split(), d)
            check(r.returncode == 0, f"acpi_dump --tpm {version} succeeds")
            path = os.path.join(d, f"{table}.dat")
            if not check(os.path.exists(path), f"TPM {version}: {table} table written"):
                continue
            raw = open(path, "rb").read()
            check(sum(raw) % 256 == 0, f"TPM {version}: {table} checksum valid")
            if table == "TPM2":
                check(len(raw) == 76 and raw[8] == 4, "TPM2: 76 bytes, revision 4")
                if crb:
                    check(struct.unpack_from("<Q", raw, 40)[0] == 0xFED40040 and struct.unpack_from("<I", raw, 48)[0] == 7,
                          "TPM2: control area 0xFED40040, start method 7 (CRB)")
                else:
                    check(struct.unpack_from("<Q", raw, 40)[0] == 0 and struct.unpack_from("<I", raw, 48)[0] == 6,
                          "TPM2: control area 0, start method 6 (TIS)")
                check(struct.unpack_from("<I", raw, 64)[0] == 0x10000, "TPM2: LAML 64 KiB")
            else:
                check(len(raw) == 50 and raw[8] == 2, "TCPA: 50 bytes, revision 2")
                check(struct.unpack_from("<I", raw, 38)[0] == 0x10000, "TCPA: LAML 64 KiB")
            r = run(["iasl", "-d", f"{table}.dat"], d)
            check(r.returncode == 0, f"iasl -d {table}.dat")
            r = run(["acpiexec", "-b", "evaluate \\_SB.TPM._HID; evaluate \\_SB.TPM._STA; evaluate \\_SB.TPM._CRS",
                     "DSDT.dat"], d)
            out = r.stdout
            check(r.returncode == 0 and hid in out, f"acpiexec: TPM {version} _HID is {hid}")
            check("[Integer] = 000000000000000F" in out, f"acpiexec: TPM {version} _STA = 0x0F")
            # The buffer dump: "[Buffer] Length N =" then "0000: 86 09 ...  // text" lines of 16 bytes
            # (a short buffer's one line on the same line).
            m = re.search(r"_CRS returned.*\n\s*\[Buffer\] Length \w+ =((?:\s+[0-9A-F]{4}: .*\n)+)", out)
            crs = bytes(int(b, 16) for line in (m.group(1).splitlines() if m else []) if ":" in line
                        for b in line.split("//")[0].split(":", 1)[1].split())
            check(struct.pack("<BHBII", 0x86, 9, 1, 0xFED40000, region) in crs,
                  f"acpiexec: TPM {version} _CRS = Memory32Fixed(ReadWrite, 0xFED40000, {region:#x})")
            # CRB: the buffer's RAM is the second memory resource (Linux tpm_crb crb_map_io maps it from there).
            buffer = struct.pack("<BHBII", 0x86, 9, 1, 0xFED41000, 0x2000)
            check((buffer in crs) == crb, f"acpiexec: TPM {version} _CRS " +
                  ("has the buffer's Memory32Fixed(ReadWrite, 0xFED41000, 0x2000)" if crb else "has no second memory range"))
            irq13 = bytes([0x89, 0x06, 0x00, 0x01, 0x01, 0x0D, 0x00, 0x00, 0x00])
            check((irq13 in crs) == irq and (irq or 0x89 not in crs),
                  f"acpiexec: TPM {version} _CRS " + ("has Interrupt (Level, ActiveHigh, Exclusive) {13}" if irq
                                                      else "has no interrupt"))
            check("AE_" not in out.replace("AE_OK", ""), f"acpiexec: TPM {version}: no ACPICA exceptions")
            check_ppi(d, version, with_ppi=True)

    # -tpm-ppi off: no _DSM.
    with tempfile.TemporaryDirectory(prefix="minivmm-acpi-tpm-") as d:
        r = run([acpi_dump, d, "--tpm", "2.0", "--no-tpm-ppi"], d)
        check(r.returncode == 0, "acpi_dump --tpm 2.0 --no-tpm-ppi succeeds")
        check_ppi(d, "2.0 --no-tpm-ppi", with_ppi=False)

    if failures:
        print(f"{len(failures)} check(s) failed")
        return 1
    print("all ACPI tool checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
