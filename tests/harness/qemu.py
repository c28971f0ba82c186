"""QEMU for the tests: its environment."""
import os


def qemu_env():
    """QEMU's environment without MALLOC_PERTURB_ (meson sets it): QEMU 7.2 allocates the TPM PPI
    page (0xFED45000) with qemu_memalign and never clears it, and tpm_ppi_reset wipes all guest
    RAM at a reset when bit 0 of its byte 0x15A (MOVV, memory overwrite request) is set. With
    perturbed malloc memory that bit is set and the reset-mode reboot hangs (hw/tpm/tpm_ppi.c)."""
    env = dict(os.environ)
    env.pop("MALLOC_PERTURB_", None)
    return env
