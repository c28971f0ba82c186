"""What the integration tests and the scripts share, one module per concept:

  swtpm         start an swtpm (control socket, optionally a data socket; TPM 1.2 or 2.0), wait for it
                to listen, stop it: the only place that builds an `swtpm socket` command line
  vmm           run a VMM and wait on its serial output (the one wait loop), stop a process group
  suite         the integration tests' checks, skips and exit status (Suite, SKIP, require_*)
  qemu          QEMU's environment for the tests
  kvm           how this host reaches a KVM that runs Linux: direct, nested or none
  nested_kvm    the nested KVM VM (scripts/kvm-vm, scripts/with-kvm)
  debs, initramfs, system_image   Debian packages, initramfs archives and the Debian system disk
                (scripts/build-guest-image, the nested VM's L1 image)
  bench         what the benchmark scripts share: an swtpm per run, serial lines stamped on arrival
"""
