# Event reward platform - build, run and test.
#   make          build every binary (build/bin/)
#   make run      install what is missing, build, start the platform in embedded mode (foreground)
#   make test     install what is missing, build, run every test (C tests also under ASan+UBSan)
#   make deps     install the Debian packages the build and the tests need (only those missing)

CC      ?= cc
BUILD   ?= build
PYTHON  ?= /usr/bin/python3
PORT    ?= 8080
SQLITE_DIR ?= ./data

PKGS      := jansson libjwt libsodium sqlite3 libpcre2-8 librabbitmq libmongoc-1.0
PKGS      += openssl
PKGS      += libcurl
DEB_BUILD := build-essential pkg-config libcivetweb-dev librabbitmq-dev libmongoc-dev libbson-dev \
             libjansson-dev libjwt-dev libsodium-dev libsqlite3-dev libpcre2-dev libcriterion-dev
DEB_TEST  := json-schema-test-suite python3-pytest python3-requests python3-pika python3-yaml python3-mockupdb sqlite3 curl wrk rabbitmq-server clang-format
DEB_BUILD += libssl-dev
DEB_BUILD += libcurl4-openssl-dev
DEB_TEST  += openssl
# tests/e2e/test_webhooks.py checks answers against schemas/responses/
DEB_TEST  += python3-jsonschema
# make test-deploy only: the Docker engine, Debian's compose v1 and the base image's maker
DEB_DEPLOY := docker.io docker-compose debootstrap python3-pytest python3-requests python3-yaml
# the libFuzzer targets of tests/fuzz: Debian's clang 14 and its fuzzer/sanitizer runtimes
DEB_TEST  += clang libclang-rt-14-dev
# the black-box suite checks every response against the OpenAPI document (draft 2020-12 schemas)
DEB_TEST  += python3-jsonschema
# the console's browser tests (tests/browser): headless chromium driven through selenium
DEB_TEST  += chromium chromium-driver python3-selenium

WARN    := -Wall -Wextra -Werror -Wshadow -Wformat=2
CFLAGS  ?= -O2 -g
ALL_CFLAGS = -std=c11 -D_POSIX_C_SOURCE=200809L -D_DEFAULT_SOURCE $(WARN) $(CFLAGS) $(SANFLAGS) \
             -Ilib -Iapi -Iworkers $(shell pkg-config --cflags $(PKGS) 2>/dev/null) -MMD -MP
LDLIBS  = $(shell pkg-config --libs $(PKGS) 2>/dev/null) -lcivetweb -lpthread -lm
ifeq ($(SAN),1)
SANFLAGS := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
endif

