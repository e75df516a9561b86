#!/usr/bin/env bash
# test_generated.sh -- fails when generated/ is stale with respect to proto/ (protoc-c output).
cd "$(dirname "$0")/../.."
if ! command -v protoc-c >/dev/null; then
    echo "test_generated: SKIP protoc-c not installed"
    echo "test_generated: 0 passed, 0 failed, 1 skipped"
    [ "${CLUSTERF_REQUIRE_ALL:-0}" = 1 ] && exit 1
    exit 0
fi
if scripts/gen-proto --check generated; then
    echo "test_generated: 1 passed, 0 failed, 0 skipped"
else
    echo "test_generated: FAIL generated/ differs from protoc-c output of proto/"
    echo "test_generated: 0 passed, 1 failed, 0 skipped"
    exit 1
fi
