#!/bin/sh
# SPDX-License-Identifier: MIT
# Writes the shipped /etc/lfp/lfpd.conf: lfpd's defaults as `lfpd --print-config` gives them (every
# option a key, with its description), each key commented, so that the file changes nothing until
# an admin uncomments a line. Usage: lfpd-conf.sh LFPD OUTPUT
set -eu
lfpd=$1 output=$2
{
  echo "# lfpd's options (lfpd(8)), read as TOML when lfpd starts: each key is a long option of lfpd"
  echo "# without its dashes, and the command line overrides this file. Every key is commented: lfpd's"
  echo "# defaults hold. lfpd --print-config shows what lfpd makes of this file."
  echo
  # (--print-config's own header, up to the first empty line, is left out.)
  "$lfpd" --config none --print-config | sed -e '1,/^$/d' -e 's/^[^#]/#&/'
} > "$output.tmp"
grep -q '^#state-dir = ' "$output.tmp" || { echo "lfpd-conf.sh: no state-dir key in lfpd --print-config" >&2; exit 1; }
mv "$output.tmp" "$output"