SRCS      := $(wildcard lib/*.c api/*.c workers/*/*.c)
MAIN_SRCS := $(filter %_main.c,$(SRCS))
LIB_SRCS  := $(filter-out %_main.c,$(SRCS))
SCHEMAS   := $(sort $(wildcard schemas/*.json))
LIB_OBJS  := $(LIB_SRCS:%.c=$(BUILD)/obj/%.o) $(BUILD)/gen/schemas_embedded.o
LIB_OBJS  += $(BUILD)/gen/openapi_embedded.o
LIB_OBJS  += $(BUILD)/gen/console_embedded.o
# the web console (console/), served under /console/ from the api binaries
CONSOLE_ASSETS := $(sort $(shell find console -type f ! -name embed.sh ! -name '.*'))
bin_name   = reward-$(subst _,-,$(patsubst %_main.c,%,$(notdir $(1))))
BINS      := $(foreach m,$(MAIN_SRCS),$(BUILD)/bin/$(call bin_name,$(m)))
TEST_SRCS := $(wildcard tests/unit/test_*.c)
TEST_BINS := $(TEST_SRCS:tests/unit/%.c=$(BUILD)/tests/%)

.PHONY: all run run-cluster format-check test test-unit test-e2e test-mongo-contract deps deps-build deps-test clean format bench
.PHONY: test-deploy test-mongo-live deps-deploy
.PHONY: fuzz fuzz-build
all: $(BINS)

$(BUILD)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -c $< -o $@

# every binary carries the JSON Schemas of schemas/, so nothing is read from disk at run time
$(BUILD)/gen/schemas_embedded.c: $(SCHEMAS) schemas/embed.sh schemas/c_bytes.sh
	@mkdir -p $(dir $@)
	schemas/embed.sh $(SCHEMAS) > $@

$(BUILD)/gen/schemas_embedded.o: $(BUILD)/gen/schemas_embedded.c
	$(CC) $(ALL_CFLAGS) -c $< -o $@

# the OpenAPI document, generated from the route table, schemas/ and schemas/openapi/routes.json
# by a C tool (no sanitizers: it only runs here); it fails the build when a route is undocumented
# or the documentation names a route or schema that does not exist. Served with the reference
# page's assets (api/apidoc/) from the binary: api/apidoc.c
OPENAPI_GEN_SRCS := api/openapi/openapi_gen.c api/routes.c lib/roles.c lib/err.c
OPENAPI_INPUTS   := schemas/openapi/document.json schemas/openapi/routes.json $(SCHEMAS) \
                    $(sort $(wildcard schemas/responses/*.json))
OPENAPI_ASSETS   := index.html apidoc.js apidoc.css
$(BUILD)/tools/openapi_gen: $(OPENAPI_GEN_SRCS) api/routes.h lib/roles.h lib/err.h
	@mkdir -p $(dir $@)
	$(CC) -std=c11 -D_POSIX_C_SOURCE=200809L $(WARN) -O1 -g -Ilib -Iapi $(shell pkg-config --cflags jansson) \
	  -o $@ $(OPENAPI_GEN_SRCS) $(shell pkg-config --libs jansson)

$(BUILD)/gen/openapi_embedded.c: $(BUILD)/tools/openapi_gen $(OPENAPI_INPUTS) $(OPENAPI_ASSETS:%=api/apidoc/%)
	@mkdir -p $(dir $@)
	$(BUILD)/tools/openapi_gen schemas/openapi/document.json schemas/openapi/routes.json schemas schemas/responses \
	  $(BUILD)/gen/openapi.json $@ $(foreach a,$(OPENAPI_ASSETS),$(a)=api/apidoc/$(a))

$(BUILD)/gen/openapi.json: $(BUILD)/gen/openapi_embedded.c

$(BUILD)/gen/openapi_embedded.o: $(BUILD)/gen/openapi_embedded.c
	$(CC) $(ALL_CFLAGS) -c $< -o $@

# the web console (console/), compiled into the api binaries: api/console.c serves it
$(BUILD)/gen/console_embedded.c: $(CONSOLE_ASSETS) console/embed.sh schemas/c_bytes.sh
	@mkdir -p $(dir $@)
	console/embed.sh $(CONSOLE_ASSETS) > $@

$(BUILD)/gen/console_embedded.o: $(BUILD)/gen/console_embedded.c
	$(CC) $(ALL_CFLAGS) -c $< -o $@

$(BUILD)/librp.a: $(LIB_OBJS)
	@rm -f $@
	ar rcs $@ $^

define main_rule
$(BUILD)/bin/$(call bin_name,$(1)): $(BUILD)/obj/$(1:.c=.o) $(BUILD)/librp.a
	@mkdir -p $$(dir $$@)
	$$(CC) $$(ALL_CFLAGS) -o $$@ $$^ $$(LDLIBS)
endef
$(foreach m,$(MAIN_SRCS),$(eval $(call main_rule,$(m))))

$(BUILD)/tests/%: tests/unit/%.c $(BUILD)/librp.a
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -Itests/unit -o $@ $< $(BUILD)/librp.a $(LDLIBS) $(shell pkg-config --libs criterion)

# HTTPS with Debian's civetweb: see api/civetweb_tls/libssl_compat.c; beside the binaries (bin/../lib)
TLS_COMPAT := $(BUILD)/lib/librp-civetweb-libssl.so
all: $(TLS_COMPAT) $(BUILD)/gen/openapi.json
$(TLS_COMPAT): api/civetweb_tls/libssl_compat.c
	@mkdir -p $(dir $@)
	$(CC) -std=c11 $(WARN) -O2 -fPIC -shared -Wl,-soname,libssl.so -o $@ $< -Wl,--no-as-needed -lssl

# the driver of the MongoDB wire-contract tests: the real stores, run against a scripted server
CONTRACT_SRCS := $(wildcard tests/contract/*.c)
$(BUILD)/tests/mongo_driver: $(CONTRACT_SRCS) $(BUILD)/librp.a
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -Itests/contract -o $@ $(CONTRACT_SRCS) $(BUILD)/librp.a $(LDLIBS)

# ---- dependencies (Debian packages, installed only when missing) ----
define install_missing
	@missing=""; for p in $(1); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	fi
endef
deps-build:
	$(call install_missing,$(DEB_BUILD))
deps-test:
	$(call install_missing,$(DEB_TEST))
	@# the OpenAPI linter runs on node (tests/openapi/lint.sh); a nodesource nodejs brings its own npm
	@command -v npm >/dev/null 2>&1 || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm; }
deps: deps-build deps-test

# ---- run: the whole platform in embedded mode, in the foreground ----
run: deps-build all
	@mkdir -p "$(SQLITE_DIR)"
	@if [ -z "$$JWT_SECRET" ] && [ ! -s "$(SQLITE_DIR)/jwt_secret" ]; then \
	  (umask 077; head -c 48 /dev/urandom | base64 | tr -d '\n=+/' > "$(SQLITE_DIR)/jwt_secret"); \
	  echo "make run: generated a random JWT_SECRET for local use in $(SQLITE_DIR)/jwt_secret"; fi
	@if [ -z "$$JWT_SECRET" ]; then echo "make run: using JWT_SECRET from $(SQLITE_DIR)/jwt_secret"; fi
	JWT_SECRET="$${JWT_SECRET:-$$(cat "$(SQLITE_DIR)/jwt_secret")}" PORT=$(PORT) SQLITE_DIR="$(SQLITE_DIR)" \
	  exec $(BUILD)/bin/reward-platform

# ---- run-cluster: the production shape (api + workers as processes on RabbitMQ), foreground ----
run-cluster: deps-build all
	@dpkg -s rabbitmq-server >/dev/null 2>&1 || $(MAKE) deps-test
	PORT=$(PORT) SQLITE_DIR="$(SQLITE_DIR)" deploy/run-cluster.sh

# ---- tests ----
# the three builds use every core (BUILD_JOBS): built one file at a time they took a minute more
BUILD_JOBS ?= $(shell nproc 2>/dev/null || echo 2)
test: deps
	$(MAKE) format-check
	$(MAKE) -j$(BUILD_JOBS) all
	$(MAKE) -j$(BUILD_JOBS) BUILD=build-asan SAN=1 CFLAGS="-O1 -g" all $(TEST_BINS:$(BUILD)/%=build-asan/%) build-asan/tests/mongo_driver
	$(MAKE) -j$(BUILD_JOBS) fuzz-build
	PYTHON=$(PYTHON) tests/run_all.sh

test-unit: deps
	$(MAKE) BUILD=build-asan SAN=1 CFLAGS="-O1 -g" $(TEST_BINS:$(BUILD)/%=build-asan/%)
	tests/run_unit.sh build-asan/tests

# the MongoDB wire-contract tests alone (python3-mockupdb plays a replica-set primary)
test-mongo-contract: deps
	$(MAKE) BUILD=build-asan SAN=1 CFLAGS="-O1 -g" build-asan/tests/mongo_driver
	MONGO_DRIVER=build-asan/tests/mongo_driver $(PYTHON) -m pytest -q -rs tests/contract

# the Docker images built and the compose stack of deploy/ run for real (not part of make test);
# see tests/deploy/run.sh
deps-deploy:
	$(call install_missing,$(DEB_DEPLOY))
test-deploy: deps-deploy
	PYTHON=$(PYTHON) tests/deploy/run.sh

# the store conformance suites and the black-box suite on STORE=mongodb against MONGODB_URI (a
# replica set); without MONGODB_URI it says so and passes (tests/deploy/mongo_live.sh)
test-mongo-live:
	@PYTHON=$(PYTHON) MAKE="$(MAKE)" tests/deploy/mongo_live.sh

test-e2e: deps all
	BIN=$(BUILD)/bin/reward-platform $(PYTHON) -m pytest -q tests/e2e

bench: all
	bench/auth.sh
	bench/grants.sh

# bench/rpc_rtt.c: the bare RabbitMQ RPC round trip per queue type and reply path (no platform)
$(BUILD)/bench/rpc_rtt: bench/rpc_rtt.c
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -o $@ $< $(LDLIBS)

# bench/routes_match.c: what matching a request against the route table costs
$(BUILD)/bench/routes_match: bench/routes_match.c $(BUILD)/librp.a
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -o $@ $< $(BUILD)/librp.a $(LDLIBS)

# ---- fuzzing: libFuzzer targets (tests/fuzz/fuzz_*.c), the library rebuilt with clang for them ----
#   make fuzz                    each target for FUZZ_SECONDS (default 60) from its seed corpus
#   make fuzz FUZZ_TARGETS=token one target; make test runs each for FUZZ_SMOKE_SECONDS
FUZZ_BUILD   := build-fuzz
FUZZ_SECONDS ?= 60
FUZZ_ALL     := $(patsubst tests/fuzz/fuzz_%.c,%,$(wildcard tests/fuzz/fuzz_*.c))
FUZZ_TARGETS ?= $(FUZZ_ALL)
FUZZ_SAN     := -fsanitize=fuzzer-no-link,address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined

# only the parsers and what they call are rebuilt for the targets, to keep make test short; a
# symbol missing at link time names a file to add here
FUZZ_LIB_SRCS := lib/envelope.c lib/err.c lib/ids.c lib/json_util.c lib/jsonschema.c lib/log.c lib/mem.c \
                 lib/paging.c lib/roles.c lib/rpc.c lib/rpc_bundle.c lib/schema_registry.c lib/timeutil.c lib/token.c \
                 lib/transport.c api/http_io.c api/routes.c
$(BUILD)/libfuzz.a: $(FUZZ_LIB_SRCS:%.c=$(BUILD)/obj/%.o) $(BUILD)/gen/schemas_embedded.o
	@rm -f $@
	ar rcs $@ $^

$(BUILD)/fuzz/fuzz_%: tests/fuzz/fuzz_%.c $(BUILD)/libfuzz.a
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -fsanitize=fuzzer -Itests/fuzz -o $@ $< $(BUILD)/libfuzz.a $(LDLIBS)

fuzz-build:
	@dpkg -s clang libclang-rt-14-dev >/dev/null 2>&1 || $(MAKE) deps-test
	$(MAKE) BUILD=$(FUZZ_BUILD) CC=clang SANFLAGS="$(FUZZ_SAN)" CFLAGS="-O1 -g" $(FUZZ_ALL:%=$(FUZZ_BUILD)/fuzz/fuzz_%)

fuzz: fuzz-build
	tests/fuzz/run.sh $(FUZZ_BUILD) $(FUZZ_SECONDS) $(FUZZ_TARGETS)

FORMATTED := $(SRCS) bench/rpc_rtt.c bench/routes_match.c $(wildcard lib/*.h api/*.h workers/*/*.h) $(TEST_SRCS) $(wildcard tests/contract/*.[ch] tests/unit/*.h)
FORMATTED += api/civetweb_tls/libssl_compat.c
FORMATTED += api/openapi/openapi_gen.c
FORMATTED += $(wildcard tests/fuzz/*.[ch])
format:
	clang-format -i $(FORMATTED)

# the committed .clang-format is the style; make test refuses code that does not follow it
format-check:
	@clang-format --dry-run --Werror $(FORMATTED) && echo "format-check: $(words $(FORMATTED)) files follow .clang-format"

clean:
	rm -rf build build-asan
	rm -rf $(FUZZ_BUILD)

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)
