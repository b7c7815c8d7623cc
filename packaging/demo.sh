#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
# The main job, on embedded defaults: builds kmodd and runs `kmodctl depmod` on a demo module
# tree (the seed's story: mod2 needs mod1, and a developer's module softlinked in from a build
# folder), then shows what it wrote.
set -eu
cd "$(dirname "$0")/.."
./packaging/install-deps.sh
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j "$(nproc)" --target kmodctl kmodd_fixture_modules

demo=${KMODD_DEMO_DIR:-/tmp/kmodd-demo}
version=1.0.0-demo
modules=build/tests/fixtures/modules
rm -rf "$demo"
mkdir -p "$demo/lib/modules/$version/kernel/drivers" "$demo/home/dev/mydriver"
cp "$modules/mod1.ko" "$modules/mod2.ko" "$demo/lib/modules/$version/kernel/drivers/"
cp "$modules/mod3.ko" "$demo/home/dev/mydriver/mod3.ko"
mkdir -p "$demo/lib/modules/$version/extra"
ln -s "$demo/home/dev/mydriver/mod3.ko" "$demo/lib/modules/$version/extra/mod3.ko"
# What a kernel's `make modules_install` provides besides the modules.
printf 'kernel/drivers/mod1.ko\nkernel/drivers/mod2.ko\n' > "$demo/lib/modules/$version/modules.order"
: > "$demo/lib/modules/$version/modules.builtin"
: > "$demo/lib/modules/$version/modules.builtin.modinfo"

echo "demo tree: $demo/lib/modules/$version (extra/mod3.ko is a softlink into $demo/home/dev)"
echo "\$ build/bin/kmodctl depmod -b $demo $version"
build/bin/kmodctl depmod -b "$demo" "$version"
echo
echo "\$ cat $demo/lib/modules/$version/modules.dep"
cat "$demo/lib/modules/$version/modules.dep"
echo
echo "Loading mod2 means loading its dependencies first, in reverse line order:"
grep '^kernel/drivers/mod2.ko:' "$demo/lib/modules/$version/modules.dep"
echo
echo "Try: build/bin/kmodctl depmod -n -b $demo $version   (print instead of write)"
echo "     build/bin/depmod -b $demo $version              (the same binary, as 'depmod')"
