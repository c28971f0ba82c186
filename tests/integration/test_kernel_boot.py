#!/usr/bin/env python3
"""Direct kernel boot, measured (-kernel/-initrd/-append; vmm/kernel_boot.hpp): Debian's kernel and the
nightly initramfs, taken out of the nightly guest image (no image is built for this test), booted
through SeaBIOS by minivmm's boot ROM on a real KVM (nested where the host has none):

  tpm2   TPM 2.0 from the swtpm minivmm runs itself (-tpm-swtpm: manufactured by swtpm_setup with this
         test's own local CA), the nightly image as the disk (-snapshot; /init keeps its boot flag there, so it
         reboots once): both boots pass the nightly `linux` and TPM 2.0 checks (tpm2-tools, the event
         log replaying to PCRs 0-9), and the log's events on PCRs 8 and 9 are the kernel, the command
         line and the initrd with the digests computed here from the same files, PCR 8 and 9 equal the
         values computed here, in both boots (each power-on measures again); the EK certificate
         tpm2_getekcertificate reads in the guest verifies against the CA (openssl verify), and no
         swtpm is left after minivmm exits
  tpm12  in-process TPM 1.2: the same with SHA-1 (the TCPA log's events, sysfs PCRs 8 and 9)
  no-tpm no TPM and no disk: Linux reaches /init with the command line given, /init powers off
  nofw-tpm2  -bios none (vmm/direct_boot.hpp: no SeaBIOS; minivmm decompresses the bzImage's payload,
         enters its ELF through PVH and is the measuring firmware), swtpm TPM 2.0, the image as the disk,
         -kernel-cache (empty: the decompressed kernel is stored there): as tpm2, and PCR 0 holds
         minivmm's CRTM version and separator as computed here, and Linux finds minivmm's SMBIOS
         ("DMI: minivmm minivmm, BIOS <version>", every -bios none case) (the nightly matrix runs the other
         -bios none cells: in-process 2.0 through the 64-bit entry, 1.2, the CRB)
         Once the files are 2 s old, -kernel-cache also keeps their digests (vmm/file_digests.hpp):
         the records hold the SHA-256 computed here
  nofw-warm  -bios none, in-process TPM 2.0, the same -kernel-cache: the kernel comes from it (read in
         place; the reboot reads it again under the sandbox) and the kernel's and initrd's digests from
         their records (nothing is hashed again), and the boot is measured exactly as nofw-tpm2's;
         the TPM's EK certificates (made at its first start) are what Linux reads from NV 0x01c00002 and
         0x01c0000a with tpm2_nvread, and `openssl verify -CAfile STATE/ek-ca.pem` accepts them
  nofw-bzimage -bios none -kernel-entry bzimage (the kernel decompresses itself), no TPM, no disk: the same
  nofw-elf   -bios none with the ELF vmlinux itself (decompressed here from the bzImage) as -kernel: the same

First, offline (no KVM): the verdicts on recorded /init lines pass what matches and fail a wrong PCR,
a wrong digest and a missing event.

usage: test_kernel_boot.py MINIVMM IMAGE"""
import hashlib
import os
import re
import struct
import subprocess
import sys

from tests.nightly import checks
from tests.nightly import kernel_checks
from tests.nightly import vm
from tests.harness import suite
from tests.harness import vmm

TIMEOUT = 600  # two boots of Debian's kernel on the real-clock nested KVM
NOFW = kernel_checks.NOFW
CACHE = ["-kernel-cache", "{cache}"]
CASES = {"tpm2": ("2.0", "managed", ()), "tpm12": ("1.2", "in-process", ()), "no-tpm": (None, None, ()),
         "nofw-tpm2": ("2.0", "swtpm", NOFW + tuple(CACHE)), "nofw-warm": ("2.0", "in-process", NOFW + tuple(CACHE)),
         "nofw-bzimage": (None, None, NOFW + ("-kernel-entry", "bzimage")), "nofw-elf": (None, None, NOFW)}
