/*
 * The growable buffer (common/sb_buf.c): appends keep a terminating NUL and
 * respect the ceiling, and a reservation makes room in one allocation
 * without changing the contents or passing the ceiling.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "sb_buf.h"
#include "sb_common.h"

static void test_sb_buf__reserve_makes_room_once_within_the_ceiling(void **state)
{
	struct sb_buf b = SB_BUF_INIT(1000);
	char *before;

	(void)state;
	assert_int_equal(sb_buf_adds(&b, "abc"), 0);
	assert_int_equal(sb_buf_reserve(&b, 900), 0);
	assert_true(b.alloc >= 904);
	assert_string_equal(sb_buf_cstr(&b), "abc");
	before = b.buf;
	for (int i = 0; i < 900; i++)
		assert_int_equal(sb_buf_addch(&b, 'x'), 0);
	assert_ptr_equal(b.buf, before);   /* no reallocation after the reservation */
	assert_int_equal(b.len, 903);
	assert_int_equal(b.buf[903], '\0');
	/* Past the ceiling: refused, nothing changed. */
	assert_int_equal(sb_buf_reserve(&b, 98), SB_ETOOBIG);
	assert_int_equal(sb_buf_add(&b, "0123456789", 98), SB_ETOOBIG);
	assert_int_equal(b.len, 903);
	assert_int_equal(sb_buf_reserve(&b, 97), 0);
	assert_int_equal(sb_buf_reserve(&b, SIZE_MAX), SB_ETOOBIG);
	sb_buf_release(&b);
	assert_null(b.buf);
	assert_int_equal(b.len, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_sb_buf__reserve_makes_room_once_within_the_ceiling),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
