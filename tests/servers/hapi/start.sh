#!/usr/bin/env bash
# Run the Carry HAPI FHIR test server (R4, in-memory H2) in the foreground.
#   usage: tests/servers/hapi/start.sh PORT
# FHIR base: http://127.0.0.1:PORT/fhir. Prints "hapi: listening on ..." on
# stdout once requests are served; all logs go to stderr. Every start is an
# empty database. (Re)builds target/carry-hapi.jar first when it is missing or
# older than pom.xml / src (needs only Maven Central); concurrent starts share
# one build through a lock file.
# Extra JVM options may be passed in HAPI_JAVA_OPTS, e.g.
#   HAPI_JAVA_OPTS="-Dcarry.hapi.maxPageSize=200 -Dcarry.hapi.logLevel=INFO"
set -euo pipefail

PORT=${1:?usage: start.sh PORT}
HERE=$(cd "$(dirname "$0")" && pwd)
JAR=$HERE/target/carry-hapi.jar

stale() {
  [ ! -f "$JAR" ] || [ -n "$(find "$HERE/pom.xml" "$HERE/src" -newer "$JAR" -print -quit)" ]
}

if stale; then
  mkdir -p "$HERE/target"
  exec 9>"$HERE/target/.build.lock"
  flock 9
  if stale; then
    echo "hapi: building $JAR" >&2
    if ! (cd "$HERE" && mvn -q -B package 1>&2); then
      rm -f "$JAR"
      echo "hapi: build failed" >&2
      exit 1
    fi
  fi
  exec 9>&-
fi

# C1-only JIT and the serial GC start faster on a small machine; the test
# server's load is light, so peak throughput does not matter.
# shellcheck disable=SC2086
exec java -Xmx1g -Xss1m -XX:TieredStopAtLevel=1 -XX:+UseSerialGC \
  ${HAPI_JAVA_OPTS:-} -jar "$JAR" "$PORT" 127.0.0.1
