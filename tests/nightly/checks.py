"""What the nightly boot tests check in one VMM run, per boot: the firmware and bootloader part
(SeaBIOS's debug log and COM1), the Linux part (the image's /init "NIGHTLY:" lines) and the
firmware TPM check (the project's boot-sector program, tests/guest, "MVG:" lines).

Each check returns a Verdict: status "passed", "failed" or "skipped", a one-line message (the
reason for failed/skipped, a summary for passed), details for the report, and timings."""
import re

SEABIOS_BANNER = "SeaBIOS (version"  # once per boot on COM1 (sercon); its debug log has it twice or more
KERNEL_BANNER = "Linux version "      # the kernel's first console line: once per boot without firmware (-bios none)
BOOTING = "Booting from Hard Disk"
BOOTLOADER = r"(?:SYS|EXT|ISO)LINUX \d\S*|GNU GRUB"   # --bootloader-banner default
TPM_TABLE = {"2.0": "table(324d5054)", "1.2": "table(41504354)"}  # SeaBIOS found our TPM2 / TCPA
NIGHTLY = re.compile(r"NIGHTLY: ([a-z0-9_-]+)(?: ([^\r\n]*))?")
# A kernel message that the console printed into the middle of a NIGHTLY line ("... 1[   25.135265]
# hrtimer: interrupt took 26206683 ns"): the value ends where it starts.
PRINTK = re.compile(r"\[\s*\d+\.\d+\] ")
INDEXED = ("pcr", "pcrread", "replay", "check")
MVG = re.compile(r"MVG: (\S+) (PASS|FAIL)(?: ([^\r\n]*))?")


class Verdict:
    def __init__(self, status, message, details=(), seconds=0.0, init=None, tpm0=None):
        self.status, self.message, self.details = status, message, list(details)
        self.seconds, self.init, self.tpm0 = seconds, init, tpm0


def segments(text, marker=SEABIOS_BANNER):
    """[(start, end)] of each boot in a log: from one SeaBIOS banner to the next (the first boot
    from offset 0, so output before the banner belongs to it). A log without SeaBIOS banners (-bios
    none) is split at the kernel's banners instead."""
    if marker == SEABIOS_BANNER and marker not in text:
        marker = KERNEL_BANNER
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
    """{key: (value, time)} of the first NIGHTLY line of each key in text[start:end]; the keys in
    INDEXED as {key: {first word: (rest, time)}} (PCRs: {"pcr": {n: (hex, time)}}, checks:
    {"check": {name: ("PASS ...", time)}})."""
    found = {k: {} for k in INDEXED}
    for m in NIGHTLY.finditer(run.text, start, end):
        key, value = m.group(1), PRINTK.split(m.group(2) or "", maxsplit=1)[0].strip()
        when = run.at(m.start())
        if key in INDEXED:
            n, _, rest = value.partition(" ")
            found[key].setdefault(n, (rest.strip(), when))
        else:
            found.setdefault(key, (value, when))
    return found


def linux(run, index, version, interface="tis", boot_mark=False):
    """Boot `index` of the Linux image: /init ran, tpm_tis (or with interface "crb", tpm_crb) bound
    to the TPM, /dev/tpm0 exists, the TPM version,
    PCRs 0-7 non-zero, a non-empty event log, the boot number and what /init did next; boot 1 must
    be followed by a second boot, boot 2 by a power-off (exit 0). With `boot_mark` (minivmm): when
    /init wrote the boot-complete mark, minivmm printed this boot's boot-time line."""
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
    if boot_mark and value("boot-mark") == "written":  # devices/boot_marker.hpp
        marks = re.findall(r"^minivmm: boot-time: ([0-9.]+) ms from start to the guest's boot-complete mark, "
                           r"([0-9.]+) ms after this power-on$", run.stderr or "", re.M)
        if len(marks) > index:
            details.append(f"boot-complete mark {float(marks[index][0]) / 1000:.2f}s after minivmm started, "
                           f"{float(marks[index][1]) / 1000:.2f}s after this power-on")
        else:
            problems.append("/init wrote the boot-complete mark, minivmm printed no boot-time line for it")
    driver = value("tpm-driver")  # older images have no such line: then only the probe line counts
    if interface == "crb":
        if driver != "tpm_crb":
            problems.append(f"the TPM's driver is {driver!r}, want tpm_crb")
        else:
            details.append("driver tpm_crb")
    elif value("tpm_tis") in ("", "none"):
        problems.append("no tpm_tis line in dmesg")
    elif driver not in ("none", "tpm_tis"):
        problems.append(f"the TPM's driver is {driver!r}, want tpm_tis")
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


