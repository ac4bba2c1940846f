#include "testutil.h"

#include <math.h>
#include <stdio.h>

static unsigned failures;

static uint64_t next(test_rng_t *rng)
{
    /* xorshift64*: deterministic across platforms, so a failing case can be rerun. */
    rng->state ^= rng->state >> 12;
    rng->state ^= rng->state << 25;
    rng->state ^= rng->state >> 27;
    return rng->state * 2685821657736338717ull;
}

float test_uniform(test_rng_t *rng, float lo, float hi)
{
    const double u = (double)(next(rng) >> 11) / 9007199254740992.0;
    return (float)(lo + (hi - lo) * u);
}

unsigned test_int(test_rng_t *rng, unsigned lo, unsigned hi)
{
    return lo + (unsigned)(next(rng) % (uint64_t)(hi - lo + 1u));
}

void test_fill(test_rng_t *rng, float *v, unsigned n, float lo, float hi)
{
    for (unsigned i = 0; i < n; ++i) {
        v[i] = test_uniform(rng, lo, hi);
    }
}

unsigned test_fd_check(const char *what, float *param, unsigned n, const float *analytic, test_loss_fn loss,
                       void *ctx, float h, double atol, double rtol, int kinks)
{
    unsigned bad = 0;
    for (unsigned i = 0; i < n; ++i) {
        const float v = param[i];
        const float up = v + h;
        const float down = v - h;
        param[i] = up;
        const double l_up = loss(ctx);
        param[i] = down;
        const double l_down = loss(ctx);
        param[i] = v;
        /* Divide by the step actually taken in float, not by the nominal 2h. */
        const double fd = (l_up - l_down) / ((double)up - (double)down);
        const double tol = atol + rtol * fabs((double)analytic[i]);
        int ok = fabs(fd - (double)analytic[i]) <= tol;
        if (!ok && kinks) {
            const double l_mid = loss(ctx);
            const double fwd = (l_up - l_mid) / ((double)up - (double)v);
            const double bwd = (l_mid - l_down) / ((double)v - (double)down);
            ok = fabs(fwd - (double)analytic[i]) <= tol || fabs(bwd - (double)analytic[i]) <= tol;
        }
        if (!ok) {
            if (bad < 5) {
                printf("  %s[%u]: finite difference %.7g, backward %.7g\n", what, i, fd, (double)analytic[i]);
            }
            ++bad;
        }
    }
    if (bad != 0) {
        printf("FAIL %s: %u of %u elements outside %.1e + %.1e * |g|\n", what, bad, n, atol, rtol);
        ++failures;
    }
    return bad;
}

void test_expect(int ok, const char *what)
{
    if (!ok) {
        printf("FAIL %s\n", what);
        ++failures;
    }
}

unsigned test_failures(void)
{
    return failures;
}
