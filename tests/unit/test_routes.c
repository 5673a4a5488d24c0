/* Tests api/routes.c: matching, specificity, 404/405 and the role rules of the table. */
#include <criterion/criterion.h>
#include <string.h>

#include "roles.h"
#include "routes.h"

static rp_match_result_t match(const char *method, const char *path, const rp_api_route_t **r, json_t **params,
                               char *allow) {
    return rp_routes_match(method, path, strlen(path), r, params, allow, 64);
}

Test(routes, literal_routes_match) {
    const rp_api_route_t *r;
    char allow[64];
    cr_assert_eq(match("POST", "/auth/login", &r, NULL, allow), RP_MATCH_OK);
    cr_assert_str_eq(r->pattern, "/auth/login");
    cr_assert(r->is_public);
    cr_assert_eq(match("GET", "/", &r, NULL, allow), RP_MATCH_OK);
    cr_assert_eq(r->component, RP_ROUTE_LOCAL);
}

Test(routes, parameters_are_extracted) {
    const rp_api_route_t *r;
    json_t *params = NULL;
    char allow[64];
    cr_assert_eq(match("PUT", "/auth/users/65f0a1b2c3d4e5f601234567/roles", &r, &params, allow), RP_MATCH_OK);
    cr_assert_str_eq(r->pattern, "/auth/users/{id}/roles");
    cr_assert_str_eq(json_string_value(json_object_get(params, "id")), "65f0a1b2c3d4e5f601234567");
    json_decref(params);
}

Test(routes, unknown_path_is_404) {
    const rp_api_route_t *r;
    char allow[64];
    cr_assert_eq(match("GET", "/nope", &r, NULL, allow), RP_MATCH_NOT_FOUND);
    cr_assert_eq(match("GET", "/auth/me/extra", &r, NULL, allow), RP_MATCH_NOT_FOUND);
    cr_assert_eq(match("GET", "/auth//me", &r, NULL, allow), RP_MATCH_NOT_FOUND);
    cr_assert_eq(match("GET", "/auth/me/", &r, NULL, allow), RP_MATCH_NOT_FOUND);
    cr_assert_eq(match("GET", "", &r, NULL, allow), RP_MATCH_NOT_FOUND);
    cr_assert_eq(match("GET", "auth/me", &r, NULL, allow), RP_MATCH_NOT_FOUND);
    cr_assert_null(r);
}

Test(routes, wrong_method_is_405_with_allow) {
    const rp_api_route_t *r;
    char allow[64];
    cr_assert_eq(match("GET", "/auth/login", &r, NULL, allow), RP_MATCH_BAD_METHOD);
    cr_assert_str_eq(allow, "POST");
    cr_assert_eq(match("DELETE", "/auth/users/abc/roles", &r, NULL, allow), RP_MATCH_BAD_METHOD);
    cr_assert_str_eq(allow, "PUT");
}

Test(routes, literal_beats_parameter) {
    /* every pattern in the table must win its own literal path over any parameterised sibling */
    size_t n;
    const rp_api_route_t *t = rp_routes_table(&n);
    for (size_t i = 0; i < n; i++) {
        if (strchr(t[i].pattern, '{')) continue;
        const rp_api_route_t *r;
        char allow[64];
        cr_assert_eq(match(t[i].method, t[i].pattern, &r, NULL, allow), RP_MATCH_OK, "%s", t[i].pattern);
        cr_assert_str_eq(r->pattern, t[i].pattern);
    }
}

Test(routes, role_rules) {
    const rp_api_route_t *r;
    char allow[64];
    cr_assert_eq(match("GET", "/auth/users", &r, NULL, allow), RP_MATCH_OK);
    cr_assert_not(rp_routes_allows(r, false, 0));
    cr_assert_not(rp_routes_allows(r, true, RP_ROLE_USER));
    cr_assert_not(rp_routes_allows(r, true, RP_ROLE_OPERATOR | RP_ROLE_AUDITOR | RP_ROLE_GAME_SERVER));
    cr_assert(rp_routes_allows(r, true, RP_ROLE_ADMIN));
    cr_assert(rp_routes_allows(r, true, RP_ROLE_USER | RP_ROLE_ADMIN));
    cr_assert_eq(match("GET", "/auth/me", &r, NULL, allow), RP_MATCH_OK);
    cr_assert_not(rp_routes_allows(r, false, 0));
    cr_assert(rp_routes_allows(r, true, RP_ROLE_GAME_SERVER));
    cr_assert_eq(match("POST", "/auth/register", &r, NULL, allow), RP_MATCH_OK);
    cr_assert(rp_routes_allows(r, false, 0));
}

