"""The command lines of the nightly boot tests' VMMs (running one: tests.harness.vmm), and their swtpm."""
from tests.harness.swtpm import Swtpm

BIOS = "/usr/share/seabios/bios-256k.bin"
KVM_FAILED = 5  # minivmm: KVM could not run the guest (emulation failure, failed entry)


def minivmm_cmd(minivmm, image, tpm_args, debugcon=None):
    """minivmm on a throw-away copy of the image's writes (-snapshot), COM1 on stdout."""
    cmd = [minivmm, "-bios", BIOS, "-snapshot"] + list(tpm_args)
    if debugcon:
        cmd += ["-debugcon", f"file:{debugcon}"]
    return cmd + [image]


def qemu_cmd(qemu, image, sock, accel):
    """The reference: QEMU pc with a tpm-tis backed by the swtpm on `sock`, virtio disk (-snapshot),
    COM1 on stdout, guest reboots kept (not -no-reboot), powering off ends QEMU."""
    return [qemu, "-accel", accel, "-M", "pc", "-m", "512", "-nographic", "-nodefaults", "-serial", "stdio",
            "-monitor", "none", "-snapshot", "-chardev", f"socket,id=chrtpm,path={sock}",
            "-tpmdev", "emulator,id=tpm0,chardev=chrtpm", "-device", "tpm-tis,tpmdev=tpm0",
            "-drive", f"if=virtio,format=raw,file={image}"]


def swtpm(directory, version):
    """The nightly runs' swtpm on DIR/swtpm-sock (TPM 2.0, else 1.2), its log in DIR/swtpm.log, in a
    process group of its own; stop() ends it."""
    return Swtpm(directory, version, log_option=True, new_session=True)
