/* Tests api/console.c: the embedded asset table and the lookup that is the console's only way
 * from a request path to bytes. (Headers, 304 and traversal over HTTP: tests/e2e/test_console.py.) */
#include <criterion/criterion.h>
#include <string.h>

#include "console.h"

static const rp_console_asset_t *find(const char *path) {
    return rp_console_find(path, strlen(path));
}

Test(console, empty_path_is_the_index) {
    const rp_console_asset_t *a = find("");
    cr_assert_not_null(a);
    cr_assert_str_eq(a->path, "index.html");
    cr_assert_str_eq(a->content_type, "text/html; charset=utf-8");
    cr_assert(strstr(a->data, "<script type=\"module\" src=\"js/app.js\"></script>") != NULL);
}

Test(console, every_asset_has_a_type_a_strong_etag_and_its_bytes) {
    size_t n = 0;
    for (const rp_console_asset_t *a = rp_console_assets; a->path; a++, n++) {
        cr_assert(strlen(a->etag) == 34 && a->etag[0] == '"' && a->etag[33] == '"', "%s: %s", a->path, a->etag);
        cr_assert(strspn(a->etag + 1, "0123456789abcdef") == 32, "%s", a->path);
        cr_assert(a->content_type[0] != '\0');
        cr_assert_eq(strlen(a->data), a->len, "%s holds a NUL or lost bytes", a->path);
        cr_assert_eq(find(a->path), a);
        cr_assert(strstr(a->path, "..") == NULL && a->path[0] != '/');
        if (strstr(a->path, ".js")) cr_assert_str_eq(a->content_type, "text/javascript; charset=utf-8");
    }
    cr_assert_geq(n, 10);
}

Test(console, only_exact_names_match) {
    cr_assert_null(find("../Makefile"));
    cr_assert_null(find("js/../index.html"));
    cr_assert_null(find("/index.html"));
    cr_assert_null(find("index.html/"));
    cr_assert_null(find("INDEX.HTML"));
    cr_assert_null(find("js"));
    cr_assert_null(find("js/"));
    cr_assert_null(find("embed.sh"));
    /* a length shorter than the string: only the first bytes count */
    cr_assert_null(rp_console_find("index.html", 5));
    cr_assert_not_null(rp_console_find("index.htmlXYZ", 10));
}

Test(console, csp_forbids_inline_code_and_framing) {
    cr_assert(strstr(rp_console_csp, "default-src 'none'") != NULL);
    cr_assert(strstr(rp_console_csp, "script-src 'self';") != NULL);
    cr_assert(strstr(rp_console_csp, "style-src 'self';") != NULL);
    cr_assert(strstr(rp_console_csp, "frame-ancestors 'none'") != NULL);
    cr_assert(strstr(rp_console_csp, "unsafe") == NULL);
}
