# SPDX-License-Identifier: LGPL-2.1-or-later
# shellcheck shell=sh
# Before kmodd starts: e1000.ko leaves the tree, as if its package (or a DKMS build) were not
# installed yet.
set -e
release=$(uname -r)
file=$(find "/lib/modules/$release/kernel" -name 'e1000.ko*' | head -n 1)
[ -n "$file" ] || { echo "no e1000.ko in the tree"; exit 1; }
mkdir -p /root/later
mv "$file" /root/later/
echo "$file" >/root/later/where
echo "moved $file out of the tree"
