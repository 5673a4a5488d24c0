/* progress_fixture.h - shared by the tests of rules/: ISO instants and a player's login rows
 * built with the rules' own encoding. Static functions; include once per test file. */
#ifndef RP_TESTS_PROGRESS_FIXTURE_H
#define RP_TESTS_PROGRESS_FIXTURE_H

#include <criterion/criterion.h>
#include <string.h>

#include "rules/login_days.h"
#include "rules/progress.h"
#include "timeutil.h"

static rp_progress_t prog;

static inline int64_t at(const char *iso) {
    int64_t ms;
    cr_assert(rp_time_parse_iso(iso, strlen(iso), &ms), "%s", iso);
    return ms;
}

/* Forgets the previous test's progress (quests and counters stay unset). */
static inline void progress_reset(void) {
    free(prog.logins);
    memset(&prog, 0, sizeof prog);
}

/* Records a login at an ISO instant in the row of its UTC day. */
static inline void login(const char *iso) {
    int64_t t = at(iso), day = rp_login_utc_day(t);
    size_t i = 0;
    while (i < prog.nlogins && prog.logins[i].utc_day != day)
        i++;
    if (i == prog.nlogins) {
        unsigned char none[RP_LOGIN_DAY_BYTES] = {0};
        rp_progress_add_login(&prog, day, none);
    }
    rp_login_mark(prog.logins[i].minutes, t);
}

#endif
