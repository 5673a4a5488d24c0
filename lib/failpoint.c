/* failpoint.c - deliberate crashes for crash tests (see failpoint.h). */
#include "failpoint.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"

void rp_failpoint(const char *name) {
    const char *armed = getenv("RP_FAILPOINT");
    if (!armed || strcmp(armed, name) != 0) return;
    rp_log(RP_LOG_ERROR, "failpoint", "failpoint %s reached: the process ends here on purpose", name);
    _exit(70);
}
