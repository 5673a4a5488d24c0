/* export_page.h - the internal RPC the api pages the reward-request export through: the reward
 * worker answers one page of the history, the api streams the pages to the client
 * (api/export.c). Constant data. */
#ifndef RP_LIB_EXPORT_PAGE_H
#define RP_LIB_EXPORT_PAGE_H

/* GET, query: the filters of GET /events/reward-requests (userId, eventId, status, from, to,
 * validated the same way: 400 VALIDATION_FAILED), cursor (the id of the last row of the previous
 * page) and limit (1..RP_EXPORT_PAGE_MAX) -> 200 {items, nextCursor}: the list's items in the
 * list's order (requestedAt, then id, descending). Requests are never deleted and their
 * requestedAt never changes, so a cursor on a row's (requestedAt, id) neither skips nor repeats a
 * row however many are written while the pages are read. AUDITOR or ADMIN only. Not reachable
 * from HTTP: the gateway forwards only its route table. */
#define RP_EXPORT_PAGE_ROUTE "/_internal/reward-requests/page"
#define RP_EXPORT_PAGE_MAX 1000

#endif
