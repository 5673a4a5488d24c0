/* fuzz_reply.c - libFuzzer target for the parsers of a worker's reply on the api side
 * (rp_reply_parse, rp_reply_parse_raw): any bytes from the broker give either a reply with an
 * HTTP status or BAD_REPLY, and the two parsers never disagree on what both accept. */
#include <jansson.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "envelope.h"
#include "fuzz_util.h"

/* The reply printed again must read back as the same reply: what the api relays is what came. */
static void check_reserialize(const rp_reply_t *rep) {
    size_t len = 0;
    rp_reply_t again;
    rp_err_t err;
    char *text = rp_reply_serialize(rep, &len);
    FUZZ_CHECK(text != NULL);
    FUZZ_CHECK(rp_reply_parse_raw(&again, text, len, &err));
    FUZZ_CHECK(again.status == rep->status && again.retry_after_s == rep->retry_after_s);
    FUZZ_CHECK(again.raw_len == rep->raw_len && (!rep->raw || memcmp(again.raw, rep->raw, rep->raw_len) == 0));
    rp_reply_clear(&again);
    free(text);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *buf = (const char *)data;
    rp_reply_t full, raw;
    rp_err_t err;
    bool full_ok = rp_reply_parse(&full, buf, size, &err);
    if (full_ok) {
        FUZZ_CHECK(full.status >= 100 && full.status <= 599 && full.raw == NULL);
    } else {
        FUZZ_CHECK(strcmp(err.code, "BAD_REPLY") == 0 && full.body == NULL);
    }
    bool raw_ok = rp_reply_parse_raw(&raw, buf, size, &err);
    if (raw_ok && raw.raw) {
        /* only 2xx replies are relayed as text, and raw is a NUL-terminated copy */
        FUZZ_CHECK(raw.status >= 200 && raw.status <= 299 && raw.body == NULL);
        FUZZ_CHECK(raw.raw[raw.raw_len] == '\0');
        check_reserialize(&raw);
    }
    if (full_ok) FUZZ_CHECK(raw_ok); /* raw mode falls back to the full parse */
    if (full_ok && raw_ok) {
        FUZZ_CHECK(full.status == raw.status && full.retry_after_s == raw.retry_after_s);
        if (raw.raw) {
            /* the relayed text is the body the full parse saw, whenever it is JSON on its own */
            json_t *b = json_loadb(raw.raw, raw.raw_len, JSON_DECODE_ANY, NULL);
            if (b) FUZZ_CHECK(full.body && json_equal(b, full.body));
            json_decref(b);
        } else {
            FUZZ_CHECK((raw.body == NULL) == (full.body == NULL) && (!raw.body || json_equal(raw.body, full.body)));
        }
    }
    rp_reply_clear(&full);
    rp_reply_clear(&raw);
    return 0;
}
