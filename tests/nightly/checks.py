"""What the nightly boot tests check in one VMM run, per boot: the firmware and bootloader part
(SeaBIOS's debug log and COM1), the Linux part (the image's /init "NIGHTLY:" lines) and the
firmware TPM check (the project's boot-sector program, tests/guest, "MVG:" lines).

Each check returns a Verdict: status "passed", "failed" or "skipped", a one-line message (the
reason for failed/skipped, a summary for passed), details for the report, and timings."""
import re

SEABIOS_BANNER = "SeaBIOS (version"  # once per boot on COM1 (sercon); its debug log has it twice or more
BOOTING = "Booting from Hard Disk"
BOOTLOADER = r"(?:SYS|EXT|ISO)LINUX \d\S*|GNU GRUB"   # --bootloader-banner default
TPM_TABLE = {"2.0": "table(324d5054)", "1.2": "table(41504354)"}  # SeaBIOS found our TPM2 / TCPA
NIGHTLY = re.compile(r"NIGHTLY: ([a-z_-]+)(?: ([^\r\n]*))?")
MVG = re.compile(r"MVG: (\S+) (PASS|FAIL)(?: ([^\r\n]*))?")


class Verdict:
    def __init__(self, status, message, details=(), seconds=0.0, init=None, tpm0=None):
        self.status, self.message, self.details = status, message, list(details)
        self.seconds, self.init, self.tpm0 = seconds, init, tpm0


def segments(text, marker=SEABIOS_BANNER):
    """[(start, end)] of each boot in a log: from one SeaBIOS banner to the next (the first boot
    from offset 0, so output before the banner belongs to it)."""
    starts = [m.start() for m in re.finditer(re.escape(marker), text)]
    if not starts:
        return [(0, len(text))] if text else []
    starts[0] = 0
    return list(zip(starts, starts[1:] + [len(text)]))


def debug_boot(debug, index):
    """SeaBIOS's debug log of boot `index`: from the end of the previous "Booting from Hard Disk" to
    the end of this one (the tail after the last one if the boot never got there). Split this way
    because the banner and BUILD lines repeat within one boot when QEMU's SeaBIOS handles a reset."""
    ends = [m.end() for m in re.finditer(re.escape(BOOTING), debug)]
    starts = [0] + ends
    if index > len(ends):
        return ""
    return debug[starts[index]:ends[index] if index < len(ends) else len(debug)]


def panic(text):
    """The kernel's panic line in text, or ""."""
    m = re.search(r"Kernel panic - not syncing: ([^\r\n]*)", text)
    return f"; kernel panic: {m.group(1).strip()[:160]}" if m else ""


def boot_start_time(run, bounds, index):
    """When boot `index` began: 0 for the first, else when the previous boot's last COM1 byte arrived
    (the closest the host sees to the reset)."""
    if index == 0:
        return 0.0
    return run.at(bounds[index - 1][1] - 1) or 0.0


