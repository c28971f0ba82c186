#!/usr/bin/env python3
"""scripts/nightly-boot, the nightly Linux boot matrix, on this host.

Offline first: the calibration probe's boot sector, its classification of recorded runs, the Linux
checks on recorded /init output, and the JUnit writer. Then the probe under QEMU TCG (if installed),
where it must call the host capable. Then the harness on build/guest-linux-*.img (else the
boot-sector program stands in for the bootloader) and build/guest-debian-system.img: a subset of the
matrix (MINIVMM_NIGHTLY_FULL=1: all of it, QEMU's column included). On a host that cannot run a kernel
every Linux case is SKIPPED with the calibration's reason, never passed; a nonexistent image and
--force there fail (exit 1); bad options exit 2.

usage: test_nightly_boot.py NIGHTLY_BOOT MINIVMM TEST_GUEST_BIN MKIMAGE_PY"""
import hashlib
import os
import re
import shutil
import struct
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
from tests.nightly import checks
from tests.nightly import probe
from tests.nightly import report
from tests.nightly import system_checks
from tests.nightly import vm
from tests.harness import suite
from tests.harness import vmm
from tests.integration.nightly_junit import junit_consistent, results, schema_valid

INCAPABLE = "host KVM cannot run a Linux kernel"
SYSTEM_CELL = "debian-system/tpm2.0/swtpm/"  # the Debian system disk's cell in the test command's subset


def fake_run(text, returncode=0, stderr="", stopped=None, step=0.01):
    """A vmm.Run whose byte i arrived at i*step seconds."""
    stamps = [(i + 1, i * step) for i in range(len(text))]
    return vmm.Run(["fake"], returncode, text, stamps, stderr, len(text) * step, stopped)


def nightly_boot(n, version="2.0", devtpm="crw-rw---- 1 root tss 10, 224 Jan 1 00:00 /dev/tpm0", pcr="ab" * 32,
                 action=None):
    lines = [f"NIGHTLY: init-start uptime=1.{n}", "NIGHTLY: tpm_tis tpm_tis MSFT0101:00: 2.0 TPM (device-id 0x1)",
             f"NIGHTLY: devtpm {devtpm}", f"NIGHTLY: tpm-version {'2' if version == '2.0' else '1'}"]
    lines += [f"NIGHTLY: pcr {i} {pcr}" for i in range(8)]
    lines += ["NIGHTLY: eventlog-size 2855", f"NIGHTLY: boot {n}",
              f"NIGHTLY: action {action or ('reboot' if n == 1 else 'poweroff')}"]
    return ("SeaBIOS (version 1.16.2)\r\nBooting from Hard Disk...\r\nSYSLINUX 6.04 EDD\r\nlinux boot\r\n"
            + "\r\n".join(lines) + "\r\nreboot: done\r\n")


