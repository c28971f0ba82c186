#!/usr/bin/env python3
"""A misbehaving swtpm for tests/integration/test_swtpm_faults.py.

Listens on a unix socket like `swtpm socket --ctrl type=unixio,path=P` and serves one control
client in one of these modes:

  garbage       every control message is answered with 32 bytes of junk
  close         the connection is closed as soon as it is accepted
  hang          requests are read and never answered
  not-tpm       correct control protocol, but the data channel answers the version probe
                with a well-framed response carrying a tag no TPM uses
  data-garbage  correct control protocol and probe; every later TPM command is answered
                with a header whose size field is 0xffffffff
  data-hang     correct control protocol and probe; later TPM commands are never answered

Prints "ready" on stdout once listening. Exits when the client goes away, on SIGTERM, or after
--max-seconds.
"""
import argparse
import os
import select
import socket
import struct
import sys
import time

# Control commands with a 4-byte argument (tpm_ioctl.h): INIT, SET_LOCALITY,
# RESET_TPMESTABLISHED, SET_BUFFERSIZE.
ARG_COMMANDS = {0x02, 0x05, 0x0B, 0x11}
TPM2_FAILURE = bytes.fromhex("80010000000a00000101")


def ctrl_reply(cmd):
    if cmd == 0x01:  # GET_CAPABILITY: everything swtpm 0.7 offers for TPM 2.0
        return struct.pack(">II", 0, 0xFFFF)
    if cmd == 0x04:  # GET_TPMESTABLISHED
        return struct.pack(">IB3x", 0, 0)
    if cmd == 0x11:  # SET_BUFFERSIZE
        return struct.pack(">IIII", 0, 4096, 128, 4096)
    return struct.pack(">I", 0)


def read_exact(sock, n):
    data = b""
    while len(data) < n:
        try:
            chunk = sock.recv(n - len(data))
        except OSError:
            return None
        if not chunk:
            return None
        data += chunk
    return data


class Session:
    def __init__(self, mode, ctrl):
        self.mode = mode
        self.ctrl = ctrl
        self.data = None
        self.data_commands = 0

    def on_ctrl(self):
        """Returns False when the client went away."""
        try:
            msg, fds, _flags, _addr = socket.recv_fds(self.ctrl, 4, 1)
        except OSError:
            return False
        if len(msg) < 4:
            more = read_exact(self.ctrl, 4 - len(msg)) if msg else None
            if more is None:
                return False
            msg += more
        cmd = struct.unpack(">I", msg)[0]
        if cmd in ARG_COMMANDS and read_exact(self.ctrl, 4) is None:
            return False
        for fd in fds:
            if self.data is None and self.mode not in ("garbage", "hang"):
                self.data = socket.socket(fileno=fd)
            else:
                os.close(fd)
        if self.mode == "hang":
            return True
        reply = os.urandom(32) if self.mode == "garbage" else ctrl_reply(cmd)
        if self.mode == "garbage" and reply[:4] == b"\0\0\0\0":
            reply = b"\xde\xad" + reply[2:]
        try:
            self.ctrl.sendall(reply)
        except OSError:
            return False
        if cmd == 0x03:  # SHUTDOWN: swtpm exits
            return False
        return True

    def on_data(self):
        header = read_exact(self.data, 10)
        if header is None:
            self.data.close()
            self.data = None
            return
        size = struct.unpack(">I", header[2:6])[0]
        if 10 < size <= 4096:
            read_exact(self.data, size - 10)
        self.data_commands += 1
        if self.mode == "not-tpm":
            self.data.sendall(b"HT" + struct.pack(">I", 12) + b"TP/1.1")  # 12 bytes, as declared
        elif self.data_commands == 1:  # the version probe
            self.data.sendall(TPM2_FAILURE)
        elif self.mode == "data-garbage":
            self.data.sendall(b"\x80\x01\xff\xff\xff\xff\x00\x00\x00\x00")
        elif self.mode == "data-hang":
            pass
        else:
            self.data.sendall(bytes.fromhex("80010000000a00000000"))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--socket", required=True)
    ap.add_argument("--mode", required=True,
                    choices=["garbage", "close", "hang", "not-tpm", "data-garbage", "data-hang"])
    ap.add_argument("--max-seconds", type=float, default=60)
    args = ap.parse_args()

    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(args.socket)
    listener.listen(4)
    print("ready", flush=True)
    end = time.monotonic() + args.max_seconds

    ctrl, _ = listener.accept()
    if args.mode == "close":
        ctrl.close()
        return 0
    session = Session(args.mode, ctrl)
    while time.monotonic() < end:
        watched = [ctrl] + ([session.data] if session.data else [])
        ready, _, _ = select.select(watched, [], [], 0.1)
        if ctrl in ready and not session.on_ctrl():
            break
        if session.data is not None and session.data in ready:
            session.on_data()
    return 0


if __name__ == "__main__":
    sys.exit(main())