def last_output(text, limit=160):
    tail = re.sub(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b.", "", text).strip().replace("\r", "")
    tail = tail.splitlines()[-1] if tail else ""
    return repr(tail[-limit:])


def prekernel(run, debug, index, version, banner, kernel_runs, what="bootloader"):
    """Boot `index` (0-based) up to the bootloader: SeaBIOS reached the boot sector (debugcon), found
    our TPM table, and the bootloader printed its banner on COM1. With kernel_runs False (the host
    cannot run Linux) the run is expected to end at or after the bootloader, and how it ended is
    reported (a KVM emulation failure, minivmm exit 5, included)."""
    bounds = segments(run.text)
    problems, details = [], []
    if index >= len(bounds):
        return Verdict("failed", f"boot {index + 1} never started ({len(bounds)} SeaBIOS banner(s) on COM1; "
                                 f"{run.describe()})", seconds=run.seconds)
    start, end = bounds[index]
    t0 = boot_start_time(run, bounds, index)
    dtext = debug_boot(debug, index)
    if BOOTING in dtext:
        details.append("SeaBIOS: \"Booting from Hard Disk\" (debugcon)")
    else:
        problems.append("SeaBIOS never reached the boot sector (no \"Booting from Hard Disk\" in its log)")
    if version:
        if TPM_TABLE[version] in dtext:
            details.append(f"SeaBIOS found the {'TPM2' if version == '2.0' else 'TCPA'} table")
        else:
            problems.append(f"SeaBIOS did not find the TPM {version} ACPI table")
    m = re.search(banner, run.text[start:end])
    seconds = run.seconds if index == len(bounds) - 1 else (run.at(end - 1) or run.seconds) - t0
    if m:
        seconds = (run.at(start + m.start()) or run.seconds) - t0
        details.append(f"{what}: {m.group().strip()!r} on COM1 at {seconds:.1f}s")
    else:
        problems.append(f"no {what} output matching /{banner}/ on COM1 (last: {last_output(run.text[start:end])})")
    if not kernel_runs:
        details.append(f"then {run.describe()} (the kernel cannot run on this host)")
    if problems:
        return Verdict("failed", "; ".join(problems), details, seconds)
    return Verdict("passed", "; ".join(details), details, seconds)


def nightly_lines(run, start, end):
    """{key: (value, time)} of the first NIGHTLY line of each key in text[start:end]; PCRs as
    {"pcr": {n: (hex, time)}}."""
    found = {"pcr": {}}
    for m in NIGHTLY.finditer(run.text, start, end):
        key, value = m.group(1), (m.group(2) or "").strip()
        when = run.at(m.start())
        if key == "pcr":
            n, _, digest = value.partition(" ")
            found["pcr"].setdefault(n, (digest.strip(), when))
        else:
            found.setdefault(key, (value, when))
    return found


def linux(run, index, version):
    """Boot `index` of the Linux image: /init ran, tpm_tis bound, /dev/tpm0 exists, the TPM version,
    PCRs 0-7 non-zero, a non-empty event log, the boot number and what /init did next; boot 1 must
    be followed by a second boot, boot 2 by a power-off (exit 0)."""
    bounds = segments(run.text)
    if index >= len(bounds):
        return Verdict("failed", f"boot {index + 1} never started ({run.describe()})", seconds=run.seconds)
    start, end = bounds[index]
    t0 = boot_start_time(run, bounds, index)
    lines = nightly_lines(run, start, end)
    seconds = (run.at(end - 1) or run.seconds) - t0
    if "init-start" not in lines:
        return Verdict("failed", f"/init never ran in boot {index + 1} ({run.describe()}; last COM1 output: "
                                 f"{last_output(run.text[start:end])}{panic(run.text[start:end])})", seconds=seconds)
    problems, details = [], []
    init = lines["init-start"][1] - t0
    details.append(f"init at {init:.1f}s ({lines['init-start'][0] or 'no uptime'})")
    value = lambda key: lines.get(key, ("none", None))[0]  # noqa: E731
    if value("tpm_tis") in ("", "none"):
        problems.append("no tpm_tis line in dmesg")
    else:
        details.append(f"tpm_tis: {value('tpm_tis')}")
    tpm0 = None
    if "/dev/tpm0" in value("devtpm"):
        tpm0 = lines["devtpm"][1] - t0
        details.append(f"/dev/tpm0 at {tpm0:.1f}s")
    else:
        problems.append(f"no /dev/tpm0 ({value('devtpm')})")
    want = "2" if version == "2.0" else "1"
    if value("tpm-version") != want:
        problems.append(f"TPM major version {value('tpm-version')!r}, want {want}")
    pcrs = lines["pcr"]
    bad = []
    for n in range(8):
        digest = re.sub(r"[\s:]", "", pcrs.get(str(n), ("", None))[0]).lower()
        if not re.fullmatch(r"[0-9a-f]{40}|[0-9a-f]{64}", digest) or not digest.strip("0"):
            bad.append(f"PCR {n} {digest[:16] or 'missing'}")
    if bad:
        problems.append("PCRs not measured: " + ", ".join(bad))
    else:
        details.append("PCR 0-7 non-zero")
    size = value("eventlog-size")
    if not size.isdigit() or int(size) == 0:
        problems.append(f"event log size {size!r}")
    else:
        details.append(f"event log {size} bytes")
    if value("boot") != str(index + 1):
        problems.append(f"/init says boot {value('boot')!r}, want {index + 1}")
    action = "reboot" if index == 0 else "poweroff"
    if value("action") != action:
        problems.append(f"/init action {value('action')!r}, want {action}")
    if index == 0 and len(bounds) < 2:
        problems.append(f"no second boot after the reboot ({run.describe()})")
    if index == 1 and (run.returncode != 0 or run.stopped):
        problems.append(f"did not power off cleanly ({run.describe()})")
    if problems:
        return Verdict("failed", "; ".join(problems), details, seconds, init, tpm0)
    return Verdict("passed", "; ".join(details), details, seconds, init, tpm0)


def firmware(run, debug, index, version):
    """Boot `index` of the boot-sector program (reset mode, --tpm VERSION): SeaBIOS measured the boot
    into the TPM and the program checked it: tpm-acpi, tpm-tis-regs, tpm-cmd and tpm-eventlog (the
    event log replays to PCRs 0-7 read from the TPM and holds the EV_IPL measurement of the MBR on
    PCR 4); no FAIL line; boot 1 resets, boot 2 reports second-boot, DONE with fail=0 and powers off."""
    pre = prekernel(run, debug, index, version, r"MVG: serial PASS", True, "boot-sector program")
    bounds = segments(run.text)
    if pre.status != "passed":
        return pre
    start, end = bounds[index]
    results = {m.group(1): (m.group(2), m.group(3) or "") for m in MVG.finditer(run.text, start, end)}
    problems = [f"{name} FAIL {why}" for name, (r, why) in results.items() if r == "FAIL"]
    need = ["tpm-acpi", "tpm-tis-regs", "tpm-cmd", "tpm-eventlog"] + (["second-boot"] if index else [])
    problems += [f"no {name} PASS" for name in need if results.get(name, ("",))[0] != "PASS"]
    seg = run.text[start:end]
    if index == 0 and "MVG: reset-request boot=1" not in seg:
        problems.append("boot 1 did not request the reset")
    if index == 1 and (not re.search(r"MVG: DONE pass=\d+ fail=0", seg) or run.returncode != 0 or run.stopped):
        problems.append(f"boot 2 did not finish with DONE fail=0 and power off ({run.describe()})")
    seconds = (run.at(end - 1) or run.seconds) - boot_start_time(run, bounds, index)
    if problems:
        return Verdict("failed", "; ".join(problems), pre.details, seconds)
    log = results["tpm-eventlog"][1]
    return Verdict("passed", f"event log replays to the PCRs, MBR measured into PCR 4: {log}",
                   pre.details + [f"tpm-eventlog: {log}"], seconds)