def offline(s):
    mbr = probe.boot_sector()
    s.check("probe: a 512-byte MBR with 0x55AA", len(mbr) == 512 and mbr[-2:] == b"\x55\xaa")
    boot = "SeaBIOS (version x)\r\nBooting from Hard Disk...\r\n"
    c = probe.classify(r := fake_run(boot + "RPLl3BiWTTTD", 0, step=0.0001), probe.markers(r))
    s.check("probe: all markers, fast loop, power-off -> capable", c.capable is True, c.detail)
    c = probe.classify(r := fake_run(boot + "RPLl3BiW", 143, stopped="no timer interrupt for 5s"), probe.markers(r))
    s.check("probe: no timer tick -> incapable, reason says so",
            c.capable is False and INCAPABLE in c.reason and "timer interrupts never delivered" in c.reason, c.reason)
    err = ("minivmm: error: guest stopped: KVM_EXIT_INTERNAL_ERROR (KVM could not emulate an instruction) on vCPU 0, "
           "suberror 1: RIP 0x7c93 (CS 0x0008 base 0x0, protected mode, CPL 0), RSP 0x7c00, RFLAGS 0x46, CR0 0x11, "
           "instruction bytes at 0x7c93: cc b0 69 ee b0 11")
    c = probe.classify(r := fake_run(boot + "RPLl3", vm.KVM_FAILED, err, step=0.0001), probe.markers(r))
    s.check("probe: exit 5 on INT3 -> incapable, names the instruction",
            c.capable is False and "protected-mode INT3" in c.reason and "RIP 0x7c93" in c.reason, c.reason)
    c = probe.classify(r := fake_run(boot + "RPL" + " " * 300 + "l3BiWTTTD", 0), probe.markers(r))
    s.check("probe: 2M instructions in 3 s -> incapable (MIPS)", c.capable is False and "MIPS" in c.reason, c.reason)
    c = probe.classify(r := fake_run("SeaBIOS (version x)\r\n", 143, stopped="timeout 60s"), probe.markers(r))
    s.check("probe: never booted -> inconclusive (Linux cases not skipped)", c.capable is None, c.detail)

    run = fake_run(nightly_boot(1) + nightly_boot(2))
    v1, v2 = checks.linux(run, 0, "2.0"), checks.linux(run, 1, "2.0")
    s.check("linux checks: recorded good output passes both boots with timings",
            v1.status == v2.status == "passed" and v1.init is not None and v2.tpm0 is not None,
            f"{v1.message} | {v2.message}")
    s.check("linux checks: TPM 1.2 expected but 2.0 seen fails", checks.linux(run, 0, "1.2").status == "failed")
    # A kernel message printed into the middle of a NIGHTLY line (seen in a loaded nested VM).
    cut = nightly_boot(1, version="1.2").replace(
        "NIGHTLY: tpm-version 1", "NIGHTLY: tpm-version 1[   25.135265] hrtimer: interrupt took 26206683 ns")
    v = checks.linux(fake_run(cut + nightly_boot(2, version="1.2")), 0, "1.2")
    s.check("linux checks: a kernel message inside a NIGHTLY line does not change its value", v.status == "passed",
            v.message)
    bad = fake_run(nightly_boot(1, devtpm="none", pcr="00" * 32) + nightly_boot(2))
    v = checks.linux(bad, 0, "2.0")
    s.check("linux checks: no /dev/tpm0 and zero PCRs fail with both reasons",
            v.status == "failed" and "/dev/tpm0" in v.message and "PCR" in v.message, v.message)
    marked = nightly_boot(1).replace("\r\nNIGHTLY: tpm_tis", "\r\nNIGHTLY: boot-mark written\r\nNIGHTLY: tpm_tis")
    line = "minivmm: boot-time: 1234.5 ms from start to the guest's boot-complete mark, 1200.0 ms after this power-on\n"
    v = checks.linux(fake_run(marked + nightly_boot(2), stderr=line), 0, "2.0", boot_mark=True)
    s.check("linux checks: the boot-time line for /init's mark is reported", v.status == "passed" and
            "boot-complete mark 1.23s after minivmm started, 1.20s after this power-on" in v.message, v.message)
    v = checks.linux(fake_run(marked + nightly_boot(2)), 0, "2.0", boot_mark=True)
    s.check("linux checks: a mark without minivmm's boot-time line fails",
            v.status == "failed" and "boot-time" in v.message, v.message)
    v = checks.linux(fake_run(marked + nightly_boot(2)), 0, "2.0")
    s.check("linux checks: the mark is not asked of QEMU", v.status == "passed", v.message)
    v = checks.linux(fake_run(nightly_boot(1)), 0, "2.0")
    s.check("linux checks: boot 1 without a second boot fails", v.status == "failed" and "second boot" in v.message,
            v.message)

    deep_checks(s)

    path = os.path.join(s.tmp.name, "unit.xml")
    cases = [report.Case("host", "a", "passed", "ok"), report.Case("minivmm", "b", "skipped", "why <&>\x01"),
             report.Case("minivmm", "c", "failed", "bad"), report.Case("qemu", "d", "error", "no image")]
    report.junit(cases, path)
    ok, why = junit_consistent(path)
    s.check("junit writer: parses, counts consistent, control characters escaped", ok, why)
    s.check("junit writer: valid against junit.xsd (xmllint)", *schema_valid(path))
    with open(path + ".bad", "w") as f:  # the schema check can fail: a testcase without classname
        f.write('<testsuites><testsuite name="x" tests="1"><testcase name="y" time="1"/></testsuite></testsuites>')
    s.check("junit.xsd rejects a testcase without classname", not shutil.which("xmllint") or
            not schema_valid(path + ".bad")[0])
    with open(os.path.join(s.tmp.name, "c.com1"), "w") as f:
        f.write("".join(f"line {i}\n" for i in range(100)))
    cases[2].details, cases[0].details = [f"logs: {s.tmp.name}/c.{{com1,stderr}}"], [f"logs: {s.tmp.name}/a.{{com1}}"]
    tails = report.console_tails(cases, 40).splitlines()
    s.check("console tails: a failed case's COM1, its last 40 lines, once; none of a passed case's",
            tails[1] == "COM1 of c, last 40 lines:" and tails[2:] == [f"  | line {i}" for i in range(60, 100)], tails)
    s.check("exit status: 1 with a failure, 0 with only passes and skips",
            report.exit_status(cases) == 1 and report.exit_status(cases[:2]) == 0)
    s.check("exit status: 1 when every case was skipped (nothing checked is not green)",
            report.exit_status([cases[1], report.Case("minivmm", "e", "skipped", "no kvm")]) == 1
            and report.exit_status([]) == 1)


