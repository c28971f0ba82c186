"""Results of the nightly boot tests: one Case per check, written as JUnit XML (the Ant/Jenkins
junit-10.xsd schema: testsuites > testsuite > testcase with name, classname, time; skipped/failure/
error with a message; testsuite counts tests/failures/errors/skipped that add up, and testsuites
tests/failures/errors their sums) and as a plain-text table."""
import datetime
import os
import socket
import textwrap
import xml.etree.ElementTree as ET

STATUSES = ("passed", "failed", "skipped", "error")
LABEL = {"passed": "PASS", "failed": "FAIL", "skipped": "SKIPPED", "error": "ERROR"}


class Case:
    """One test case. `id` is "host/calibration", "tpm2.0/swtpm/first-boot/linux" or
    "qemu/tpm2.0/first-boot/linux"; `suite` the testsuite ("host", "minivmm", "qemu")."""

    def __init__(self, suite, case_id, status, message="", details=(), seconds=0.0, init=None, tpm0=None):
        if status not in STATUSES:
            raise ValueError(f"bad status {status!r}")
        self.suite, self.id, self.status, self.message = suite, case_id, status, message
        self.details, self.seconds, self.init, self.tpm0 = list(details), max(seconds, 0.0), init, tpm0

    @classmethod
    def from_verdict(cls, suite, case_id, verdict):
        return cls(suite, case_id, verdict.status, verdict.message, verdict.details, verdict.seconds,
                   verdict.init, verdict.tpm0)


def counts(cases):
    return {s: sum(1 for c in cases if c.status == s) for s in STATUSES}


def exit_status(cases):
    """0 when something passed and nothing failed or errored (skips are fine), else 1: a run in
    which every case was skipped checked nothing and must not look green."""
    n = counts(cases)
    return 1 if n["failed"] or n["error"] or not n["passed"] else 0


def junit(cases, path, properties=()):
    """Writes the JUnit XML file (one testsuite per suite, in first-seen order)."""
    n = counts(cases)
    # junit-10.xsd (Jenkins) gives testsuites no skipped attribute: the skips are counted per testsuite
    root = ET.Element("testsuites", name="minivmm-nightly-boot", tests=str(len(cases)),
                      failures=str(n["failed"]), errors=str(n["error"]), time=f"{sum(c.seconds for c in cases):.3f}")
    stamp = datetime.datetime.now().replace(microsecond=0).isoformat()
    for suite in dict.fromkeys(c.suite for c in cases):
        members = [c for c in cases if c.suite == suite]
        m = counts(members)
        ts = ET.SubElement(root, "testsuite", name=f"nightly.{suite}", tests=str(len(members)),
                           failures=str(m["failed"]), errors=str(m["error"]), skipped=str(m["skipped"]),
                           time=f"{sum(c.seconds for c in members):.3f}", timestamp=stamp,
                           hostname=socket.gethostname() or "localhost")
        if properties:
            props = ET.SubElement(ts, "properties")
            for name, value in properties:
                ET.SubElement(props, "property", name=name, value=str(value))
        for c in members:
            tc = ET.SubElement(ts, "testcase", name=c.id, classname=f"nightly.{c.suite}", time=f"{c.seconds:.3f}")
            if c.status == "skipped":
                ET.SubElement(tc, "skipped", message=clean(c.message))
            elif c.status in ("failed", "error"):
                tag = "failure" if c.status == "failed" else "error"
                el = ET.SubElement(tc, tag, message=clean(c.message), type=tag)
                el.text = clean("\n".join(c.details))
            if c.details:
                ET.SubElement(tc, "system-out").text = clean("\n".join(c.details))
    ET.indent(root)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = path + ".tmp"
    ET.ElementTree(root).write(tmp, encoding="UTF-8", xml_declaration=True)
    os.replace(tmp, path)


def clean(text):
    """Only characters XML 1.0 allows (guest output can hold control characters)."""
    return "".join(ch if ch in "\t\n\r" or (" " <= ch <= "\ud7ff") or ("\ue000" <= ch <= "\ufffd")
                   else f"\\x{ord(ch):02x}" for ch in text)


def seconds(value):
    return "-" if value is None else f"{value:.1f}s"


def table(cases, header=()):
    """The plain report: header lines, one row per minivmm/host case (QEMU's result for the same
    TPM version and boot in the reference column), totals, then each case's message (what passed,
    why it failed or was skipped), cases with the same message grouped."""
    qemu = {c.id.removeprefix("qemu/"): c for c in cases if c.suite == "qemu"}
    rows = [("case", "result", "init", "/dev/tpm0", "QEMU reference (result init /dev/tpm0)")]
    for c in cases:
        if c.suite == "qemu":
            continue
        parts = c.id.split("/")
        ref = qemu.get("/".join([parts[0]] + parts[2:])) if len(parts) == 4 else None
        ref_text = "-" if ref is None else f"{LABEL[ref.status]} {seconds(ref.init)} {seconds(ref.tpm0)}"
        rows.append((c.id, LABEL[c.status], seconds(c.init), seconds(c.tpm0), ref_text))
    for c in cases:  # QEMU cases with no minivmm row (e.g. --cases picked only QEMU's)
        key = c.id.removeprefix("qemu/").split("/")
        if c.suite == "qemu" and not any(r[0].split("/")[:1] + r[0].split("/")[2:] == key for r in rows[1:]):
            rows.append((c.id, LABEL[c.status], seconds(c.init), seconds(c.tpm0), "-"))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    lines = list(header) + ([""] if header else [])
    for r in rows:
        lines.append("  ".join(r[i].ljust(widths[i]) for i in range(len(widths))) + "  " + r[-1])
    n = counts(cases)
    lines += ["", f"{n['passed']} passed, {n['failed']} failed, {n['skipped']} skipped, {n['error']} errors"]
    groups = {}  # (status, message) -> case ids, so one reason shared by many skips is printed once
    for c in cases:
        if c.message:
            groups.setdefault((c.status, c.message), []).append(c.id)
    for (status, message), ids in groups.items():
        lines += ["", f"{LABEL[status]}: {message}"]
        lines += textwrap.wrap(", ".join(ids), 100, break_on_hyphens=False, initial_indent="    ",
                               subsequent_indent="    ")
    return "\n".join(lines) + "\n"


def console_tails(cases, count=40):
    """The last `count` lines of COM1 of every run behind a failed or errored case (the details line
    "logs: BASE.{com1,...}" names it), each run once: a run that fails in CI leaves its console in
    the CI log, not only in a logs/ folder that a test's temporary directory takes with it."""
    bases = dict.fromkeys(d.removeprefix("logs: ").split(".{")[0] for c in cases if c.status in ("failed", "error")
                          for d in c.details if d.startswith("logs: "))
    out = []
    for base in bases:
        try:
            with open(base + ".com1", encoding="latin-1") as f:
                tail = f.read().splitlines()[-count:]
        except OSError as e:
            tail = [f"(not readable: {e})"]
        out += ["", f"COM1 of {os.path.basename(base)}, last {len(tail)} lines:"] + ["  | " + line for line in tail]
    return "\n".join(out) + "\n" if out else ""