def firmware(run, debug, index, version, interface="tis"):
    """Boot `index` of the boot-sector program (reset mode, --tpm VERSION): SeaBIOS measured the boot
    into the TPM and the program checked it: tpm-acpi, tpm-tis-regs (CRB: tpm-crb-regs), tpm-cmd and tpm-eventlog (the
    event log replays to PCRs 0-7 read from the TPM and holds the EV_IPL measurement of the MBR on
    PCR 4); no FAIL line; boot 1 resets, boot 2 reports second-boot, DONE with fail=0 and powers off."""
    pre = prekernel(run, debug, index, version, r"MVG: serial PASS", True, "boot-sector program")
    bounds = segments(run.text)
    if pre.status != "passed":
        return pre
    start, end = bounds[index]
    results = {m.group(1): (m.group(2), m.group(3) or "") for m in MVG.finditer(run.text, start, end)}
    problems = [f"{name} FAIL {why}" for name, (r, why) in results.items() if r == "FAIL"]
    regs = "tpm-crb-regs" if interface == "crb" else "tpm-tis-regs"
    need = ["tpm-acpi", regs, "tpm-cmd", "tpm-eventlog"] + (["second-boot"] if index else [])
    problems += [f"no {name} PASS" for name in need if results.get(name, ("",))[0] != "PASS"]
    seg = run.text[start:end]
    if index == 0 and "MVG: reset-request boot=1" not in seg:
        problems.append("boot 1 did not request the reset")
    if index == 1 and (not re.search(r"MVG: DONE pass=\d+ fail=0", seg) or run.returncode != 0 or run.stopped):
        problems.append(f"boot 2 did not finish with DONE fail=0 and power off ({run.describe()})")
    seconds = (run.at(end - 1) or run.seconds) - boot_start_time(run, bounds, index)
    if problems:
        # minivmm's end-of-boot TPM warning says which command was slow or cancelled, and how slow.
        problems += [line.strip() for line in run.stderr.splitlines()
                     if f"boot {index + 1}: " in line and ("measurements may be incomplete" in line
                                                         or "no PCR was extended" in line)]
        return Verdict("failed", "; ".join(problems), pre.details, seconds)
    log = results["tpm-eventlog"][1]
    return Verdict("passed", f"event log replays to the PCRs, MBR measured into PCR 4: {log}",
                   pre.details + [f"tpm-eventlog: {log}"], seconds)


# -- deeper TPM checks: /init's tpm2-tools (TPM 2.0) and sysfs/event-log (TPM 1.2) lines --------------
TPM2_CHECKS = ("selftest", "getrandom", "pcrread-eventlog", "pcrextend", "ecc-sign")
TPM12_CHECKS = ("caps", "pcrs-eventlog")
AFTER_REBOOT = "pcrs-unchanged"  # only for the second boot: PCR 0-7 as in the first


def tpm_check_names(version, boot_index):
    names = TPM2_CHECKS if version == "2.0" else TPM12_CHECKS
    return names + ((AFTER_REBOOT,) if boot_index == 1 else ())


def pcr_values(lines, key="pcr"):
    return {int(n): re.sub(r"[\s:]", "", v[0]).lower() for n, v in lines[key].items() if n.isdigit()}


def sha1_log_events(data):
    """[(pcr, type, sha1 digest, event data)] of a TPM 1.2 (SHA-1, TCG_PCR_EVENT) event log (TCG PC
    Client spec for conventional BIOS 1.21, 11.1), up to the zero-filled rest of the area."""
    import struct
    at, events = 0, []
    while at + 32 <= len(data):
        index, kind = struct.unpack_from("<II", data, at)
        digest, size = data[at + 8:at + 28], struct.unpack_from("<I", data, at + 28)[0]
        if index == 0 and kind == 0 and size == 0 and not digest.strip(b"\0"):
            break
        if at + 32 + size > len(data):
            raise ValueError(f"event {len(events)} at offset {at} runs past the log's end")
        events.append((index, kind, digest, data[at + 32:at + 32 + size]))
        at += 32 + size
    return events


