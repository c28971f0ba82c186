// Register layout and bit definitions of the TPM TIS / FIFO interface (TCG PC Client Platform TPM
// Profile (PTP) Specification, FIFO interface register space and register definitions; TCG PC
// Client TIS 1.3 for TPM 1.2). Section numbers differ between PTP revisions, so registers are
// cited by name. Values are the ones QEMU's tpm-tis device exposes, so firmware and kernels see
// the same device as on QEMU.
#pragma once

#include <cstddef>
#include <cstdint>

namespace minivmm::tis {

// PTP "Locality": five localities, each a 4 KiB page; the locality is address bits 12..14.
inline constexpr unsigned kNumLocalities = 5;
inline constexpr unsigned kLocalityShift = 12;
inline constexpr uint8_t kNoLocality = 0xFF;
// One response/command buffer shared by all localities (QEMU TPM_TIS_BUFFER_MAX).
inline constexpr size_t kBufferMax = 4096;
// FIFO reads with no response byte pending return this (QEMU TPM_TIS_NO_DATA_BYTE).
inline constexpr uint8_t kNoDataByte = 0xFF;
// INT_VECTOR reads the ISA IRQ the device would use (QEMU's tpm-tis-isa default).
inline constexpr uint8_t kDefaultIrqVector = 5;

// Register offsets inside a locality page (PTP "Allocation of Register Space for FIFO TPM
// Access"). Registers are decoded on 4-byte words (offset & 0xFFC).
inline constexpr uint32_t kRegAccess = 0x00;
inline constexpr uint32_t kRegIntEnable = 0x08;
inline constexpr uint32_t kRegIntVector = 0x0C;
inline constexpr uint32_t kRegIntStatus = 0x10;
inline constexpr uint32_t kRegIntfCapability = 0x14;
inline constexpr uint32_t kRegSts = 0x18;
inline constexpr uint32_t kRegDataFifo = 0x24;
inline constexpr uint32_t kRegInterfaceId = 0x30;
inline constexpr uint32_t kRegXDataFifo = 0x80;     // PTP: XDATA_FIFO 0x80..0xBF
inline constexpr uint32_t kRegXDataFifoEnd = 0xBC;  // last word of XDATA_FIFO
inline constexpr uint32_t kRegDidVid = 0xF00;
inline constexpr uint32_t kRegRid = 0xF04;

// TPM_ACCESS_x
inline constexpr uint8_t kAccessTpmEstablishment = 1 << 0;
inline constexpr uint8_t kAccessRequestUse = 1 << 1;
inline constexpr uint8_t kAccessPendingRequest = 1 << 2;
inline constexpr uint8_t kAccessSeize = 1 << 3;  // write-only, never read back
inline constexpr uint8_t kAccessBeenSeized = 1 << 4;
inline constexpr uint8_t kAccessActiveLocality = 1 << 5;
inline constexpr uint8_t kAccessRegValidSts = 1 << 7;

// TPM_STS_x
inline constexpr uint32_t kStsResponseRetry = 1u << 1;
inline constexpr uint32_t kStsSelftestDone = 1u << 2;
inline constexpr uint32_t kStsExpect = 1u << 3;
inline constexpr uint32_t kStsDataAvailable = 1u << 4;
inline constexpr uint32_t kStsTpmGo = 1u << 5;
inline constexpr uint32_t kStsCommandReady = 1u << 6;
inline constexpr uint32_t kStsValid = 1u << 7;
inline constexpr unsigned kStsBurstCountShift = 8;  // bits 8..23
inline constexpr uint32_t kStsCommandCancel = 1u << 24;         // TPM 2.0 only
inline constexpr uint32_t kStsResetEstablishment = 1u << 25;    // TPM 2.0 only
inline constexpr uint32_t kStsFamilyMask = 3u << 26;
inline constexpr uint32_t kStsFamily12 = 0u << 26;
inline constexpr uint32_t kStsFamily20 = 1u << 26;
// Bits that survive every STS update (QEMU's tpm_tis_sts_set).
inline constexpr uint32_t kStsSticky = kStsSelftestDone | kStsFamilyMask;

// TPM_INT_ENABLE_x / TPM_INT_STATUS_x
inline constexpr uint32_t kIntDataAvailable = 1u << 0;
inline constexpr uint32_t kIntStsValid = 1u << 1;
inline constexpr uint32_t kIntLocalityChanged = 1u << 2;
inline constexpr uint32_t kIntPolarityMask = 3u << 3;
inline constexpr uint32_t kIntPolarityLowLevel = 1u << 3;
inline constexpr uint32_t kIntCommandReady = 1u << 7;
inline constexpr uint32_t kIntGlobalEnable = 1u << 31;
inline constexpr uint32_t kIntSupported =
    kIntDataAvailable | kIntStsValid | kIntLocalityChanged | kIntCommandReady;  // 0x87
inline constexpr uint32_t kIntEnableWritable = kIntGlobalEnable | kIntPolarityMask | kIntSupported;

// TPM_INTF_CAPABILITY_x: supported interrupts 0x87, low-level interrupt,
// dynamic burst count, 64-byte transfers, interface version 1.3 (TPM 1.2) or 1.3-for-TPM-2.0.
inline constexpr uint32_t kIntfCapabilityTpm12 = 0x20000697;
inline constexpr uint32_t kIntfCapabilityTpm20 = 0x30000697;

// TPM_INTERFACE_ID_x (PTP only): FIFO interface, 5 localities, TIS supported. TPM 1.2
// (TIS 1.3) has no such register: all ones ("don't care").
inline constexpr uint32_t kInterfaceIdTpm20 = 0x00002100;
inline constexpr uint32_t kInterfaceIdTpm12 = 0xFFFFFFFF;
inline constexpr uint32_t kInterfaceIdIntSelLock = 1u << 19;

// TPM_DID_VID_x / TPM_RID_x: QEMU's IBM vendor id 0x1014, device id 1, revision 1.
inline constexpr uint32_t kDidVid = 0x00011014;
inline constexpr uint32_t kRid = 0x01;

// TPM 1.2 TPM_ORD_ContinueSelfTest: its success sets STS.selfTestDone (QEMU tpm_util_is_selftest).
inline constexpr uint32_t kTpm12OrdContinueSelfTest = 0x53;

// Per-locality TIS state machine (TIS 1.3 / PTP FIFO "State Transition Table").
enum class State : uint8_t { idle, ready, completion, execution, reception };

}  // namespace minivmm::tis
