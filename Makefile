# Carry: the two commands a newcomer runs are `make demo` and `make test`.
# Both install what they need first (`make deps`).

SHELL := /bin/bash
CARGO ?= cargo
SHARED ?= $(abspath ../shared)

PYENV := target/pyenv

# One-off builds (CI, a newcomer's first run) gain nothing from incremental
# compilation, which adds some 2 GB under target/ to a clean `make test`. Run
# `make … CARGO_INCREMENTAL=1` (or export it) to keep it while editing.
export CARGO_INCREMENTAL ?= 0

.PHONY: audit conformance all deps build demo demo-postgres test lint unit postgres schemas fhir-client shl-check stu3-check nhs-login-check gp-connect-check bench bench-kotlin bench-sync bench-hpke bench-share bench-backup fmt bindings kotlin android xcframework size crash-test fuzz soak

all: test

## Install the system packages the build needs (Debian/Ubuntu), if missing.
deps:
	@bash .ci/deps.sh

## Build the CLI and the endpoint (debug: the demo and the tests share one build).
build: deps
	$(CARGO) build -p carry-cli -p carry-endpoint

## The end-to-end main job on embedded defaults, narrated.
demo: build
	bash tests/viewer/setup.sh
	SHARED=$(SHARED) CARRY_BIN=$(CURDIR)/target/debug/carry bash tests/demo.sh

## The same journey with the endpoint on PostgreSQL (installed and started if missing).
demo-postgres: build
	bash tests/viewer/setup.sh
	trap 'bash .ci/postgres.sh stop' EXIT; \
	url=$$(bash .ci/postgres.sh fresh carry_demo) || exit 1; \
	DEMO_DB=$$url SHARED=$(SHARED) CARRY_BIN=$(CURDIR)/target/debug/carry bash tests/demo.sh

## Formatting, lints and every test, then the demo as a smoke test.
test: deps lint audit unit postgres schemas fhir-client shl-check stu3-check nhs-login-check gp-connect-check kotlin viewer conformance
	SHARED=$(SHARED) CARRY_BIN=$(CURDIR)/target/debug/carry bash tests/demo.sh > target/demo.log 2>&1 \
		|| { cat target/demo.log; echo "make demo failed"; exit 1; }
	@echo "demo: ok (log in target/demo.log)"

## Dependency advisories: cargo-audit against the offline RustSec snapshot beside the
## repository. Any advisory fails, unless audit.toml ignores it with a reason and a date.
audit: deps
	@test -d $(SHARED)/advisory-db || { echo "the advisory snapshot is missing: expected $(SHARED)/advisory-db"; exit 1; }
	bash .ci/audit.sh $(SHARED)/advisory-db

lint:
	$(CARGO) fmt --all -- --check
	python3 .ci/layers.py
	$(CARGO) clippy --workspace --all-targets --all-features -- -D warnings

unit:
	@test -d $(SHARED)/fixtures || { echo "the shared fixtures are missing: expected $(SHARED)"; exit 1; }
	$(CARGO) test --workspace

## Fuzzing (not in CI): every target in fuzz/ for FUZZ_SECONDS each, seeded from
## ../shared; needs the nightly toolchain and cargo-fuzz, installed here if missing.
FUZZ_SECONDS ?= 60
fuzz:
	rustup toolchain list | grep -q '^nightly' || rustup toolchain install nightly --profile minimal
	command -v cargo-fuzz >/dev/null || $(CARGO) install cargo-fuzz --locked
	FUZZ_SECONDS=$(FUZZ_SECONDS) FUZZ_FLAGS="$(FUZZ_FLAGS)" SHARED=$(SHARED) bash tests/fuzz/run.sh

## Load and soak (not in CI): the optimised endpoint on loopback under about 200 paced
## requests/s of share-link manifests, mailbox traffic and FHIR search pages, plus a
## noisy client that must hit the rate limit, for SOAK_SECONDS; passes with no errors,
## no lost envelopes and flat memory. Report: target/soak.md.
SOAK_SECONDS ?= 600
soak: deps
	$(CARGO) build --profile bench -p carry-endpoint -p carry-soak
	target/release/carry-soak --endpoint target/release/carry-endpoint --seconds $(SOAK_SECONDS) --fixtures $(SHARED)/fixtures --out target/soak.md

## Crash consistency: the CLI SIGKILLed at 100 random points during an import, a
## provider sync, a carer's envelope apply and a revocation (`unit` runs 10 of them).
## CARRY_CRASH_SEED=N replays a run with the seed it printed.
crash-test: deps
	@test -d $(SHARED)/fixtures || { echo "the shared fixtures are missing: expected $(SHARED)"; exit 1; }
	$(CARGO) build -p carry-endpoint
	CARRY_CRASH_POINTS=100 $(CARGO) test -p carry-cli --test crash -- --nocapture

## The endpoint's storage conformance suite on PostgreSQL: .ci/postgres.sh installs
## PostgreSQL if missing and starts a throwaway server under target/pg, stopped after
## the tests whether they pass or not.
postgres:
	trap 'bash .ci/postgres.sh stop' EXIT; \
	url=$$(bash .ci/postgres.sh start) || exit 1; \
	CARRY_REQUIRE_POSTGRES=1 CARRY_TEST_POSTGRES_URL=$$url $(CARGO) test -p carry-endpoint conformance

