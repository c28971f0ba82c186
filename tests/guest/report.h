/* The MVG line protocol on COM1 (see README.md):
 *   MVG: <name> PASS <detail>      MVG: <name> FAIL <reason>
 *   MVG: info <text>               MVG: DONE pass=N fail=M
 * A check is a function run by check_run(); it must call pass() or fail() exactly once. */
#ifndef MVG_REPORT_H
#define MVG_REPORT_H

#include "guest.h"

typedef void (*check_fn)(void);

/* Demo mode: PASS and info lines are counted but not printed (FAIL, DONE still are). */
extern bool report_quiet;

void check_run(const char *name, check_fn fn);
void pass(const char *fmt, ...);        /* result of the running check */
void fail(const char *fmt, ...);
/* A result line outside check_run (e.g. "serial", "second-boot"). */
void result(const char *name, bool ok, const char *fmt, ...);
void info(const char *fmt, ...);

unsigned report_passed(void);
unsigned report_failed(void);
void report_done(void);                 /* prints the DONE line and flushes COM1 */
/* Prints "<name> FAIL <reason>" and DONE, then halts forever. */
NORETURN void fail_and_halt(const char *name, const char *reason);

#endif
