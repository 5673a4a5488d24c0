/* Tests workers/auth/identity.c: the keys accounts are unique and found by. */
#include <criterion/criterion.h>

#include "auth/identity.h"

Test(identity, keys_fold_ascii_letters_only) {
    char out[64];
    rp_identity_key("Alice_01@Example.COM", out, sizeof out);
    cr_assert_str_eq(out, "alice_01@example.com");
    rp_identity_key("\xc3\x89lodie", out, sizeof out);
    cr_assert_str_eq(out, "\xc3\x89lodie", "bytes beyond ASCII are kept as they are");
    char small[4];
    rp_identity_key("ABCDEF", small, sizeof small);
    cr_assert_str_eq(small, "abc", "truncated, always terminated");
    rp_identity_key(NULL, out, sizeof out);
    cr_assert_str_eq(out, "");
}
