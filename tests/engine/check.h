/*
 * The engine tests' own assertion: CHECK_RC names guarded-call results. The
 * rest (CHECK, CHECK_EQ, REQUIRE, TEST_CASE...) is the one harness,
 * tests/check.h.
 */
#ifndef ERYX_TEST_ENGINE_CHECK_H
#define ERYX_TEST_ENGINE_CHECK_H

#include "../check.h"
#include "engine/engine.h"

/* Compares guarded-call results and names them. */
#define CHECK_RC(a, b)                                                                 \
    do {                                                                               \
        int check_a_ = (a), check_b_ = (b);                                            \
        if (check_a_ != check_b_)                                                      \
            CHECK_FAIL_("CHECK_RC(%s, %s) failed: %d (%s) != %d (%s)", #a, #b,          \
                        check_a_, eryx__engine_strerror(check_a_), check_b_,           \
                        eryx__engine_strerror(check_b_));                              \
    } while (0)

#endif
