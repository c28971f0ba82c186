# The guest's report of its TPM, as "NIGHTLY: ..." lines on the console (the protocol
# tests/nightly/checks.py reads), shared by the nightly image's /init (tests/linux/init, busybox) and
# the Debian system disk's report (tests/linux/system-report, dash). Sourced; POSIX sh.

say() { echo "NIGHTLY: $*"; }
note() { echo "init: $*"; }
# "NIGHTLY: check NAME PASS" when the command succeeds, else FAIL and its last lines.
check() {
  name=$1; shift
  if out=$("$@" 2>&1); then say "check $name PASS"; else say "check $name FAIL $(echo "$out" | tail -n 3 | tr '\n' ' ')"; fi
}

# The driver: probe line, bound driver, device nodes, interrupt; sets $tpm and $version.
report_driver() {
  # The TPM driver's probe line, e.g. "tpm_tis MSFT0101:00: 2.0 TPM (device-id 0x1, rev-id 1)".
  tis=$(dmesg | sed -n 's/^\[[^]]*\] *//; /^tpm_tis .*TPM (device-id/{p;q}')
  say "tpm_tis ${tis:-none}"
  # The driver bound to the TPM: tpm_tis, or tpm_crb (which prints no probe line) with -tpm-interface crb.
  driver=$(readlink /sys/class/tpm/tpm0/device/driver 2>/dev/null)
  driver=${driver##*/}
  say "tpm-driver ${driver:-none}"

  devtpm=""
  for node in /dev/tpm*; do
    [ -e "$node" ] || continue
    devtpm="${devtpm:+$devtpm; }$(ls -l "$node")"
  done
  say "devtpm ${devtpm:-none}"

  # The TPM's interrupt: its /proc/interrupts line ("13: N ... tpm0", or none when the driver polls)
  # and how often tpm_tis gave up on it ("TPM interrupt not working, polling instead": before Linux
  # 6.4 it always does, as it never tests the interrupt).
  irqline=$(grep -m1 'tpm0' /proc/interrupts | tr -s ' ' | sed 's/^ //')
  say "tpm-irq ${irqline:-none}"
  say "tpm-irq-fallback $(dmesg | grep -c 'interrupt not working, polling instead')"

  tpm=/sys/class/tpm/tpm0
  version=$(cat "$tpm/tpm_version_major" 2>/dev/null)
  say "tpm-version ${version:-none}"
}

# PCRs, the event log and tpm2-tools checks (TPM 2.0) or the caps and SHA-1 log (TPM 1.2).
report_tpm() {
  # PCRs 0-9 in lower-case hex (the firmware's 0-7; 8 and 9 hold a -kernel boot's command line, kernel
  # and initrd): TPM 2.0 has one file per PCR and bank, TPM 1.2 one "PCR-00: 0A 1B ..." list.
  if [ -d "$tpm/pcr-sha256" ]; then
    for n in 0 1 2 3 4 5 6 7 8 9; do
      say "pcr $n $(tr -d ' \n' <"$tpm/pcr-sha256/$n" | tr A-F a-f)"
    done
  else
    for pcrs in "$tpm/pcrs" "$tpm/device/pcrs"; do
      [ -f "$pcrs" ] || continue
      sed -n 's/^PCR-0\([0-9]\): */\1 /p' "$pcrs" | while read -r n hex; do
        say "pcr $n $(echo "$hex" | tr -d ' ' | tr A-F a-f)"
      done
      break
    done
  fi

  log=/sys/kernel/security/tpm0/binary_bios_measurements
  if [ -e "$log" ]; then
    say "eventlog-size $(wc -c <"$log")"
  else
    say "eventlog-size none"
  fi

  # "N hex" lines of the sha256 bank from tpm2_pcrread / the "pcrs:" part of tpm2_eventlog's output
  sha256_pcrs() { awk '/^ *sha256:/ {f = 1; next} /^ *[a-z0-9]+:$/ {f = 0} f && /: 0x/ {gsub(/[ :]/, ""); sub(/0x/, " "); print $0}' | tr A-F a-f; }
  if [ "$version" = 2 ] && [ -x /usr/bin/tpm2 ] && [ -c /dev/tpmrm0 ]; then
    export TPM2TOOLS_TCTI=device:/dev/tpmrm0 LD_LIBRARY_PATH=/lib/x86_64-linux-gnu:/usr/lib/x86_64-linux-gnu
    # Not --fulltest: SeaBIOS ran the full self-test at this boot (TPM2_SelfTest, fullTest=YES), and
    # repeated it takes libtpms 2-2.5 s in a loaded nested L1, past the 2 s Linux gives the command.
    check selftest tpm2_selftest
    say "getrandom $(tpm2_getrandom --hex 16 2>&1 | tr -d '\n') $(tpm2_getrandom --hex 16 2>&1 | tr -d '\n')"
    # The RSA EK certificate (TCG EK Credential Profile 2.0 §2.2.1.4: NV index 0x01c00002), as
    # tpm2_getekcertificate reads it, in hex, or "none": swtpm_setup --create-ek-cert writes it
    # (minivmm -tpm-swtpm); the host verifies it against swtpm's local CA.
    if tpm2_getekcertificate -o /tmp/ek.der >/dev/null 2>&1 && [ -s /tmp/ek.der ]; then
      say "ek-cert $(od -An -v -tx1 /tmp/ek.der | tr -d ' \n')"
    else
      say "ek-cert none"
    fi
    tpm2_pcrread sha256:0,1,2,3,4,5,6,7,8,9 2>&1 | sha256_pcrs | while read -r n hex; do say "pcrread $n $hex"; done
    tpm2_eventlog "$log" 2>/dev/null | sed -n '/^pcrs:/,$p' | sha256_pcrs | while read -r n hex; do
      [ "$n" -le 9 ] && say "replay $n $hex"
    done
    # The events on PCRs 8 and 9 (a -kernel boot's): "PCR TYPE SHA256-DIGEST TEXT" (tpm2_eventlog prints the
    # text two lines under "Event:", quoted, with a \0 at its end).
    tpm2_eventlog "$log" 2>/dev/null | awk '
      /^- EventNum:/ {pcr = ""; type = ""; d = ""; want = 0; ev = 0}
      /^  PCRIndex:/ {pcr = $2}
      /^  EventType:/ {type = $2}
      /AlgorithmId: sha256/ {want = 1; next}
      want && /Digest:/ {d = $2; gsub(/"/, "", d); want = 0}
      /^  Event:/ {ev = 1; next}
      ev && /^ +"/ && (pcr == 8 || pcr == 9) {s = $0; sub(/^ *"/, "", s); sub(/(\\0)?"$/, "", s); print pcr, type, d, s; ev = 0}' |
      while read -r line; do say "kernel-event $line"; done
    digest=$(echo minivmm-nightly | sha256sum | cut -d' ' -f1)
    check pcrextend tpm2_pcrextend "16:sha256=$digest"
    say "pcr16 $digest $(tpm2_pcrread sha256:16 2>&1 | sha256_pcrs | cut -d' ' -f2)"
    echo "minivmm signs this" >/tmp/msg
    check ecc-sign sh -c 'tpm2_createprimary -Q -C o -G ecc256:ecdsa-sha256 -c /tmp/p.ctx \
        -a "fixedtpm|fixedparent|sensitivedataorigin|userwithauth|sign" &&
      tpm2_sign -Q -c /tmp/p.ctx -g sha256 -o /tmp/sig /tmp/msg &&
      tpm2_verifysignature -Q -c /tmp/p.ctx -g sha256 -m /tmp/msg -s /tmp/sig'
    # The EK certificates in the TCG EK Credential Profile's NV indices (minivmm's in-process TPM makes
    # them: vmm/tpm/README.md "EK certificates"), DER in hex for the host to verify, or "none".
    for ek in rsa:0x01c00002 ecc:0x01c0000a; do
      cert=$(tpm2_nvread "${ek#*:}" 2>/dev/null | od -An -v -tx1 | tr -d ' \n')
      say "ekcert-${ek%%:*} ${cert:-none}"
    done
  elif [ "$version" = 1 ]; then
    # TPM 1.2: the capabilities sysfs file, and the SHA-1 event log in hex for the host to replay.
    for caps in "$tpm/caps" "$tpm/device/caps"; do
      [ -f "$caps" ] && say "caps $(tr '\n' ';' <"$caps")" && break
    done
    [ -e "$log" ] && say "eventlog-hex $(od -An -v -tx1 "$log" | tr -d ' \n')"
  fi
}

# The boot flag sector: the disk's last sector. read_flag/write_flag; boot_flag sets $flag_sector
# (empty without a disk) and $second_boot (yes when the first boot already ran).
read_flag() { dd if="$disk" bs=512 skip="$flag_sector" count=1 2>/dev/null | head -c 19; }
write_flag() {
  printf 'NIGHTLY-BOOT-FLAG=%s\n' "$1" | dd of="$disk" bs=512 seek="$flag_sector" count=1 conv=sync,notrunc 2>/dev/null &&
    sync && [ "$(read_flag)" = "NIGHTLY-BOOT-FLAG=$1" ]
}
boot_flag() {
  disk=/dev/vda
  flag_sector=""
  if [ -b "$disk" ] && [ -r /sys/block/vda/size ]; then
    flag_sector=$(($(cat /sys/block/vda/size) - 1))
  fi
  second_boot=no
  [ -n "$flag_sector" ] && [ "$(read_flag)" = "NIGHTLY-BOOT-FLAG=1" ] && second_boot=yes
}