def replay_sha1_log(data):
    """PCRs 0-9 from a TPM 1.2 event log (sha1_log_events): PCR = SHA1(PCR || digest) per event,
    EV_NO_ACTION (3) skipped; and the number of events."""
    import hashlib
    pcrs, events = {n: bytes(20) for n in range(10)}, sha1_log_events(data)
    for index, kind, digest, _ in events:
        if kind != 3 and index < 10:
            pcrs[index] = hashlib.sha1(pcrs[index] + digest).digest()
    return {n: v.hex() for n, v in pcrs.items()}, len(events)


def tpm_checks(run, index, version, first_pcrs=None):
    """{check name: Verdict} of boot `index` for tpm_check_names(version, index). first_pcrs: the
    first boot's PCR 0-7 values (pcr_values), for the after-reboot comparison."""
    import hashlib
    bounds = segments(run.text)
    names = tpm_check_names(version, index)
    if index >= len(bounds):
        return {n: Verdict("failed", f"boot {index + 1} never started ({run.describe()})") for n in names}
    lines = nightly_lines(run, *bounds[index])
    if "init-start" not in lines:
        return {n: Verdict("failed", f"/init never ran in boot {index + 1}") for n in names}
    value = lambda key: lines.get(key, ("", None))[0]  # noqa: E731
    pcrs = pcr_values(lines)
    out = {}

    def verdict(name, problem, summary):
        out[name] = Verdict("failed", problem) if problem else Verdict("passed", summary)

    def tool(name):
        result = lines["check"].get(name, ("missing: /init printed no result (tpm2-tools in the image?)", None))[0]
        verdict(name, None if result == "PASS" else f"{name}: {result}", f"tpm2_{name.replace('-', '_')} succeeded")

    if version == "2.0":
        tool("selftest")
        randoms = value("getrandom").split()
        ok = len(randoms) == 2 and all(re.fullmatch(r"[0-9a-f]{32}", r) for r in randoms) and randoms[0] != randoms[1]
        verdict("getrandom", None if ok else f"want two different 16-byte answers, got {value('getrandom')!r}",
                f"two different answers: {' '.join(randoms)}")
        read, replay = pcr_values(lines, "pcrread"), pcr_values(lines, "replay")
        # PCR 8 and 9 (read by newer images) hold events only in a -kernel boot; without events
        # tpm2_eventlog replays nothing for them, and the TPM must read zero.
        want = {n: replay.get(n, "0" * 64 if n >= 8 else None) for n in read}
        problem = None
        if not set(range(8)) <= set(read) or not set(range(8)) <= set(replay):
            problem = f"tpm2_pcrread gave PCRs {sorted(read)}, tpm2_eventlog replayed {sorted(replay)}; want 0-7 at least"
        elif read != want:
            problem = "tpm2_pcrread differs from the event log's replay on PCR " + ", ".join(
                str(n) for n in sorted(read) if read[n] != want[n])
        elif any(read[n] != pcrs.get(n) for n in read):
            problem = "tpm2_pcrread differs from sysfs pcr-sha256"
        verdict("pcrread-eventlog", problem,
                f"tpm2_pcrread = tpm2_eventlog replay = sysfs for PCR {min(read, default=0)}-{max(read, default=7)}")
        tool_result = lines["check"].get("pcrextend", ("missing", None))[0]
        digest, _, got = value("pcr16").partition(" ")
        want = hashlib.sha256(bytes(32) + bytes.fromhex(digest)).hexdigest() if re.fullmatch(r"[0-9a-f]{64}",
                                                                                             digest) else None
        problem = (f"tpm2_pcrextend: {tool_result}" if tool_result != "PASS" else
                   f"PCR 16 reads {got!r}, want SHA256(0^32 || {digest}) = {want}" if got.strip().lower() != want
                   else None)
        verdict("pcrextend", problem, f"PCR 16 = SHA256(0^32 || digest) = {str(want)[:16]}...")
        tool("ecc-sign")
    else:
        caps = value("caps")
        ok = "Manufacturer" in caps and re.search(r"TCG version: 1\.2", caps)
        verdict("caps", None if ok else f"sysfs caps {caps!r}: want a Manufacturer and TCG version 1.2",
                caps.replace(";", "; ").strip())
        try:
            replay, events = replay_sha1_log(bytes.fromhex(value("eventlog-hex")))
            problem = None if events else "the SHA-1 event log is empty"
            listed = sorted(n for n in pcrs if n < 10)  # 0-7, and 8-9 from newer images
            if not problem and any(replay[n] != pcrs.get(n) for n in listed):
                problem = "the event log's replay differs from sysfs pcrs on PCR " + ", ".join(
                    str(n) for n in listed if replay[n] != pcrs.get(n))
        except ValueError as e:
            problem, events, listed = f"event log unreadable: {e}", 0, [0]
        verdict("pcrs-eventlog", problem, f"{events} SHA-1 events replay to sysfs PCRs {min(listed)}-{max(listed)}")
    if index == 1:
        first = first_pcrs or {}
        diff = [n for n in range(8) if pcrs.get(n) is None or pcrs.get(n) != first.get(n)]
        verdict(AFTER_REBOOT, f"PCR {', '.join(map(str, diff))} differ from the first boot" if diff else None,
                "PCR 0-7 identical to the first boot")
    return out


