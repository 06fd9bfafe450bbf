/*
 * Unit tests for an endpoint's pending input (dataplane/conn/endpoint.c):
 * a received chunk kept as the pending input is read where it is, has one
 * owner at a time (released once: with its last byte, by ep_fini, or by
 * whoever it was handed to), and is copied only when something writes
 * into the pending input (ep.in_copied counts the copies). Heap chunks
 * only: the ring-buffer guard needs a loop with its buffers out.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "dataplane/conn/conn_internal.h"
#include "chunk_testutil.h"

#define UNUSED __attribute__((unused))

static void test_adopted_chunk_is_read_in_place_and_released_with_its_last_byte(void **st UNUSED)
{
	struct endpoint ep;
	ep_init(&ep);
	struct io_chunk *c = chunk_of("xxQ0123456789");
	assert_true(ep_in_adopt(&ep, c, 2, 11));
	assert_ptr_equal(ep.in, c->data + 2);
	assert_int_equal(ep.in_len, 11);
	ep_in_consume(&ep, 4);
	assert_ptr_equal(ep.in, c->data + 6);
	assert_int_equal(ep.in_len, 7);
	assert_memory_equal(ep.in, "3456789", 7);
	ep_in_consume(&ep, 7); /* releases c (ASan: exactly once) */
	assert_null(ep.in_chunk);
	assert_null(ep.in);
	assert_int_equal(ep.in_len, 0);
	assert_int_equal(ep.in_copied, 0);
	ep_fini(&ep, NULL);
}

static void test_append_after_adopt_copies_the_window_out_once(void **st UNUSED)
{
	struct endpoint ep;
	ep_init(&ep);
	struct io_chunk *c = chunk_of("abcdefghij");
	assert_true(ep_in_adopt(&ep, c, 0, 10));
	assert_int_equal(ep_in_append(&ep, (const uint8_t *)"KLMNO", 5), 0);
	assert_null(ep.in_chunk); /* c was released by the copy */
	assert_int_equal(ep.in_len, 15);
	assert_memory_equal(ep.in, "abcdefghijKLMNO", 15);
	assert_int_equal(ep.in_copied, 15);
	ep_in_consume(&ep, 3);
	assert_memory_equal(ep.in, "defghijKLMNO", 12);
	ep_fini(&ep, NULL);
}

static void
test_adopt_refuses_when_input_is_pending_and_leaves_the_chunk_to_the_caller(void **st UNUSED)
{
	struct endpoint ep;
	ep_init(&ep);
	assert_int_equal(ep_in_append(&ep, (const uint8_t *)"Q12", 3), 0);
	struct io_chunk *c = chunk_of("more");
	assert_false(ep_in_adopt(&ep, c, 0, 4));
	assert_null(ep.in_chunk);
	io_chunk_release(NULL, c); /* still ours */
	assert_int_equal(ep.in_len, 3);
	ep_fini(&ep, NULL);
}

static void test_handed_chunk_is_forgotten_not_released(void **st UNUSED)
{
	struct endpoint ep;
	ep_init(&ep);
	struct io_chunk *c = chunk_of("Qabcdx");
	assert_true(ep_in_adopt(&ep, c, 0, 6));
	ep_in_handed(&ep); /* queued elsewhere: the new owner releases it */
	assert_null(ep.in_chunk);
	assert_null(ep.in);
	assert_int_equal(ep.in_len, 0);
	io_chunk_release(NULL, c);
	ep_fini(&ep, NULL); /* must not release c again (ASan) */
}

static void test_fini_releases_an_adopted_chunk(void **st UNUSED)
{
	struct endpoint ep;
	ep_init(&ep);
	struct io_chunk *c = chunk_of("pending while the client leaves");
	assert_true(ep_in_adopt(&ep, c, 8, 5));
	ep_fini(&ep, NULL); /* LeakSanitizer fails the run otherwise */
	assert_null(ep.in);
	assert_null(ep.in_chunk);
}

static void test_splice_on_an_adopted_window_copies_it_out(void **st UNUSED)
{
	struct endpoint ep;
	ep_init(&ep);
	struct io_chunk *c = chunk_of("--SELECT 1;");
	assert_true(ep_in_adopt(&ep, c, 2, 9));
	assert_int_equal(ep_in_splice(&ep, 0, 6, (const uint8_t *)"VALUES", 6), 0);
	assert_null(ep.in_chunk);
	assert_int_equal(ep.in_len, 9);
	assert_memory_equal(ep.in, "VALUES 1;", 9);
	assert_int_equal(ep.in_copied, 9);
	ep_fini(&ep, NULL);
}

static void test_adopt_after_the_window_is_consumed_takes_the_next_chunk(void **st UNUSED)
{
	struct endpoint ep;
	ep_init(&ep);
	struct io_chunk *a = chunk_of("first");
	struct io_chunk *b = chunk_of("second");
	assert_true(ep_in_adopt(&ep, a, 0, 5));
	ep_in_consume(&ep, 5);
	assert_true(ep_in_adopt(&ep, b, 0, 6));
	assert_ptr_equal(ep.in, b->data);
	assert_int_equal(ep.in_copied, 0);
	ep_fini(&ep, NULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_adopted_chunk_is_read_in_place_and_released_with_its_last_byte),
	    cmocka_unit_test(test_append_after_adopt_copies_the_window_out_once),
	    cmocka_unit_test(
	        test_adopt_refuses_when_input_is_pending_and_leaves_the_chunk_to_the_caller),
	    cmocka_unit_test(test_handed_chunk_is_forgotten_not_released),
	    cmocka_unit_test(test_fini_releases_an_adopted_chunk),
	    cmocka_unit_test(test_splice_on_an_adopted_window_copies_it_out),
	    cmocka_unit_test(test_adopt_after_the_window_is_consumed_takes_the_next_chunk),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
