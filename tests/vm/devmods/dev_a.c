// SPDX-License-Identifier: GPL-2.0
// A driver developer's module for the vm tests: an int parameter, and a symbol dev_b needs.
#include <linux/init.h>
#include <linux/module.h>
#include <linux/moduleparam.h>

static int level = 1;
module_param(level, int, 0444);
MODULE_PARM_DESC(level, "how loud dev_a is (an int)");

int kmodd_dev_a_level(void)
{
	return level;
}
EXPORT_SYMBOL_GPL(kmodd_dev_a_level);

static int __init dev_a_init(void)
{
	pr_info("dev_a: live with level %d\n", level);
	return 0;
}

static void __exit dev_a_exit(void)
{
	pr_info("dev_a: gone\n");
}

module_init(dev_a_init);
module_exit(dev_a_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("kmodd test: an out-of-tree module with an int parameter");
