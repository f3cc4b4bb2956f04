#!/bin/sh
# Copies the guest object IN to OUT with every code section renamed to
# eryx_guest_code, so that the linker marks the bounds of all guest code
# (__start_/__stop_eryx_guest_code): a hard interrupt jumps out of guest code
# only, never out of host code the guest called. Compilers split code into
# .text, .text.hot., .text.unlikely., .text.split. ... (more of them with
# profile-guided optimisation): each executable section found is renamed.
# usage: place_guest_code.sh OBJCOPY IN OUT
set -eu
objcopy=$1 in=$2 out=$3
flags=alloc,load,readonly,code,contents
renames=$(LC_ALL=C readelf -SW "$in" |
          sed -n 's/^ *\[ *[0-9]*\] \([^ ]*\) *PROGBITS .* \([A-Z]*X[A-Z]*\) .*$/\1/p' |
          while read -r name; do printf ' --rename-section %s=eryx_guest_code,%s' "$name" "$flags"; done)
if [ -z "$renames" ]; then
    echo "place_guest_code.sh: no code section in $in" >&2
    exit 1
fi
# shellcheck disable=SC2086
"$objcopy" $renames "$in" "$out"
left=$(LC_ALL=C readelf -SW "$out" | sed -n 's/^ *\[ *[0-9]*\] \([^ ]*\) *PROGBITS .* \([A-Z]*X[A-Z]*\) .*$/\1/p' |
       grep -v '^eryx_guest_code$' || true)
if [ -n "$left" ]; then
    echo "place_guest_code.sh: code sections left outside eryx_guest_code: $left" >&2
    exit 1
fi
