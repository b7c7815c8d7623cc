// SPDX-License-Identifier: GPL-2.0
// Needs 100 symbols that nobody exports (kmodd_missing_00 ... kmodd_missing_99): the figure
// of `kmodctl check` for a module with 100 undefined symbols.
#include <linux/init.h>
#include <linux/module.h>

#define DECLARE(n) int kmodd_missing_##n(void);
#define CALL(n) sum += kmodd_missing_##n();
#define TEN(M, d) M(d##0) M(d##1) M(d##2) M(d##3) M(d##4) M(d##5) M(d##6) M(d##7) M(d##8) M(d##9)
#define HUNDRED(M)                                                                                 \
	TEN(M, 0) TEN(M, 1) TEN(M, 2) TEN(M, 3) TEN(M, 4) TEN(M, 5) TEN(M, 6) TEN(M, 7) TEN(M, 8)  \
	TEN(M, 9)

HUNDRED(DECLARE)

static int __init dev_many_init(void)
{
	int sum = 0;

	HUNDRED(CALL)
	return sum;
}

static void __exit dev_many_exit(void)
{
}

module_init(dev_many_init);
module_exit(dev_many_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("kmodd test: needs 100 symbols nobody exports");