# What minivmm says on stderr (-d info) about how it entered the kernel, per -bios none case.
ENTRY = {"nofw-tpm2": "bytes) is entered through PVH at", "nofw-warm": "from -kernel-cache) is entered through PVH",
         "nofw-bzimage": "-kernel-entry bzimage: its 64-bit entry is used",
         "nofw-elf": "the ELF kernel is entered through PVH at"}


def vmlinux(bzimage, out):
    """The ELF inside a bzImage with an xz payload (Debian's), as the kernel's own decompressor makes it."""
    import lzma
    with open(bzimage, "rb") as f:
        k = f.read()
    offset, length = struct.unpack_from("<II", k, 0x248)
    start = ((k[0x1F1] or 4) + 1) * 512 + offset
    with open(out, "wb") as f:
        f.write(lzma.LZMADecompressor(format=lzma.FORMAT_XZ).decompress(k[start:start + length]))
    return out


def offline(s):
    """kernel_checks on recorded /init lines: what matches passes, each kind of mismatch fails."""
    kernel, initrd, line = b"kernel bytes", b"initrd bytes", "console=ttyS0 quiet"

    def text(version, events, pcrs):
        key = "pcrread" if version == "2.0" else "pcr"
        lines = ["NIGHTLY: init-start uptime=1"] + [f"NIGHTLY: {key} {n} {v}" for n, v in pcrs.items()]
        if version == "2.0":
            lines += [f"NIGHTLY: kernel-event {p} {kind} {d} {t}" for p, d, t, *rest in events
                      for kind in [rest[0] if rest else "EV_IPL"]]
        else:
            log = b"".join(struct.pack("<II", p, rest[0] if rest else 13) + bytes.fromhex(d) + struct.pack("<I", len(t) + 1)
                           + t.encode() + b"\0" for p, d, t, *rest in events)
            lines.append(f"NIGHTLY: eventlog-hex {(log + bytes(64)).hex()}")
        return vmm.Run([], 0, "SeaBIOS (version x)\r\n" + "\r\n".join(lines) + "\r\n", [(10 ** 9, 1.0)], "", 2.0, None)

    for version, h in (("2.0", hashlib.sha256), ("1.2", hashlib.sha1)):
        want = kernel_checks.expected_kernel_events(version, kernel, line, initrd)
        zero = bytes(h().digest_size)
        pcr8 = h(zero + h(line.encode()).digest()).hexdigest()
        pcr9 = h(h(zero + h(kernel).digest()).digest() + h(initrd).digest()).hexdigest()
        good = kernel_checks.kernel_measured(text(version, want, {8: pcr8, 9: pcr9}), 0, version, want)
        s.check(f"offline {version}: events and PCRs as computed pass ({good.message})", good.status == "passed")
        bad_pcr = kernel_checks.kernel_measured(text(version, want, {8: pcr8, 9: "00" * len(zero)}), 0, version, want)
        s.check(f"offline {version}: a PCR 9 the TPM did not reach fails ({bad_pcr.message})",
                bad_pcr.status == "failed" and "PCR 9" in bad_pcr.message)
        other = [(p, h(b"other").hexdigest() if p == 9 else d, t) for p, d, t in want]
        bad_event = kernel_checks.kernel_measured(text(version, other, {8: pcr8, 9: pcr9}), 0, version, want)
        s.check(f"offline {version}: an event with another digest fails", bad_event.status == "failed")
        missing = kernel_checks.kernel_measured(text(version, want[:2], {8: pcr8, 9: pcr9}), 0, version, want)
        s.check(f"offline {version}: a missing initrd event fails", missing.status == "failed")
        renamed = [(p, d, t + "x") for p, d, t in want]
        v = kernel_checks.kernel_measured(text(version, renamed, {8: pcr8, 9: pcr9}), 0, version, want)
        s.check(f"offline {version}: an event with another text fails", v.status == "failed")
        moved = [(8 if p == 9 else 9, d, t) for p, d, t in want]
        v = kernel_checks.kernel_measured(text(version, moved, {8: pcr8, 9: pcr9}), 0, version, want)
        s.check(f"offline {version}: events on the wrong PCR fail", v.status == "failed")
        typed = [(p, d, t, "EV_ACTION" if version == "2.0" else 5) for p, d, t in want]
        v = kernel_checks.kernel_measured(text(version, typed, {8: pcr8, 9: pcr9}), 0, version, want)
        s.check(f"offline {version}: events of another type fail ({v.message[:60]})", v.status == "failed")

    # -bios none: two boots split at the kernel's banner; PCR 0 = CRTM "minivmm 9.9" + separator.
    pcr0 = hashlib.sha256(bytes(32) + hashlib.sha256("minivmm 9.9\0".encode("utf-16-le")).digest()).digest()
    pcr0 = hashlib.sha256(pcr0 + hashlib.sha256(bytes(4)).digest()).hexdigest()
    for value, seabios, want in ((pcr0, False, "passed"), ("11" * 32, False, "failed"), (pcr0, True, "failed")):
        boot = "[    0.000000] Linux version 6.1\r\nNIGHTLY: init-start uptime=1\r\nNIGHTLY: pcrread 0 " + value + "\r\n"
        run = vmm.Run([], 0, ("SeaBIOS (version x)\r\n" if seabios else "") + boot * 2, [(10 ** 9, 1.0)], "", 2.0, None)
        verdicts = [kernel_checks.firmware_measured(run, i, "2.0", "9.9") for i in (0, 1)]
        s.check(f"offline -bios none: PCR 0 {value[:8]}, SeaBIOS {'ran' if seabios else 'absent'}: both boots {want} "
                f"({verdicts[1].message[:50]})", all(v.status == want for v in verdicts))


