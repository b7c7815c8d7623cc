// SPDX-License-Identifier: GPL-2.0
// Needs a symbol that neither the kernel nor any module exports.
#include <linux/init.h>
#include <linux/module.h>

int kmodd_no_such_symbol(void);

static int __init dev_nosym_init(void)
{
	return kmodd_no_such_symbol();
}

static void __exit dev_nosym_exit(void)
{
}

module_init(dev_nosym_init);
module_exit(dev_nosym_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("kmodd test: needs a symbol nobody exports");
