"""What the integration tests and the scripts share, one module per concept:

  swtpm   start an swtpm (control socket, optionally a data socket; TPM 1.2 or 2.0), wait for it to
          listen, stop it: the only place that builds an `swtpm socket` command line
  vmm     run a process and wait on its output (the one serial wait loop), stop a process group
  suite   the integration tests' checks, skips and exit status (Suite, SKIP, require_*)
"""