def tpm2_tool_lines(pcr, pcrread=None, random2="ffeeddccbbaa99887766554433221100", ecc="PASS"):
    digest = hashlib.sha256(b"minivmm-nightly\n").hexdigest()
    pcr16 = hashlib.sha256(bytes(32) + bytes.fromhex(digest)).hexdigest()
    lines = ["NIGHTLY: check selftest PASS", f"NIGHTLY: getrandom 00112233445566778899aabbccddeeff {random2}"]
    lines += [f"NIGHTLY: pcrread {i} {pcrread or pcr}" for i in range(8)]
    lines += [f"NIGHTLY: replay {i} {pcr}" for i in range(8)]
    lines += ["NIGHTLY: check pcrextend PASS", f"NIGHTLY: pcr16 {digest} {pcr16}", f"NIGHTLY: check ecc-sign {ecc}"]
    return "\r\n".join(lines) + "\r\n"


def sha1_log_and_pcrs():
    """A TPM 1.2 event log (two events on PCR 0, one on PCR 4, an EV_NO_ACTION on PCR 5) and its PCRs."""
    events = [(0, 8, b"a"), (0, 1, b"bb"), (4, 13, b"mbr"), (5, 3, b"ignored")]
    log, pcrs = b"", {n: bytes(20) for n in range(10)}  # replay_sha1_log gives PCRs 0-9
    for index, kind, data in events:
        digest = hashlib.sha1(data).digest()
        log += struct.pack("<II", index, kind) + digest + struct.pack("<I", len(data)) + data
        if kind != 3:
            pcrs[index] = hashlib.sha1(pcrs[index] + digest).digest()
    return log + bytes(64), {n: v.hex() for n, v in pcrs.items()}


