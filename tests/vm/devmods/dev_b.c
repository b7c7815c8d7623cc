// SPDX-License-Identifier: GPL-2.0
// Needs a symbol of another out-of-tree module (dev_a).
#include <linux/init.h>
#include <linux/module.h>

int kmodd_dev_a_level(void);

static int __init dev_b_init(void)
{
	pr_info("dev_b: live, dev_a's level is %d\n", kmodd_dev_a_level());
	return 0;
}

static void __exit dev_b_exit(void)
{
}

module_init(dev_b_init);
module_exit(dev_b_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("kmodd test: needs dev_a");
