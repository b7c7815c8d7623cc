// SPDX-License-Identifier: GPL-2.0
// A module that does nothing; build.sh makes it signed with a key of its own.
#include <linux/init.h>
#include <linux/module.h>

static int __init dev_signed_init(void)
{
	pr_info("dev_signed: live\n");
	return 0;
}

static void __exit dev_signed_exit(void)
{
}

module_init(dev_signed_init);
module_exit(dev_signed_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("kmodd test: dev_signed");