def deep_checks(s):
    """The deeper TPM checks on recorded /init output: tpm2-tools lines (2.0), caps and the SHA-1 log (1.2)."""
    pcr = "ab" * 32
    good = nightly_boot(1, pcr=pcr).replace("NIGHTLY: boot 1", tpm2_tool_lines(pcr) + "NIGHTLY: boot 1")
    good += nightly_boot(2, pcr=pcr).replace("NIGHTLY: boot 2", tpm2_tool_lines(pcr) + "NIGHTLY: boot 2")
    run = fake_run(good)
    first = checks.pcr_values(checks.nightly_lines(run, *checks.segments(run.text)[0]))
    v0, v1 = checks.tpm_checks(run, 0, "2.0"), checks.tpm_checks(run, 1, "2.0", first)
    s.check("deep checks 2.0: recorded tpm2-tools output passes every named check in both boots",
            set(v0) == set(checks.TPM2_CHECKS) and set(v1) == set(checks.TPM2_CHECKS) | {"pcrs-unchanged"}
            and all(v.status == "passed" for v in list(v0.values()) + list(v1.values())),
            {k: v.message for k, v in list(v0.items()) + list(v1.items())})
    bad = nightly_boot(1, pcr=pcr).replace("NIGHTLY: boot 1", tpm2_tool_lines(pcr, pcrread="cd" * 32,
                                           random2="00112233445566778899aabbccddeeff", ecc="FAIL oops")
                                           + "NIGHTLY: pcr16 00 11\r\nNIGHTLY: boot 1")
    v = checks.tpm_checks(fake_run(bad), 0, "2.0")
    s.check("deep checks 2.0: PCR mismatch, equal randoms, failed signature each fail their check",
            v["pcrread-eventlog"].status == v["getrandom"].status == v["ecc-sign"].status == "failed"
            and v["selftest"].status == "passed", {k: x.message for k, x in v.items()})
    v = checks.tpm_checks(fake_run(nightly_boot(1, pcr=pcr)), 0, "2.0")
    s.check("deep checks 2.0: no tpm2-tools output fails (never passes by absence)",
            all(x.status == "failed" for x in v.values()), {k: x.message for k, x in v.items()})
    changed = fake_run(nightly_boot(1, pcr=pcr) + nightly_boot(2, pcr="cd" * 32))
    s.check("deep checks: PCRs differing after the reboot fail pcrs-unchanged",
            checks.tpm_checks(changed, 1, "2.0", {n: pcr for n in range(8)})["pcrs-unchanged"].status == "failed")
    log, pcrs = sha1_log_and_pcrs()
    replayed, events = checks.replay_sha1_log(log)
    s.check("SHA-1 log replay: 4 events, EV_NO_ACTION skipped, PCRs as computed", events == 4 and replayed == pcrs,
            (events, replayed))
    caps = "Manufacturer: 0x49424d00;TCG version: 1.2;Firmware version: 1.2;"
    lines = [f"NIGHTLY: pcr {n} {pcrs[n]}" for n in range(10)] + [f"NIGHTLY: caps {caps}",
                                                                  f"NIGHTLY: eventlog-hex {log.hex()}"]
    text = "SeaBIOS (version x)\r\nNIGHTLY: init-start uptime=1\r\n" + "\r\n".join(lines) + "\r\n"
    v = checks.tpm_checks(fake_run(text), 0, "1.2")
    s.check("deep checks 1.2: caps and the SHA-1 log replaying to sysfs PCRs pass",
            all(x.status == "passed" for x in v.values()) and set(v) == set(checks.TPM12_CHECKS),
            {k: x.message for k, x in v.items()})
    wrong = text.replace(f"pcr 4 {pcrs[4]}", "pcr 4 " + "00" * 20)
    v = checks.tpm_checks(fake_run(wrong), 0, "1.2")
    s.check("deep checks 1.2: a PCR the log does not replay to fails, naming it",
            v["pcrs-eventlog"].status == "failed" and "PCR 4" in v["pcrs-eventlog"].message, v["pcrs-eventlog"].message)

    # The PPI lines of /init (minivmm carries out the request at the reboot).
    boot1 = ["ppi-version 1.3", "check ppi-persist PASS", "ppi-persistent ok - 0x81000001",
             "ppi-operations 0 4: User not required;5 4: User not required;14 4: User not required;",
             "ppi-submit 5", "ppi-request 5", "ppi-transition 2: Reboot"]
    boot2 = ["ppi-version 1.3", "ppi-response 5 0: Success", "ppi-request 0", "ppi-persistent ok "]

    def with_ppi(n, lines):
        return nightly_boot(n).replace(f"NIGHTLY: boot {n}", "".join(f"NIGHTLY: {x}\r\n" for x in lines)
                                       + f"NIGHTLY: boot {n}")
    run = fake_run(with_ppi(1, boot1) + with_ppi(2, boot2))
    v0, v1 = checks.ppi(run, 0, "2.0"), checks.ppi(run, 1, "2.0")
    s.check("PPI: a request made, pending and carried out (response success, key gone) passes both boots",
            v0.status == v1.status == "passed", (v0.message, v1.message))
    kept = fake_run(with_ppi(1, boot1)
                    + with_ppi(2, boot2[:2] + ["ppi-request 0", "ppi-persistent ok - 0x81000001"]))
    v = checks.ppi(kept, 1, "2.0")
    s.check("PPI: a persistent key that survived the reboot fails", v.status == "failed" and "survived" in v.message,
            v.message)
    ignored = fake_run(with_ppi(1, boot1) + with_ppi(2, ["ppi-version 1.3", "ppi-response 0: No Recent Request",
                                                       "ppi-request 5", "ppi-persistent ok - 0x81000001"]))
    v = checks.ppi(ignored, 1, "2.0")
    s.check("PPI: a request the platform ignored (QEMU + SeaBIOS) fails, naming the response",
            v.status == "failed" and "No Recent Request" in v.message, v.message)
    v = checks.ppi(fake_run(nightly_boot(1)), 0, "2.0")
    s.check("PPI: no PPI lines fail (never pass by absence)", v.status == "failed", v.message)
    broken = fake_run(with_ppi(1, boot1) + with_ppi(2, boot2[:3] + ["ppi-persistent FAIL ERROR: tcti"]))
    v = checks.ppi(broken, 1, "2.0")
    s.check("PPI: a failed tpm2_getcap in boot 2 fails (the key is not 'gone' by error)",
            v.status == "failed" and "tpm2_getcap" in v.message, v.message)