def check_ek_certificates(s, name, r, directory):
    """The EK certificates the guest read (NIGHTLY: ekcert-rsa/-ecc HEX) verify against STATE/ek-ca.pem."""
    s.check(f"{name}: minivmm made the TPM's 2 EK certificates at its first start",
            "TPM EK certificates: 2 made" in r.stderr, r.stderr[-2000:])
    bounds = checks.segments(r.text)
    lines = checks.nightly_lines(r, *bounds[0]) if bounds else {}
    for kind in ("rsa", "ecc"):
        text = lines.get(f"ekcert-{kind}", ("none",))[0]
        der = os.path.join(os.path.dirname(directory), f"{name}-guest-ek-{kind}.der")
        ok = re.fullmatch("(?:[0-9a-f]{2})+", text) is not None
        if ok:
            with open(der, "wb") as f:
                f.write(bytes.fromhex(text))
            pem = der[:-4] + ".pem"
            ok = subprocess.run(["openssl", "x509", "-inform", "DER", "-in", der, "-out", pem]).returncode == 0
            verify = subprocess.run(["openssl", "verify", "-CAfile", os.path.join(directory, "ek-ca.pem"), pem],
                                    capture_output=True, text=True) if ok else None
            ok = verify is not None and verify.returncode == 0
            text = verify.stdout + verify.stderr if verify else text
        s.check(f"{name}: the guest's tpm2_nvread of the {kind.upper()} EK certificate verifies with openssl verify "
                f"-CAfile ek-ca.pem", ok, text[-500:])


def use_own_local_ca(tmp):
    """swtpm_setup's configuration and local CA under $XDG_CONFIG_HOME (swtpm_setup(8)), writable here
    (the nested VM sees the host's /var/lib read-only); returns the CA's directory."""
    os.environ["XDG_CONFIG_HOME"] = os.path.join(tmp, "xdg")
    os.makedirs(os.environ["XDG_CONFIG_HOME"], exist_ok=True)
    subprocess.run(["swtpm_setup", "--create-config-files", "root,skip-if-exist"], check=True, capture_output=True)
    return os.path.join(os.environ["XDG_CONFIG_HOME"], "var/lib/swtpm-localca")


