/* Tests api/export.c: the CSV cell encoder (RFC 4180 quoting, formula-injection prefix, bytes
 * passed through), the header and rows, and the NDJSON lines. */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "export.h"

/* b's bytes as a new NUL-terminated string (free()); b.data itself is not terminated. */
static char *text_of(const rp_export_buf_t *b) {
    char *out = malloc(b->len + 1);
    if (b->len) memcpy(out, b->data, b->len);
    out[b->len] = '\0';
    return out;
}

/* The cell s encodes to, as a new NUL-terminated string (free()). */
static char *cell(const char *s, size_t n) {
    rp_export_buf_t b = {0};
    rp_export_csv_cell(&b, s, n);
    char *out = text_of(&b);
    rp_export_buf_free(&b);
    return out;
}

static void assert_cell(const char *in, const char *want) {
    char *got = cell(in, strlen(in));
    cr_assert_str_eq(got, want, "cell of [%s]", in);
    free(got);
}

Test(csv_cell, plain_text_is_left_alone) {
    assert_cell("SUCCESS", "SUCCESS");
    assert_cell("", "");
    assert_cell("2026-01-02T03:04:05.000Z", "2026-01-02T03:04:05.000Z");
    assert_cell("a b; c", "a b; c");
}

Test(csv_cell, separators_and_quotes_are_quoted) {
    assert_cell("a,b", "\"a,b\"");
    assert_cell("say \"hi\"", "\"say \"\"hi\"\"\"");
    assert_cell("\"", "\"\"\"\"");
    assert_cell("line1\nline2", "\"line1\nline2\"");
    assert_cell("line1\r\nline2", "\"line1\r\nline2\"");
    assert_cell("end\r", "\"end\r\"");
}

Test(csv_cell, every_formula_prefix_gets_an_apostrophe_and_quotes) {
    assert_cell("=1+1", "\"'=1+1\"");
    assert_cell("+1", "\"'+1\"");
    assert_cell("-1", "\"'-1\"");
    assert_cell("@SUM(A1)", "\"'@SUM(A1)\"");
    assert_cell("\tx", "\"'\tx\"");
    assert_cell("\rx", "\"'\rx\"");
    assert_cell("=HYPERLINK(\"http://x\",\"y\")", "\"'=HYPERLINK(\"\"http://x\"\",\"\"y\"\")\"");
    /* only the first character counts */
    assert_cell("a=b", "a=b");
    assert_cell("1-2", "1-2");
}

Test(csv_cell, utf8_and_embedded_nul_pass_through) {
    assert_cell("골드 x100 — ünïcödé 🎁", "골드 x100 — ünïcödé 🎁");
    assert_cell("=골드", "\"'=골드\"");
    rp_export_buf_t b = {0};
    rp_export_csv_cell(&b, "a\0b", 3);
    cr_assert_eq(b.len, 3u);
    cr_assert_eq(memcmp(b.data, "a\0b", 3), 0);
    rp_export_buf_free(&b);
}

Test(csv_rows, header_and_row_follow_the_columns) {
    rp_export_buf_t b = {0};
    rp_export_csv_header(&b);
    const char *want_head = "id,userId,eventId,status,source,periodKey,requestedAt,processedAt,processorId,"
                            "failureReason,notes,batchId,createdAt,updatedAt,failureDetails,claimedRewards\r\n";
    cr_assert_eq(b.len, strlen(want_head));
    cr_assert_eq(memcmp(b.data, want_head, b.len), 0);
    rp_export_buf_free(&b);

    json_t *item =
        json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:n, s:n, s:s, s:s, s:n, s:s, s:s, s:n, s:[{s:s, "
                  "s:i}]}",
                  "id", "65f0a1b2c3d4e5f601234567", "userId", "u1", "eventId", "e1", "status", "FAILED", "source",
                  "BATCH", "periodKey", "ONCE", "requestedAt", "2026-01-02T03:04:05.000Z", "processedAt", "processorId",
                  "failureReason", "OUT_OF_STOCK", "notes", "=cmd|' /C calc'!A0", "batchId", "createdAt", "t1",
                  "updatedAt", "t2", "failureDetails", "claimedRewards", "name", "Gold, \"big\"", "quantity", 2);
    rp_export_csv_row(&b, item);
    /* the formula is neutralised; the JSON cell is compact JSON, quoted for its commas and quotes */
    const char *want = "65f0a1b2c3d4e5f601234567,u1,e1,FAILED,BATCH,ONCE,2026-01-02T03:04:05.000Z,,,OUT_OF_STOCK,"
                       "\"'=cmd|' /C calc'!A0\",,t1,t2,,\"[{\"\"name\"\":\"\"Gold, \\\"\"big\\\"\"\"\","
                       "\"\"quantity\"\":2}]\"\r\n";
    char *got = text_of(&b);
    cr_assert_str_eq(got, want);
    free(got);
    rp_export_buf_free(&b);
    json_decref(item);
}

Test(csv_rows, missing_fields_are_empty_cells) {
    rp_export_buf_t b = {0};
    json_t *item = json_pack("{s:s}", "id", "x");
    rp_export_csv_row(&b, item);
    const char *want = "x,,,,,,,,,,,,,,,\r\n";
    cr_assert_eq(b.len, strlen(want));
    cr_assert_eq(memcmp(b.data, want, b.len), 0);
    rp_export_buf_free(&b);
    json_decref(item);
}

Test(ndjson, one_compact_line_per_item) {
    rp_export_buf_t b = {0};
    json_t *item = json_pack("{s:s, s:s}", "id", "x", "notes", "two\nlines");
    rp_export_ndjson_line(&b, item);
    rp_export_ndjson_line(&b, item);
    const char *want = "{\"id\":\"x\",\"notes\":\"two\\nlines\"}\n{\"id\":\"x\",\"notes\":\"two\\nlines\"}\n";
    cr_assert_eq(b.len, strlen(want));
    cr_assert_eq(memcmp(b.data, want, b.len), 0);
    rp_export_buf_free(&b);
    json_decref(item);
}

Test(buffer, grows_past_its_first_allocation) {
    rp_export_buf_t b = {0};
    char big[10000];
    memset(big, 'x', sizeof big);
    big[0] = ',';
    rp_export_csv_cell(&b, big, sizeof big);
    cr_assert_eq(b.len, sizeof big + 2);
    cr_assert_eq(b.data[0], '"');
    cr_assert_eq(b.data[b.len - 1], '"');
    rp_export_buf_free(&b);
    rp_export_buf_free(NULL);
}
