/*
 * Assertions for the engine tests: a failure prints the expression, both
 * sides and the location, and exits with status 1.
 */
#ifndef ERYX_TEST_CHECK_H
#define ERYX_TEST_CHECK_H

#include <stdio.h>
#include <stdlib.h>

#include "engine/engine.h"

#define CHECK(cond)                                                                    \
    do {                                                                               \
        if (!(cond)) {                                                                 \
            fprintf(stderr, "%s:%d: CHECK(%s) failed\n", __FILE__, __LINE__, #cond);   \
            exit(1);                                                                   \
        }                                                                              \
    } while (0)

#define CHECK_EQ(a, b)                                                                 \
    do {                                                                               \
        long long check_a_ = (long long)(a), check_b_ = (long long)(b);                \
        if (check_a_ != check_b_) {                                                    \
            fprintf(stderr, "%s:%d: CHECK_EQ(%s, %s) failed: %lld != %lld\n", __FILE__, \
                    __LINE__, #a, #b, check_a_, check_b_);                             \
            exit(1);                                                                   \
        }                                                                              \
    } while (0)

/* Compares guarded-call results and names them. */
#define CHECK_RC(a, b)                                                                 \
    do {                                                                               \
        int check_a_ = (a), check_b_ = (b);                                            \
        if (check_a_ != check_b_) {                                                    \
            fprintf(stderr, "%s:%d: CHECK_RC(%s, %s) failed: %d (%s) != %d (%s)\n",    \
                    __FILE__, __LINE__, #a, #b, check_a_,                              \
                    eryx__engine_strerror(check_a_), check_b_,                         \
                    eryx__engine_strerror(check_b_));                                  \
            exit(1);                                                                   \
        }                                                                              \
    } while (0)

#endif
