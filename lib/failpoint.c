/* failpoint.c - deliberate crashes for crash tests (see failpoint.h). */
#include "failpoint.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "log.h"

void rp_failpoint(const char *name) {
    const char *armed = getenv("RP_FAILPOINT");
    if (!armed || strcmp(armed, name) != 0) return;
    rp_log(RP_LOG_ERROR, "failpoint", "failpoint %s reached: the process ends here on purpose", name);
    _exit(70);
}

void rp_failpoint_hold(const char *name) {
    const char *armed = getenv("RP_FAILPOINT"), *file = getenv("RP_FAILPOINT_HOLD");
    if (!armed || !file || strcmp(armed, name) != 0 || access(file, F_OK) != 0) return;
    rp_log(RP_LOG_WARN, "failpoint", "failpoint %s reached: holding while %s exists", name, file);
    const struct timespec tick = {0, 10 * 1000 * 1000};
    while (access(file, F_OK) == 0)
        nanosleep(&tick, NULL);
}
