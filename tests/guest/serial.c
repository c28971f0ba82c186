/* COM1 polling driver and printf subset. Every wait is bounded so a missing or stuck UART
 * cannot hang the program. */
#include "serial.h"

enum {
    COM1 = 0x3F8,
    UART_LCR_DLAB = 0x80,
    UART_LCR_8N1 = 0x03,
    UART_LSR_THRE = 0x20,
    UART_LSR_TEMT = 0x40,
    UART_POLL_LIMIT = 100000,
};

void serial_init(void)
{
    outb(COM1 + 1, 0x00);                /* IER: no interrupts */
    outb(COM1 + 3, UART_LCR_DLAB);
    outb(COM1 + 0, 0x01);                /* divisor 1 = 115200 baud */
    outb(COM1 + 1, 0x00);
    outb(COM1 + 3, UART_LCR_8N1);
    outb(COM1 + 2, 0x07);                /* FCR: enable and clear FIFOs */
    outb(COM1 + 4, 0x03);                /* MCR: DTR, RTS; OUT2 off (no IRQ) */
}

static void wait_lsr(uint8_t bit)
{
    for (unsigned i = 0; i < UART_POLL_LIMIT; i++)
        if (inb(COM1 + 5) & bit)
            return;
}

void serial_putc(char c)
{
    wait_lsr(UART_LSR_THRE);
    outb(COM1, (uint8_t)c);
}

void serial_write(const char *s, size_t n)
{
    while (n--)
        serial_putc(*s++);
}

void serial_flush(void) { wait_lsr(UART_LSR_TEMT); }

static void put_uint(uint32_t v, unsigned base, unsigned width, char pad)
{
    char buf[12];
    unsigned n = 0;
    do {
        unsigned d = v % base;
        buf[n++] = (char)(d < 10 ? '0' + d : 'A' + d - 10);
        v /= base;
    } while (v && n < sizeof(buf));
    while (width > n && width-- > 0)
        serial_putc(pad);
    while (n)
        serial_putc(buf[--n]);
}

void vprint(const char *fmt, va_list ap)
{
    for (; *fmt; fmt++) {
        if (*fmt != '%') {
            if (*fmt == '\n')
                serial_putc('\r');
            serial_putc(*fmt);
            continue;
        }
        char pad = ' ';
        unsigned width = 0;
        fmt++;
        if (*fmt == '0') {
            pad = '0';
            fmt++;
        }
        while (*fmt >= '0' && *fmt <= '9')
            width = width * 10 + (unsigned)(*fmt++ - '0');
        switch (*fmt) {
        case 's': {
            const char *s = va_arg(ap, const char *);
            serial_write(s ? s : "(null)", s ? strlen(s) : 6);
            break;
        }
        case 'c':
            serial_putc((char)va_arg(ap, int));
            break;
        case 'd': {
            int32_t v = va_arg(ap, int32_t);
            if (v < 0) {
                serial_putc('-');
                put_uint(0u - (uint32_t)v, 10, width, pad);
            } else {
                put_uint((uint32_t)v, 10, width, pad);
            }
            break;
        }
        case 'u':
            put_uint(va_arg(ap, uint32_t), 10, width, pad);
            break;
        case 'x':
            put_uint(va_arg(ap, uint32_t), 16, width, pad);
            break;
        case '%':
            serial_putc('%');
            break;
        case '\0':
            return;
        default:
            serial_putc('?');
            break;
        }
    }
}

void print(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vprint(fmt, ap);
    va_end(ap);
}
