// Register layout and bit definitions of the TPM Command Response Buffer (CRB) interface (TCG PC
// Client Platform TPM Profile (PTP) Specification for TPM 2.0, "CRB Interface": register space
// and register definitions), with the values QEMU's tpm-crb exposes (one locality, 64-byte
// transfers, IBM vendor id), so SeaBIOS and Linux see the device they know.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>

namespace minivmm::crb {

// The register page: locality 0's registers 0x00..0x7F (the rest of the page is reserved and
// reads 0). Unlike QEMU's tpm-crb (buffer at +0x80 of this page, so every buffer access is an
// MMIO exit), the command/response buffer is a separate page-aligned range of guest RAM, wherever
// CTRL_CMD_LADDR/HADDR and CTRL_RSP_ADDR point (PTP "CRB Interface": the control area gives the
// buffers' addresses and sizes); CMD and RSP addresses are the same buffer.
inline constexpr uint32_t kPageSize = 0x1000;
inline constexpr uint32_t kRegisterSpace = 0x80;
// The largest buffer minivmm offers (two pages, for TPMs with 8 KiB buffers, as post-quantum TPM
// profiles plan); the TPM's own buffer size, if smaller, is what CMD_SIZE/RSP_SIZE read.
inline constexpr uint32_t kMaxBufferSize = 0x2000;

// PTP "CRB Interface Locality Register Space" (locality 0 only: CapLocality = 0).
inline constexpr uint32_t kRegLocState = 0x00;
inline constexpr uint32_t kRegLocCtrl = 0x08;
inline constexpr uint32_t kRegLocSts = 0x0C;
inline constexpr uint32_t kRegIntfId = 0x30;
inline constexpr uint32_t kRegIntfId2 = 0x34;  // high half of TPM_CRB_INTF_ID: VID, DID
inline constexpr uint32_t kRegCtrlExt = 0x38;
// The control area proper (the address the TPM2 table's "control area" field gives).
inline constexpr uint32_t kRegCtrlReq = 0x40;
inline constexpr uint32_t kRegCtrlSts = 0x44;
inline constexpr uint32_t kRegCtrlCancel = 0x48;
inline constexpr uint32_t kRegCtrlStart = 0x4C;
inline constexpr uint32_t kRegIntEnable = 0x50;
inline constexpr uint32_t kRegIntSts = 0x54;
inline constexpr uint32_t kRegCmdSize = 0x58;
inline constexpr uint32_t kRegCmdLaddr = 0x5C;
inline constexpr uint32_t kRegCmdHaddr = 0x60;
inline constexpr uint32_t kRegRspSize = 0x64;
inline constexpr uint32_t kRegRspAddr = 0x68;  // 64-bit: low word here, high word at 0x6C
inline constexpr uint32_t kRegRspAddrHigh = 0x6C;
// The registers whose values change after the device is made (the locality's state, the control
// area's status, cancel and start); every other word of the page reads the same for the power-on.
inline constexpr std::array<uint32_t, 5> kChangingRegisters = {kRegLocState, kRegLocSts, kRegCtrlSts, kRegCtrlCancel,
                                                               kRegCtrlStart};
inline constexpr uint32_t kControlArea = kRegCtrlReq;

// TPM_LOC_STATE_x
inline constexpr uint32_t kLocStateEstablished = 1u << 0;
inline constexpr uint32_t kLocStateLocAssigned = 1u << 1;
inline constexpr uint32_t kLocStateRegValidSts = 1u << 7;  // activeLocality (bits 2..4) stays 0
// TPM_LOC_CTRL_x: one request per write
inline constexpr uint32_t kLocCtrlRequestAccess = 1u << 0;
inline constexpr uint32_t kLocCtrlRelinquish = 1u << 1;
inline constexpr uint32_t kLocCtrlSeize = 1u << 2;
inline constexpr uint32_t kLocCtrlResetEstablishment = 1u << 3;
// TPM_LOC_STS_x
inline constexpr uint32_t kLocStsGranted = 1u << 0;
inline constexpr uint32_t kLocStsBeenSeized = 1u << 1;
// TPM_CRB_CTRL_REQ_x
inline constexpr uint32_t kCtrlReqCmdReady = 1u << 0;
inline constexpr uint32_t kCtrlReqGoIdle = 1u << 1;
// TPM_CRB_CTRL_STS_x
inline constexpr uint32_t kCtrlStsError = 1u << 0;  // tpmSts: fatal error
inline constexpr uint32_t kCtrlStsIdle = 1u << 1;
// TPM_CRB_CTRL_CANCEL_x / TPM_CRB_CTRL_START_x
inline constexpr uint32_t kCancelInvoke = 1u << 0;
inline constexpr uint32_t kStartInvoke = 1u << 0;

// TPM_CRB_INTF_ID_x, low word: InterfaceType 1 (CRB active), InterfaceVersion 1 (CRB),
// CapLocality 0 (locality 0 only), CapCRBIdleBypass 0, CapDataXferSizeSupport 3 (64 bytes),
// CapFIFO 0, CapCRB 1, InterfaceSelector 1 (CRB), RID 0. High word: VID 0x1014 (IBM), DID 0.
inline constexpr uint32_t kIntfId = 1u << 0 | 1u << 4 | 3u << 11 | 1u << 14 | 1u << 17;
inline constexpr uint32_t kIntfId2 = 0x1014;

// A TPM command or response starts with a 10-byte header (tag, paramSize, code).
inline constexpr size_t kHeaderSize = 10;

}  // namespace minivmm::crb
