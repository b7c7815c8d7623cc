// SPDX-License-Identifier: GPL-2.0
// A module that does nothing; build.sh leaves it unsigned.
#include <linux/init.h>
#include <linux/module.h>

static int __init dev_unsigned_init(void)
{
	pr_info("dev_unsigned: live\n");
	return 0;
}

static void __exit dev_unsigned_exit(void)
{
}

module_init(dev_unsigned_init);
module_exit(dev_unsigned_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("kmodd test: dev_unsigned");
