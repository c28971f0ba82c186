#!/usr/bin/env python3
"""The TPM TIS interrupt with a Linux that uses it: Debian 12's 6.12 kernel (Linux 6.4 and later
test the TIS interrupt and then use it; 6.1 never tests it and polls) on the nightly guest image
built with scripts/build-guest-image --kernel debian-6.12, under minivmm:

  tpm2-irq    swtpm TPM 2.0, TIS, -tpm-irq on (the default): both boots pass the nightly `linux`
              and TPM 2.0 checks (tpm2-tools, event-log replay, ECC signature), /proc/interrupts
              has a tpm0 line on IRQ 13 with a non-zero count, and tpm_tis never fell back to
              polling ("TPM interrupt not working, polling instead")
  tpm12-irq   in-process TPM 1.2 with the interrupt: the same for TPM 1.2 (caps, SHA-1 log replay),
              on a slow TPM: minivmm-testhooks with MINIVMM_TEST_TPM_DELAY_MS=30 makes every command
              take 30 ms more, longer than the 1 ms Linux waits after tpmGo for the interrupt of its
              test command (tpm_tis_core.c tpm_tis_send) and than minivmm's usual 10 ms hold of the
              vCPU on tpmGo (TpmSlot::Attachment::kStartStall); the test command is held until it
              is done (kTrialStall, vmm/tpm_slot.hpp), so the interrupt is still used. With the
              10 ms hold only, both boots fell back to polling (4 failed; the CI run of 5963567
              failed tpm2-irq boot 1 the same way with swtpm under load)
  tpm2-polled swtpm TPM 2.0, -tpm-irq off: the same checks pass, and no tpm0 interrupt exists

usage: test_tis_irq_linux.py MINIVMM MINIVMM_TESTHOOKS IMAGE [CASE...]   (default: every case)"""
import os
import re
import sys

from tests.nightly import checks
from tests.nightly import vm
from tests.harness import suite
from tests.harness import vmm

TIMEOUT = 600  # two boots of a 6.12 kernel on the real-clock nested KVM
SLOW_TPM = {"MINIVMM_TEST_TPM_DELAY_MS": "30"}
CASES = {  # name: (TPM version, backend, minivmm TPM options, interface, interrupt expected, test hooks)
    "tpm2-irq": ("2.0", "swtpm", [], "tis", True, None),
    "tpm12-irq": ("1.2", "in-process", [], "tis", True, SLOW_TPM),
    "tpm2-polled": ("2.0", "swtpm", ["-tpm-irq", "off"], "tis", False, None),
}


def irq_count(line):
    """The total of the per-CPU counts of a /proc/interrupts line "13: 5 0 IO-APIC 13-fasteoi tpm0"."""
    m = re.match(r"(\d+):((?: \d+)+) ", line + " ")
    return (int(m.group(1)), sum(int(n) for n in m.group(2).split())) if m else (None, 0)


def main():
    minivmm, testhooks, image = sys.argv[1:4]
    only = sys.argv[4:] or list(CASES)
    if not set(only) <= set(CASES):
        sys.exit(f"unknown case(s) {sorted(set(only) - set(CASES))}; the cases: {', '.join(CASES)}")
    suite.require_kvm_and_swtpm()
    s = suite.Suite()
    if not os.path.isfile(image):
        s.check(f"the 6.12 guest image {image} exists (scripts/build-guest-image --kernel debian-6.12; "
                "scripts/test builds it)", False)
        return s.finish()
    for name in only:
        version, backend, options, interface, irq, hooks = CASES[name]
        directory = os.path.join(s.tmp.name, name)
        swtpm = vm.swtpm(directory, version) if backend == "swtpm" else None
        tpm = ["-tpm-sock", swtpm.sock] if swtpm else ["-tpm-state", directory, "-tpm-version", version]
        try:
            binary, env = (testhooks, dict(os.environ, **hooks)) if hooks else (minivmm, None)
            r = vmm.run(vm.minivmm_cmd(binary, image, tpm + options), TIMEOUT, env=env)
        finally:
            if swtpm:
                swtpm.stop()
        with open(os.path.join(s.tmp.name, f"{name}.com1"), "w", encoding="latin-1") as f:
            f.write(r.text)
        first = None
        for index in range(2):
            v = checks.linux(r, index, version, interface)
            s.check(f"{name} boot {index + 1}: linux ({v.message})", v.status == "passed", r.text[-3000:])
            for check, verdict in checks.tpm_checks(r, index, version, first).items():
                s.check(f"{name} boot {index + 1}: {check} ({verdict.message})", verdict.status == "passed")
            bounds = checks.segments(r.text)
            if index >= len(bounds):
                continue
            lines = checks.nightly_lines(r, *bounds[index])
            if index == 0:
                first = checks.pcr_values(lines)
            line = lines.get("tpm-irq", ("none", None))[0]
            fallback = lines.get("tpm-irq-fallback", ("?", None))[0]
            number, count = irq_count(line)
            if irq:
                s.check(f"{name} boot {index + 1}: /proc/interrupts counts tpm0 on IRQ 13 ({line!r})",
                        number == 13 and count > 0 and line.endswith("tpm0"))
            else:
                s.check(f"{name} boot {index + 1}: no TPM interrupt ({line!r})", line == "none")
            s.check(f"{name} boot {index + 1}: the driver never fell back to polling (fallback lines: {fallback})",
                    fallback == "0")
        s.check(f"{name}: powered off after two boots (exit 0)", r.returncode == 0 and not r.stopped, r.describe())
    return s.finish()


if __name__ == "__main__":
    sys.exit(main())