def ek_certificate_checks(s, r, directory):
    """-tpm-swtpm: the EK certificate the guest read (NIGHTLY: ek-cert HEX) verifies against the
    local CA (root and issuer certificates), and minivmm left no swtpm running."""
    ca = os.path.join(os.environ["XDG_CONFIG_HOME"], "var/lib/swtpm-localca")
    bounds = checks.segments(r.text)
    lines = checks.nightly_lines(r, *bounds[0]) if bounds else {}
    hexcert = lines.get("ek-cert", ("none",))[0]
    der = os.path.join(os.path.dirname(directory), "ek.der")
    ok = re.fullmatch(r"(?:[0-9a-f]{2})+", hexcert) is not None
    if ok:
        with open(der, "wb") as f:
            f.write(bytes.fromhex(hexcert))
    v = subprocess.run(["openssl", "verify", "-CAfile", os.path.join(ca, "swtpm-localca-rootca-cert.pem"),
                        "-untrusted", os.path.join(ca, "issuercert.pem"), der], capture_output=True, text=True) \
        if ok else None
    s.check("tpm2 (-tpm-swtpm): tpm2_getekcertificate in the guest returned a certificate that openssl verifies "
            "against swtpm's local CA", v is not None and v.returncode == 0,
            f"ek-cert {hexcert[:80]}...; {v.stdout + v.stderr if v else ''}")
    leftover = [p for p in os.listdir("/proc") if p.isdigit() and directory.encode() in
                _cmdline(p) and os.path.basename(_cmdline(p).split(b"\0")[0]) == b"swtpm"]
    s.check("tpm2 (-tpm-swtpm): no swtpm left after minivmm exited", not leftover, leftover)


def _cmdline(pid):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read()
    except OSError:
        return b""


