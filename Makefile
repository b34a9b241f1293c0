# strata — the two commands in the README are `make demo` and `make test`.
GO        ?= go
GOPATH    := $(shell $(GO) env GOPATH)
VERSITYGW := $(GOPATH)/bin/versitygw
# Leaves out the GCS client's gRPC transport, which strata never uses
# (gocloud's gcsblob speaks the JSON API): a binary a quarter smaller and
# ~15 MB less RSS in every command, from package init alone. Builds
# without the tag work the same.
TAGS      := disable_grpc_modules

.PHONY: demo test vet bench build clean

build:
	$(GO) build -tags $(TAGS) -o bin/strata ./cmd/strata

# Initialise a local repository under ./strata-demo, back up the bundled
# sample graph, restore it and compare: prints every step.
demo:
	@sh scripts/demo.sh

# The whole suite, including S3 against a real versitygw on 127.0.0.1
# (installed here with go install when missing). No S3 test may skip.
test: $(VERSITYGW)
	$(GO) vet -tags $(TAGS) ./...
	STRATA_REQUIRE_S3=1 STRATA_VERSITYGW=$(VERSITYGW) $(GO) test -tags $(TAGS) -count=1 -timeout 20m ./...

$(VERSITYGW):
	$(GO) install github.com/versity/versitygw/cmd/versitygw@v1.8.0

# Backup and restore of ~1 GiB with strata and restic in one run: ratios
# printed and written to docs/performance.md.
bench:
	@sh bench/bench.sh

clean:
	rm -rf bin strata-demo bench/work
