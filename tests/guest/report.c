/* MVG result lines and pass/fail accounting. */
#include "report.h"
#include "config.h"

#include "serial.h"

bool report_quiet;
static unsigned passed, failed;
static const char *current;             /* running check, NULL outside check_run */
static unsigned current_results;

static void vresult(const char *name, bool ok, const char *fmt, va_list ap)
{
    if (ok)
        passed++;
    else
        failed++;
    if (ok && report_quiet)
        return;
    print("MVG: %s %s ", name, ok ? "PASS" : "FAIL");
    vprint(fmt, ap);
    print("\n");
}

void result(const char *name, bool ok, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vresult(name, ok, fmt, ap);
    va_end(ap);
}

static void current_result(bool ok, const char *fmt, va_list ap)
{
    const char *name = current ? current : "unknown";
    if (current && current_results++ > 0) {
        /* A second result of the same check is a bug in the check: count it as a failure. */
        print("MVG: %s FAIL reported more than one result\n", name);
        failed++;
        return;
    }
    vresult(name, ok, fmt, ap);
}

void pass(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    current_result(true, fmt, ap);
    va_end(ap);
}

void fail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    current_result(false, fmt, ap);
    va_end(ap);
}

void info(const char *fmt, ...)
{
    va_list ap;
    if (report_quiet)
        return;
    va_start(ap, fmt);
    print("MVG: info ");
    vprint(fmt, ap);
    print("\n");
    va_end(ap);
}

void check_run(const char *name, check_fn fn)
{
    current = name;
    current_results = 0;
    fn();
    if (current_results == 0)
        result(name, false, "check reported no result");
    current = NULL;
}

unsigned report_passed(void) { return passed; }
unsigned report_failed(void) { return failed; }

void report_done(void)
{
    if (config.boot_mark)
        outb(0x3F0, 123); /* minivmm's boot-complete marker (devices/boot_marker.hpp), as Firecracker's */
    print("MVG: DONE pass=%u fail=%u\n", passed, failed);
    serial_flush();
}

void fail_and_halt(const char *name, const char *reason)
{
    result(name, false, "%s", reason);
    report_done();
    guest_halt_forever();
}