Test(routes, table_is_well_formed) {
    size_t n;
    const rp_api_route_t *t = rp_routes_table(&n);
    for (size_t i = 0; i < n; i++) {
        cr_assert(t[i].pattern[0] == '/', "%s", t[i].pattern);
        for (size_t j = i + 1; j < n; j++)
            cr_assert(strcmp(t[i].pattern, t[j].pattern) != 0 || strcmp(t[i].method, t[j].method) != 0,
                      "duplicate route %s %s", t[i].method, t[i].pattern);
        if (t[i].body != RP_BODY_NONE) cr_assert(strcmp(t[i].method, "GET") != 0);
        if (t[i].is_public) cr_assert_eq(t[i].roles, 0u);
    }
}

#include "embedded.h"
#include "jsonschema.h"

Test(routes, every_body_route_names_an_existing_schema) {
    size_t n;
    const rp_api_route_t *t = rp_routes_table(&n);
    for (size_t i = 0; i < n; i++) {
        if (t[i].body == RP_BODY_NONE) {
            cr_assert_null(t[i].schema, "%s %s reads no body but names a schema", t[i].method, t[i].pattern);
            continue;
        }
        cr_assert_not_null(t[i].schema, "%s %s takes a body without a schema", t[i].method, t[i].pattern);
        bool found = false;
        for (size_t k = 0; rp_embedded_schemas[k].name; k++)
            found = found || strcmp(rp_embedded_schemas[k].name, t[i].schema) == 0;
        cr_assert(found, "schema %s of %s %s is missing from schemas/", t[i].schema, t[i].method, t[i].pattern);
    }
}

Test(routes, export_is_matched_before_a_request_id) {
    const rp_api_route_t *r;
    char allow[64];
    cr_assert_eq(match("GET", "/events/reward-requests/export", &r, NULL, allow), RP_MATCH_OK);
    cr_assert_str_eq(r->pattern, "/events/reward-requests/export");
    cr_assert_eq(r->component, RP_ROUTE_EXPORT);
    cr_assert(rp_routes_allows(r, true, RP_ROLE_AUDITOR));
    cr_assert(rp_routes_allows(r, true, RP_ROLE_ADMIN));
    cr_assert_not(rp_routes_allows(r, true, RP_ROLE_OPERATOR | RP_ROLE_USER | RP_ROLE_GAME_SERVER));
    cr_assert_eq(match("GET", "/events/reward-requests/65f0a1b2c3d4e5f601234567", &r, NULL, allow), RP_MATCH_OK);
    cr_assert_str_eq(r->pattern, "/events/reward-requests/{id}");
    cr_assert_eq(match("POST", "/events/reward-requests/export", &r, NULL, allow), RP_MATCH_BAD_METHOD);
}

/* Only the claim shares a message with others (rp_transport_call_shared): its calls come in waves
 * and the grant worker commits them together; any other call bundled with claims would wait for
 * their group commit, and a bundle holds the calls of one component. */
Test(routes, only_the_claim_is_a_shared_call) {
    size_t n;
    const rp_api_route_t *t = rp_routes_table(&n);
    int shared = 0;
    for (size_t i = 0; i < n; i++) {
        if (!t[i].shared_call) continue;
        shared++;
        cr_assert_str_eq(t[i].method, "POST");
        cr_assert_str_eq(t[i].pattern, "/events/{id}/reward-requests");
        cr_assert_eq(t[i].component, RP_COMP_REWARD);
    }
    cr_assert_eq(shared, 1, "%d shared routes", shared);
}
