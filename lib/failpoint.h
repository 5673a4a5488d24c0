/* failpoint.h - named places where a crash test can make this process die on purpose, to show
 * what survives a crash at exactly that point (e.g. after a grant committed and before its answer
 * is sent), or where a test can hold a thread for as long as it likes. Inert unless the
 * environment variable RP_FAILPOINT names the point; production never sets it. Thread-safe. */
#ifndef RP_LIB_FAILPOINT_H
#define RP_LIB_FAILPOINT_H

/* When RP_FAILPOINT equals name: logs it and ends the process at once with status 70, as a
 * crash would (no cleanup, nothing flushed but the log line). Otherwise returns. */
void rp_failpoint(const char *name);

/* When RP_FAILPOINT equals name and RP_FAILPOINT_HOLD names a file that exists: logs it, then
 * waits (polling every 10 ms) until that file no longer exists, so a test can hold a thread at exactly this point
 * (a hash thread busy) and let it go. Otherwise returns at once. */
void rp_failpoint_hold(const char *name);

#endif