def main():
    minivmm, image = sys.argv[1:3]
    s = suite.Suite()
    offline(s)
    suite.require_kvm_and_swtpm()
    if not os.path.isfile(image):
        s.check(f"the guest image {image} exists (scripts/build-guest-image; scripts/test builds it)", False)
        return s.finish()
    files = kernel_checks.BootFiles(image, s.tmp.name)
    cmdline = files.cmdline
    release = kernel_checks.minivmm_version(minivmm)
    cache = os.path.join(s.tmp.name, "kernel-cache")
    use_own_local_ca(s.tmp.name)
    for name, (version, backend, extra) in CASES.items():
        extra = [x.format(cache=cache) for x in extra] + (["-d", "info"] if not version and extra else [])
        if name == "nofw-elf":
            boot = list(files.args)
            boot[boot.index("-kernel") + 1] = vmlinux(files.kernel, os.path.join(s.tmp.name, "vmlinux"))
        else:
            boot = files.args
        directory = os.path.join(s.tmp.name, name)
        swtpm = vm.swtpm(directory, version) if backend == "swtpm" else None
        tpm = (["-tpm-sock", swtpm.sock] if swtpm else ["-tpm-swtpm", directory] if backend == "managed" else
               ["-tpm-state", directory, "-tpm-version", version] if version else [])
        cmd = vm.minivmm_cmd(minivmm, image, tpm + boot + ["-d", "info"] + list(extra)) if version else \
            [minivmm, "-bios", vm.BIOS] + boot + list(extra)
        try:
            r = vmm.run(cmd, TIMEOUT)
        finally:
            if swtpm:
                swtpm.stop()
        with open(os.path.join(s.tmp.name, f"{name}.com1"), "w", encoding="latin-1") as f:
            f.write(r.text)
        if backend == "managed":
            ek_certificate_checks(s, r, directory)
        if name in ENTRY:
            s.check(f"{name}: minivmm says '...{ENTRY[name]}...'", ENTRY[name] in r.stderr, r.stderr[-2000:])
            # minivmm's SMBIOS (firmware/smbios.hpp), as Linux's dmi_scan.c reports it, at every boot.
            dmi = re.findall(r"DMI: ([^\r\n]*)", r.text)
            s.check(f"{name}: Linux found minivmm's SMBIOS at every boot ({dmi})",
                    dmi and all(d.startswith(f"minivmm minivmm, BIOS {release}") for d in dmi) and
                    len(dmi) == (2 if version else 1))
        if name == "nofw-tpm2":
            stored = sorted(os.listdir(cache)) if os.path.isdir(cache) else []
            digests = {path: hashlib.sha256(open(path, "rb").read()).hexdigest() for path in (files.kernel, files.initrd)}
            records = {path: f"{os.stat(path).st_dev}-{os.stat(path).st_ino}.digests" for path in digests}
            s.check(f"{name}: -kernel-cache holds <SHA-256 of the bzImage>.vmlinux and the two files' digest records "
                    f"({stored})", stored == sorted([digests[files.kernel] + ".vmlinux"] + list(records.values())))
            for path, record in records.items():
                text = open(os.path.join(cache, record)).read() if record in stored else ""
                s.check(f"{name}: {record} holds the SHA-256 of {os.path.basename(path)} computed here",
                        f"\nsha256 {digests[path]}\n" in text, text)
        if name == "nofw-warm":
            check_ek_certificates(s, name, r, directory)
            for what in ("kernel", "initrd"):
                s.check(f"{name}: the {what}'s digests came from its -kernel-cache record",
                        re.search(f"-kernel-cache: the {what}'s [1-4] digest\\(s\\) from ", r.stderr), r.stderr[-2000:])
        if not version:
            lines = checks.nightly_lines(r, 0, len(r.text))
            s.check(f"{name}: Linux ran /init ({r.describe()})", "init-start" in lines, r.text[-3000:])
            s.check(f"{name}: the kernel got the command line", f"Command line: {cmdline}" in r.text)
            s.check(f"{name}: no TPM for the guest ({lines.get('tpm-version', ('none',))[0]!r})",
                    lines.get("tpm-version", ("none",))[0] in ("none", ""))
            s.check(f"{name}: nothing measured", "measurement" not in r.stderr, r.stderr[-2000:])
            s.check(f"{name}: /init powered off, exit 0 ({r.describe()})",
                    lines.get("action", ("",))[0] == "poweroff" and r.returncode == 0 and not r.stopped)
            continue
        expected = files.expected(version)
        first = None
        for index in range(2):
            v = checks.linux(r, index, version)
            s.check(f"{name} boot {index + 1}: linux ({v.message})", v.status == "passed", r.text[-3000:])
            for check, verdict in checks.tpm_checks(r, index, version, first).items():
                s.check(f"{name} boot {index + 1}: {check} ({verdict.message})", verdict.status == "passed")
            v = kernel_checks.kernel_measured(r, index, version, expected)
            s.check(f"{name} boot {index + 1}: kernel measured ({v.message})", v.status == "passed")
            if name.startswith("nofw"):
                v = kernel_checks.firmware_measured(r, index, version, release)
                s.check(f"{name} boot {index + 1}: firmware measured ({v.message})", v.status == "passed")
            bounds = checks.segments(r.text)
            if index == 0 and bounds:
                first = checks.pcr_values(checks.nightly_lines(r, *bounds[0]))
        s.check(f"{name}: minivmm measured at both power-ons",
                r.stderr.count("-kernel: 3 measurement(s) into PCRs 8 and 9, 3 logged") == 2, r.stderr[-2000:])
        s.check(f"{name}: powered off after two boots (exit 0)", r.returncode == 0 and not r.stopped, r.describe())
    return s.finish()


if __name__ == "__main__":
    sys.exit(main())
