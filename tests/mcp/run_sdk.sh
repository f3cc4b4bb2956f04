#!/usr/bin/env bash
# Runs a Node test of tests/mcp with the npm packages of scripts/install-npm.sh.
# usage: run_sdk.sh SCRIPT.mjs ERYX_BINARY
set -eu
here=$(cd "$(dirname "$0")" && pwd)
MCP_NPM_DIR=$("$here/../../scripts/install-npm.sh" | tail -n 1)
export MCP_NPM_DIR
exec node "$here/$1" "$2"
