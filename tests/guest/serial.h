/* COM1 output by polling (PC16550D: THR/DLL at +0, IER/DLM +1, FCR +2, LCR +3, MCR +4, LSR +5). */
#ifndef MVG_SERIAL_H
#define MVG_SERIAL_H

#include "guest.h"

void serial_init(void);           /* 115200 8N1, FIFO on, no interrupts */
void serial_putc(char c);         /* waits (bounded) for LSR.THRE */
void serial_write(const char *s, size_t n);
void serial_flush(void);          /* waits (bounded) for LSR.TEMT: all bytes sent */

/* Formatted output to COM1: %s %c %d %u %x %%, optional '0' flag and width (%08x).
 * Integer arguments are 32-bit (int/uint32_t). */
void print(const char *fmt, ...);
void vprint(const char *fmt, va_list ap);

#endif
