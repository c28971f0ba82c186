/* Access to any 32-bit physical address (no paging) through realmode.S pm_op: each call is
 * one switch to 32-bit protected mode and back. Use the 8/16/32-bit functions for MMIO
 * registers (exactly one access of that width); phys_read/phys_write copy bytes and are
 * meant for RAM (ACPI tables). A low-memory C pointer p is the physical address
 * phys_addr(p). A20 must be enabled first (phys_enable_a20). */
#ifndef MVG_PHYS_H
#define MVG_PHYS_H

#include "guest.h"

static inline uint32_t phys_addr(const void *p) { return (uint32_t)(uintptr_t)p; }

bool phys_enable_a20(void);       /* INT 15h AX=2401h, else port 0x92; true if verified on */

uint8_t phys_read8(uint32_t addr);
uint16_t phys_read16(uint32_t addr);
uint32_t phys_read32(uint32_t addr);
void phys_write8(uint32_t addr, uint8_t v);
void phys_write16(uint32_t addr, uint16_t v);
void phys_write32(uint32_t addr, uint32_t v);

/* In 32-bit protected mode: lidt from idt_desc (u16 limit, u32 base), then ud2. With an
 * unusable IDT that is a triple fault; should it continue, the real-mode IDT is restored. */
void phys_ud2_with_idt(const void *idt_desc);

void phys_read(void *dst, uint32_t src, uint32_t len);      /* dst is a low-memory buffer */
void phys_write(uint32_t dst, const void *src, uint32_t len);

/* 8-bit sum of [addr, addr+len) (ACPI checksum: 0 means valid). */
uint8_t phys_sum8(uint32_t addr, uint32_t len);
/* Offset of the first occurrence of pat (1..16 bytes) in [addr+from, addr+len) at or after
 * `from`, or -1. */
int32_t phys_find(uint32_t addr, uint32_t len, uint32_t from, const void *pat, uint32_t patlen);

#endif
