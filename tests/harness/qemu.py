"""QEMU for the tests: its environment, and QEMU TCG booting a test disk until it exits, a deadline
passes or the guest's MVG lines say enough (the wait is tests.harness.vmm's)."""
import os
import subprocess

from tests.harness import vmm


def qemu_env():
    """QEMU's environment without MALLOC_PERTURB_ (meson sets it): QEMU 7.2 allocates the TPM PPI
    page (0xFED45000) with qemu_memalign and never clears it, and tpm_ppi_reset wipes all guest
    RAM at a reset when bit 0 of its byte 0x15A (MOVV, memory overwrite request) is set. With
    perturbed malloc memory that bit is set and the reset-mode reboot hangs (hw/tpm/tpm_ppi.c)."""
    env = dict(os.environ)
    env.pop("MALLOC_PERTURB_", None)
    return env


def mvg_lines(text):
    """The text after "MVG: " of every complete line of `text` that contains it (BIOS output may
    precede it on the same line)."""
    out = []
    for line in text[:text.rfind("\n") + 1].splitlines():
        pos = line.find("MVG: ")
        if pos >= 0:
            out.append(line[pos + 5:].strip())
    return out


class Run:
    """Output (raw: COM1 and QEMU's stderr, bytes) and outcome of one QEMU run."""

    def __init__(self, raw, exited, returncode, timed_out, elapsed):
        self.raw, self.exited, self.returncode, self.elapsed = raw, exited, returncode, elapsed
        self.timed_out = timed_out  # the deadline passed (not a stop_when stop)

    def mvg_lines(self):
        return mvg_lines(self.raw.decode("latin-1"))


def run_qemu(qemu, image, timeout, reboot=False, machine="pc", stop_when=None, extra_args=(), env=None):
    """QEMU TCG booting `image` from a virtio disk, COM1 on stdout, until it exits, `timeout` passes or
    stop_when(MVG lines) is true; `extra_args` go before the disk (test_guest_tpm_on_qemu: the TPM)."""
    cmd = [qemu, "-accel", "tcg", "-M", machine, "-m", "256", "-nographic", "-nodefaults",
           "-serial", "stdio", *extra_args, "-drive", f"if=virtio,format=raw,file={image}"]
    if not reboot:
        cmd.append("-no-reboot")

    def stop(text, _seconds):
        return "stop_when" if stop_when and stop_when(mvg_lines(text)) else None

    r = vmm.run(cmd, timeout, stop, env=env, stderr=subprocess.STDOUT)
    return Run(r.text.encode("latin-1"), r.stopped is None, r.returncode,
               (r.stopped or "").startswith("timeout"), r.seconds)