## JSON Schemas against their examples and against a freshly made key file and backup.
PYREQS := "jsonschema>=4.18,<5" "fhirpy>=2.3,<3" "jwcrypto>=1.5,<2" "fhir.resources>=8,<9"
$(PYENV)/.installed: Makefile
	python3 -m venv $(PYENV)
	$(PYENV)/bin/pip install --quiet --disable-pip-version-check $(PYREQS)
	touch $@

schemas: $(PYENV)/.installed build
	@tmp=$$(mktemp -d); \
	CARRY_PASSPHRASE="schema check passphrase" target/debug/carry --home $$tmp/p init --name "Schema Check" >/dev/null \
	  && CARRY_PASSPHRASE="schema check passphrase" target/debug/carry --home $$tmp/p backup --out $$tmp/b.carry >/dev/null \
	  && $(PYENV)/bin/python tests/check_schemas.py $$tmp/p $$tmp/b.carry; rc=$$?; rm -rf $$tmp; exit $$rc

## The endpoint driven by an independent FHIR client (fhirpy).
fhir-client: $(PYENV)/.installed
	$(CARGO) build -p carry-endpoint
	$(PYENV)/bin/python tests/fhir_client_check.py target/debug/carry-endpoint $(SHARED)

## Sync against FHIR servers we did not write: HAPI FHIR's JPA server (built from
## Maven Central under tests/servers/hapi) and Medplum's FHIR router (npm, under
## tests/servers/medplum), beside the reference endpoint in each of its modes, each
## started on loopback and stopped after. Prints the server x case matrix; the
## report goes to target/conformance.md.
conformance: build
	bash tests/viewer/setup.sh
	CARRY_REQUIRE_SERVERS=1 python3 tests/conformance/run.py --carry target/debug/carry \
		--endpoint target/debug/carry-endpoint --shared $(SHARED) --out target/conformance.md

## The mock NHS login (/nhs-login) driven by a JOSE implementation that is not ours
## (jwcrypto): discovery, sign-in, RS512 client assertions, ID token checks, refusals.
nhs-login-check: $(PYENV)/.installed
	$(CARGO) build -p carry-endpoint
	$(PYENV)/bin/python tests/nhs_login_check.py target/debug/carry-endpoint

## The GP Connect mock (/TENANT/gpconnect/fhir) over the published STU3 examples,
## signed in through the mock NHS login with jwcrypto, every answered resource
## validated by fhir.resources' STU3 models; refusals with their Spine codes.
gp-connect-check: $(PYENV)/.installed
	$(CARGO) build -p carry-endpoint
	$(PYENV)/bin/python tests/gp_connect_check.py target/debug/carry-endpoint $(SHARED)

## GP Connect's STU3 examples converted to R4, checked by fhir.resources (its STU3
## models for the input, its R4B models for every converted resource, and for what
## carry import stored, as carry export gives it back).
stu3-check: $(PYENV)/.installed build
	SHARED=$(SHARED) CARRY_BIN=$(CURDIR)/target/debug/carry $(PYENV)/bin/python tests/stu3_check.py

## Share links checked by implementations that are not ours (jwcrypto, fhir.resources).
shl-check: $(PYENV)/.installed build
	$(PYENV)/bin/python tests/shl_check.py target/debug/carry target/debug/carry-endpoint $(SHARED)

## The share-link viewer: its decryption in node against the HL7 vectors, and the page
## in headless Chromium against the endpoint (tests/viewer/setup.sh installs Chromium,
## Node.js and the pinned npm packages if missing). Screenshot: target/viewer-ok.png.
.PHONY: viewer
viewer: build
	bash tests/viewer/setup.sh
	cd tests/viewer && SHARED=$(SHARED) CARRY_ENDPOINT_BIN=$(CURDIR)/target/debug/carry-endpoint \
		CARRY_SCREENSHOT=$(CURDIR)/target/viewer-ok.png node --test unit.test.js browser.test.js

## Benchmarks (optimised build); figures go into BENCHMARKS.md by hand.
bench: deps
	$(CARGO) bench -p carry-core --features plaintext-baseline --bench vault

## HPKE seal and open throughput.
bench-hpke: deps
	$(CARGO) bench -p carry-core --bench hpke

## A 2,000-resource scoped snapshot delivered through the relay over loopback.
bench-share: deps
	$(CARGO) build --profile bench -p carry-endpoint
	SHARED=$(SHARED) $(CARGO) bench -p carry-core --bench share

## Backups of a 10,000-resource record: to a file, to the endpoint (full and incremental), and restores.
bench-backup: deps
	$(CARGO) build --profile bench -p carry-endpoint
	SHARED=$(SHARED) $(CARGO) bench -p carry-core --bench backup