def main():
    script, minivmm, program, mkimage = sys.argv[1:5]
    if not suite.kvm_usable():
        return suite.SKIP
    s = suite.Suite()
    offline(s)
    tmp = s.tmp.name

    if shutil.which("qemu-system-x86_64"):
        img = os.path.join(tmp, "probe.img")
        probe.write_image(img)
        r = vmm.run(["qemu-system-x86_64", "-accel", "tcg", "-M", "pc", "-m", "256", "-nographic", "-nodefaults",
                    "-serial", "stdio", "-drive", f"if=virtio,format=raw,file={img},snapshot=on"], 60)
        c = probe.classify(r, probe.markers(r))
        s.check("probe under QEMU TCG: every step runs, host capable", c.capable is True, f"{c.detail}\n{r}")

    # The nightly images (scripts/build-guest-image --kernel debian or minimal), as nightly-boot picks
    # them; not the variants (--shell never powers off by itself, --bench never reboots, the 6.12 one
    # is tis-irq-linux's).
    images = [p for p in (os.path.join(ROOT, "build", f"guest-linux-{k}.img") for k in ("debian", "minimal"))
              if os.path.exists(p)]
    if os.environ.get("MINIVMM_NIGHTLY_IMAGE"):
        images = [os.environ["MINIVMM_NIGHTLY_IMAGE"]]
    base = [sys.executable, script, "--minivmm", minivmm, "--program", program, "--timeout", "300"]
    if images:
        # QEMU's column is checked separately below (QEMU TCG on a loaded host can flake, e.g. the
        # kernel's "IO-APIC + timer doesn't work" check; test_guest_image_qemu.py covers the image there).
        image, extra = images[0], ["--no-qemu"]
        print(f"    the Linux image: {image}")
    else:
        image = os.path.join(tmp, "stand-in.img")
        subprocess.run([sys.executable, mkimage, "--program", program, "--out", image, "--mode", "basic"], check=True)
        extra = ["--bootloader-banner", r"MVG: serial PASS", "--no-qemu"]
        print("    no build/guest-linux-*.img: the boot-sector program stands in for the bootloader")
    # The test command runs a subset (MINIVMM_NIGHTLY_FULL=1: the whole matrix): every firmware-tpm run, Linux
    # on TPM 1.2 in-process (TIS), TPM 2.0 swtpm (CRB), the Debian system disk on TPM 2.0 swtpm (TIS);
    # -kernel is kernel-boot's, 6.12 tis-irq-linux's.
    full = os.environ.get("MINIVMM_NIGHTLY_FULL") == "1"
    linux_cells = ["tpm2.0/swtpm", "tpm2.0/in-process", "tpm1.2/swtpm", "tpm1.2/in-process", "tpm2.0-crb/swtpm"]
    linux_cells = linux_cells if full else linux_cells[3:]
    subset = ["host/*", "*/firmware-tpm", "tpm1.2/in-process/*", "tpm2.0-crb/swtpm/*", SYSTEM_CELL + "*"]
    junit = os.path.join(tmp, "full", "junit.xml")
    system_image = os.path.join(ROOT, "build", "guest-debian-system.img")
    r = suite.run(base + extra + ["--image", image, "--junit", junit, "--system-image", system_image]
                    + ([] if full else ["--cases", ",".join(subset)]), timeout=2000)
    print(r.stdout)
    ok, why = junit_consistent(junit) if os.path.exists(junit) else (False, "no junit.xml")
    s.check("matrix: JUnit parses and its counts are consistent", ok, why)
    s.check("matrix: JUnit valid against junit.xsd (xmllint)", *(schema_valid(junit) if ok else (False, why)))
    res = results(junit) if ok else {}
    cal = res.get("host/calibration", ("missing", ""))
    s.check("matrix: the calibration ran", cal[0] == "passed", cal)
    incapable = "cannot run a Linux kernel" in r.stdout.split("\n\n")[0]
    linux = {k: v for k, v in res.items() if k.startswith("tpm") and k.endswith("/linux") and "-kernel/" not in k
             and "-nofw" not in k}
    nofw = {k: v for k, v in res.items() if "-nofw" in k}  # -bios none cells
    kernel = {k: v for k, v in res.items() if k.startswith("tpm2.0-kernel/")}  # the -kernel cell
    system = {k: v for k, v in res.items() if k.startswith("debian-system/")}
    if full:
        s.check("full matrix: the -kernel cell's 15 cases (linux, TPM 2.0 checks, kernel-measured; 2 boots)",
                len(kernel) == 15, sorted(kernel))
        s.check("full matrix: the four -bios none cells' 62 cases (TPM 2.0: 17 each, 1.2: 11)", len(nofw) == 62,
                sorted(nofw))
    want_linux = sorted(f"{c}/{b}/linux" for c in linux_cells for b in ("first-boot", "after-reboot"))
    s.check(f"matrix: {len(want_linux)} Linux cases ({', '.join(linux_cells)})", sorted(linux) == want_linux, linux)
    firmware = {k: v for k, v in res.items() if k.endswith("/firmware-tpm")}
    s.check("matrix: 10 firmware-tpm cases, all pass (MBR measured, log replays; TIS and CRB)",
            len(firmware) == 10 and all(v[0] == "passed" for v in firmware.values()), firmware)
    first = {k: v for k, v in res.items() if k.startswith("tpm") and k.endswith("first-boot/pre-kernel")}
    s.check(f"matrix: pre-kernel first boot passes for all {len(linux_cells)} Linux cells (SeaBIOS, TPM table, "
            "bootloader)", len(first) == len(linux_cells) and all(v[0] == "passed" for v in first.values()), first)
    want_system = [i for i in system_checks.case_ids() if full or i.startswith(SYSTEM_CELL)]
    s.check(f"matrix: {len(want_system)} debian-system cases", sorted(system) == sorted(want_system), sorted(system))
    if incapable:
        s.check("incapable host: every Linux case SKIPPED with the calibration's reason, none passed",
                all(v[0] == "skipped" and INCAPABLE in v[1] for v in linux.values()), linux)
        s.check("incapable host: the -kernel and debian-system cells SKIPPED with the calibration's reason too",
                all(v[0] == "skipped" and INCAPABLE in v[1] for v in list(kernel.values()) + list(system.values())),
                (kernel, system))
        s.check("incapable host: exit 0 with only skips", r.returncode == 0, r)
        s.check("incapable host: the report says so and counts the skips",
                re.search(r"\b\d+ passed, 0 failed, \d+ skipped, 0 errors", r.stdout) is not None
                and "SKIPPED: " + INCAPABLE in r.stdout, r.stdout[-2000:])
    elif images:
        s.check("capable host: every Linux case passes", all(v[0] == "passed" for v in linux.values()), linux)
        ppi = {k: v for k, v in res.items() if k.startswith("tpm") and k.endswith("/ppi")}
        s.check(f"capable host: {2 * len(linux_cells)} PPI cases (request in boot 1, carried out at the reboot), "
                "all pass", len(ppi) == 2 * len(linux_cells) and all(v[0] == "passed" for v in ppi.values()), ppi)
        s.check("capable host: the -kernel cell passes (kernel, initrd, command line on PCR 8/9 as computed)",
                all(v[0] == "passed" for v in kernel.values()), kernel)
        s.check("capable host: the Debian system disk passes (GRUB, systemd, LUKS2 + credential on the TPM, "
                "systemctl poweroff, exit 0)", all(v[0] == "passed" for v in system.values()), system)
    else:
        s.check("capable host, stand-in image: Linux cases fail, never skip", r.returncode == 1 and all(
            v[0] == "failure" for v in linux.values()), linux)
        s.check("capable host, stand-in image: the -kernel cell cannot take a kernel out of it: errors, never skips",
                all(v[0] in ("error", "failure") for v in kernel.values()), kernel)
    report_txt = os.path.join(tmp, "full", "report.txt")
    s.check("full matrix: report.txt written next to the JUnit file with the table",
            os.path.exists(report_txt) and "case" in open(report_txt).read().split("\n\n")[1])

    if full and images and shutil.which("qemu-system-x86_64") and shutil.which("swtpm"):
        junit = os.path.join(tmp, "qemu", "junit.xml")
        # QEMU's TCG inside the nested VM: Linux reached /init at 130 s in one CI run and at 244 s in
        # another (2026-12-04), too close to the minivmm cases' 300 s; give each QEMU boot 600 s.
        r = suite.run(base + ["--image", image, "--junit", junit, "--cases", "qemu/tpm1.2/*", "--timeout", "600"],
                        timeout=1500)
        res = results(junit) if os.path.exists(junit) else {}
        print(r.stdout)
        compare = {k: v for k, v in res.items() if k.endswith("/pcrs-as-minivmm")}
        s.check("QEMU reference: 11 cases, first boot reaches the bootloader, only the PCR comparison "
                "(no minivmm run selected) skipped",
                len(res) == 11 and all(v[0] != "skipped" for k, v in res.items() if k not in compare)
                and len(compare) == 2 and all(v[0] == "skipped" and "no minivmm" in v[1] for v in compare.values())
                and res.get("qemu/tpm1.2/first-boot/pre-kernel", ("",))[0] == "passed", (r, res))

    # Injected failure: no such image. The image cases are errors, the run exits 1.
    junit = os.path.join(tmp, "missing", "junit.xml")
    r = suite.run(base + ["--image", os.path.join(tmp, "nope.img"), "--junit", junit, "--no-qemu",
                            "--cases", "tpm2.0/in-process/first-boot/*"], timeout=600)
    res = results(junit) if os.path.exists(junit) else {}
    s.check("missing image: exit 1, pre-kernel and linux are errors naming the image, JUnit consistent",
            r.returncode == 1 and junit_consistent(junit)[0]
            and res.get("tpm2.0/in-process/first-boot/pre-kernel", ("",))[0] == "error"
            and "nope.img not found" in res.get("tpm2.0/in-process/first-boot/linux", ("", ""))[1], (r, res))

    if incapable:  # --force: the Linux case runs and fails here, it is never skipped or passed
        junit = os.path.join(tmp, "force", "junit.xml")
        r = suite.run(base + extra + ["--image", image, "--junit", junit, "--force", "--no-qemu",
                                        "--cases", "tpm2.0/in-process/first-boot/linux"], timeout=600)
        res = results(junit) if os.path.exists(junit) else {}
        s.check("--force on an incapable host: the Linux case runs and fails, exit 1",
                r.returncode == 1 and res.get("tpm2.0/in-process/first-boot/linux", ("",))[0] == "failure", (r, res))

    r = suite.run(base + ["--cases", "no/such/case"], timeout=60)
    s.check("--cases selecting nothing: exit 2", r.returncode == 2 and "selects no case" in r.stderr, r)
    r = suite.run(base + ["--timeout", "0"], timeout=60)
    s.check("--timeout 0: exit 2", r.returncode == 2, r)
    s.finish()


if __name__ == "__main__":
    sys.exit(main())
