#!/usr/bin/env bash
# Seeds the fuzz corpus with the fixture objects (build them first: make -C test/fixtures)
# and the regression objects.
set -euo pipefail
cd "$(dirname "$0")"
mkdir -p corpus/parse
cp ../../../test/fixtures/build/*.bpf.o ../../../test/regressions/*.o corpus/parse/
ls corpus/parse | wc -l
