// SPDX-License-Identifier: GPL-2.0
// A module that does nothing; build.sh makes it a module for another vermagic.
#include <linux/init.h>
#include <linux/module.h>

static int __init dev_magic_init(void)
{
	pr_info("dev_magic: live\n");
	return 0;
}

static void __exit dev_magic_exit(void)
{
}

module_init(dev_magic_init);
module_exit(dev_magic_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("kmodd test: dev_magic");
