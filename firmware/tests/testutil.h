/* Helpers shared by the C tests: a seeded RNG, finite differences, and failure bookkeeping. */
#ifndef ODL_TESTUTIL_H
#define ODL_TESTUTIL_H

#include <stdint.h>

typedef struct {
    uint64_t state;
} test_rng_t;

float test_uniform(test_rng_t *rng, float lo, float hi);
unsigned test_int(test_rng_t *rng, unsigned lo, unsigned hi); /* inclusive */
void test_fill(test_rng_t *rng, float *v, unsigned n, float lo, float hi);

/* A scalar loss of the current state of the arrays a test perturbs. */
typedef double (*test_loss_fn)(void *ctx);

/*
 * Central differences of `loss` with respect to every element of `param`, compared with `analytic`:
 * passes when |fd - analytic| <= atol + rtol * |analytic|. Returns the number of mismatches and prints
 * the first few. With `kinks` set, an element also passes when the forward or the backward one-sided
 * difference matches: a ReLU that switches inside [v - h, v + h] makes the central difference average
 * two slopes, while one side still sees only the slope the backward pass computed.
 */
unsigned test_fd_check(const char *what, float *param, unsigned n, const float *analytic, test_loss_fn loss,
                       void *ctx, float h, double atol, double rtol, int kinks);

/* Records and prints a failed expectation; test_failures() is the exit status. */
void test_expect(int ok, const char *what);
unsigned test_failures(void);

#endif