## Cold start on the JVM: new JVMs load the optimised library through the Kotlin
## bindings, open a 10k profile with a key store written in Kotlin and read the first
## timeline page (tests/kotlin, ColdStartBench). Report: target/bench-kotlin.md.
bench-kotlin: bindings
	$(CARGO) build --profile bench -p carry-ffi
	cd tests/kotlin && mvn -B --no-transfer-progress test -Dtest=ColdStartBench \
		-Dcarry.lib.dir=$(CURDIR)/target/release -Dcarry.shared.dir=$(SHARED) \
		-Dcarry.bench.out=$(CURDIR)/target/bench-kotlin.md

## Sync over loopback against the endpoint, and the endpoint's search throughput.
bench-sync: deps
	$(CARGO) build --profile bench -p carry-endpoint
	SHARED=$(SHARED) $(CARGO) bench -p carry-core --bench sync

fmt:
	$(CARGO) fmt --all

## Kotlin and Swift sources for the apps (library mode, from the host-built debug
## library, which keeps the symbol table the generator reads), plus the desktop-JVM
## variant of the Kotlin that tests/kotlin compiles.
BINDGEN = $(CARGO) run -q -p carry-ffi --bin uniffi-bindgen -- generate --no-format target/debug/libcarry_ffi.so

bindings: deps
	$(CARGO) build -p carry-ffi
	rm -rf build/bindings
	$(BINDGEN) --language kotlin --out-dir build/bindings/kotlin
	$(BINDGEN) --language swift --out-dir build/bindings/swift
	$(BINDGEN) --language kotlin --config bindings/uniffi-jvm.toml --out-dir build/bindings/kotlin-jvm
	@echo "bindings: build/bindings/{kotlin,swift,kotlin-jvm}"

## The Kotlin bindings and the idiomatic wrapper from android/, tested on a desktop
## JVM against the host-built library; then the Swift layer's names against the
## generated Swift (no Swift toolchain here to compile it).
kotlin: bindings
	$(CARGO) build -p carry-endpoint
	cd tests/kotlin && mvn -B --no-transfer-progress test \
		-Dcarry.lib.dir=$(CURDIR)/target/debug -Dcarry.shared.dir=$(SHARED)
	python3 tests/kotlin/check_swift_names.py

## The stripped release library and its size (recorded in BENCHMARKS.md).
size: deps
	$(CARGO) build --profile release-ffi -p carry-ffi
	strip -o target/release-ffi/libcarry_ffi.stripped.so target/release-ffi/libcarry_ffi.so
	python3 tests/size/breakdown.py target/release-ffi/libcarry_ffi.so target/release-ffi/libcarry_ffi.stripped.so

## Android: the native libraries for the Gradle module, built with cargo-ndk.
## Needs the Android NDK (not on these machines).
ANDROID_TARGETS = -t arm64-v8a -t armeabi-v7a -t x86_64
android: bindings
	@if [ -z "$$ANDROID_NDK_HOME" ] || [ ! -d "$$ANDROID_NDK_HOME" ]; then \
		echo "make android needs the Android NDK: install it (Android Studio > SDK Manager > NDK),"; \
		echo "set ANDROID_NDK_HOME, then: cargo install cargo-ndk &&"; \
		echo "rustup target add aarch64-linux-android armv7-linux-androideabi x86_64-linux-android"; \
		exit 1; fi
	cargo ndk $(ANDROID_TARGETS) -o android/carry/src/main/jniLibs build --profile release-ffi -p carry-ffi
	@echo "android: jniLibs in android/carry/src/main/jniLibs; generated Kotlin in build/bindings/kotlin"

## iOS: Carry.xcframework for the Swift package in ios/. Needs macOS with Xcode.
IOS_LIB = target/$(1)/release-ffi/libcarry_ffi.a
xcframework: bindings
	@if [ "$$(uname)" != "Darwin" ] || ! command -v xcodebuild >/dev/null 2>&1; then \
		echo "make xcframework needs macOS with Xcode (xcodebuild, lipo); it cannot run here."; \
		exit 1; fi
	rustup target add aarch64-apple-ios aarch64-apple-ios-sim x86_64-apple-ios
	for t in aarch64-apple-ios aarch64-apple-ios-sim x86_64-apple-ios; do \
		$(CARGO) build --profile release-ffi -p carry-ffi --target $$t || exit 1; done
	mkdir -p build/ios/sim build/ios/headers
	lipo -create $(call IOS_LIB,aarch64-apple-ios-sim) $(call IOS_LIB,x86_64-apple-ios) \
		-output build/ios/sim/libcarry_ffi.a
	cp build/bindings/swift/CarryFFIFFI.h build/ios/headers/
	cp build/bindings/swift/CarryFFIFFI.modulemap build/ios/headers/module.modulemap
	rm -rf ios/Carry.xcframework
	xcodebuild -create-xcframework \
		-library $(call IOS_LIB,aarch64-apple-ios) -headers build/ios/headers \
		-library build/ios/sim/libcarry_ffi.a -headers build/ios/headers \
		-output ios/Carry.xcframework
	mkdir -p ios/Sources/CarryFFI
	cp build/bindings/swift/CarryFFI.swift ios/Sources/CarryFFI/