# -- the Physical Presence Interface (minivmm only: QEMU's firmware, SeaBIOS, carries out no request) --
PPI = "ppi"


def ppi(run, index, version):
    """Verdict of /init's PPI lines in boot `index`. Boot 1: Linux shows ppi/ (version 1.3), the
    operation /init asks for (5 on a TPM 2.0, 22 on a 1.2) is offered without a physically present
    user, accepted, pending, and needs a reboot; on a TPM 2.0 a persistent key 0x81000001 was made
    first. Boot 2: the response says the operation succeeded, nothing is pending, and on a TPM 2.0
    the key is gone (TPM2_Clear removed it)."""
    bounds = segments(run.text)
    if index >= len(bounds):
        return Verdict("failed", f"boot {index + 1} never started ({run.describe()})")
    lines = nightly_lines(run, *bounds[index])
    if "init-start" not in lines:
        return Verdict("failed", f"/init never ran in boot {index + 1}")
    value = lambda key: lines.get(key, ("missing", None))[0]  # noqa: E731
    op = "5" if version == "2.0" else "22"
    problems = []
    if value("ppi-version") != "1.3":
        return Verdict("failed", f"ppi/version is {value('ppi-version')!r}, want 1.3 (no PPI in Linux's sysfs?)")
    persistent = value("ppi-persistent")
    if index == 0:
        if version == "2.0":
            result = lines["check"].get("ppi-persist", ("missing", None))[0]
            if result != "PASS":
                problems.append(f"making the persistent key: {result}")
            elif not persistent.startswith("ok") or "0x81000001" not in persistent:
                problems.append(f"the persistent key is not listed: {persistent!r}")
        if f"{op} 4: User not required" not in value("ppi-operations").split(";"):
            problems.append(f"ppi/tcg_operations does not offer {op} without a user: {value('ppi-operations')!r}")
        if value("ppi-submit") != op:
            problems.append(f"writing {op} to ppi/request failed ({value('ppi-submit')!r})")
        if value("ppi-request") != op:
            problems.append(f"ppi/request reads {value('ppi-request')!r}, want {op}")
        if value("ppi-transition") != "2: Reboot":
            problems.append(f"ppi/transition_action {value('ppi-transition')!r}, want '2: Reboot'")
        summary = f"operation {op} requested, pending, transition '2: Reboot'"
    else:
        if value("ppi-response") != f"{op} 0: Success":
            problems.append(f"ppi/response {value('ppi-response')!r}, want '{op} 0: Success'")
        if value("ppi-request") != "0":
            problems.append(f"ppi/request reads {value('ppi-request')!r} after the reboot, want 0")
        if version == "2.0" and not persistent.startswith("ok"):
            problems.append(f"tpm2_getcap handles-persistent: {persistent!r}")
        elif version == "2.0" and "0x81000001" in persistent:
            problems.append(f"the persistent key survived the Clear: {persistent!r}")
        summary = f"response '{op} 0: Success'" + ("; the persistent key is gone" if version == "2.0" else "")
    return Verdict("failed", "; ".join(problems)) if problems else Verdict("passed", summary)

