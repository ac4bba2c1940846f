/* AvgPool1D and GlobalAveragePooling1D (Table I, rows 4 and 5), MaxPool1D and GlobalMaxPooling1D. The
 * averages divide by the window length, as TensorFlow's AvgPool, Mean and their gradients do, rather than
 * multiplying by a reciprocal; except that for a power-of-two length the reciprocal is exact and
 * v * (1/p) == v / p for every v, so the kernels multiply (VMUL 1 cycle, VDIV 14). */
#include "odl_layers.h"

/* a[m, c] = (1/p) sum_{i<p} x[m p + i, c] for m < floor(n / p); trailing inputs are dropped (Keras
 * 'valid' pooling). a may be x (the forward pass in place, memory_plan.py): output m lands at or below the
 * window it reads, which later outputs read no more. */
/* The references of the two kernels below: the loop over the window for every p, a division for every p. */
void odl_avgpool1d_forward_ref(const float *x, unsigned n, unsigned c, unsigned p, float *a)
{
    const unsigned m_out = n / p;
    const float div = (float)p;
    for (unsigned m = 0; m < m_out; ++m) {
        for (unsigned ch = 0; ch < c; ++ch) {
            float acc = 0.0f;
            for (unsigned i = 0; i < p; ++i) {
                acc += x[(m * p + i) * c + ch];
            }
            a[m * c + ch] = acc / div;
        }
    }
}

void odl_avgpool1d_backward_input_ref(const float *da, unsigned n, unsigned c, unsigned p, float *dx)
{
    const unsigned m_out = n / p;
    const float div = (float)p;
    for (unsigned m = 0; m < m_out; ++m) {
        for (unsigned ch = 0; ch < c; ++ch) {
            const float g = da[m * c + ch] / div;
            for (unsigned i = 0; i < p; ++i) {
                dx[(m * p + i) * c + ch] = g;
            }
        }
    }
    for (unsigned t = m_out * p * c; t < n * c; ++t) {
        dx[t] = 0.0f;
    }
}

void odl_avgpool1d_forward(const float *x, unsigned n, unsigned c, unsigned p, float *a)
{
    const unsigned m_out = n / p;
    const float div = (float)p;
    const float inv = 1.0f / div;
    const int exact = odl_is_power_of_two(p);
    if (p == 2u) { /* the usual window, without the loop over it: the same additions from 0 */
        for (unsigned m = 0; m < m_out; ++m) {
            const float *x0 = x + 2u * m * c;
            for (unsigned ch = 0; ch < c; ++ch) {
                a[m * c + ch] = ((0.0f + x0[ch]) + x0[c + ch]) * inv;
            }
        }
        return;
    }
    for (unsigned m = 0; m < m_out; ++m) {
        for (unsigned ch = 0; ch < c; ++ch) {
            float acc = 0.0f;
            for (unsigned i = 0; i < p; ++i) {
                acc += x[(m * p + i) * c + ch];
            }
            a[m * c + ch] = exact ? acc * inv : acc / div;
        }
    }
}

/* dL/dx[m p + i, c] = dL/da[m, c] / p; the dropped trailing inputs get a zero gradient. dx may be da (the
 * backward pass in place, memory_plan.py): the tail is beyond da, and the windows go from the last down,
 * each reading its gradients before it writes, at or above where it reads. */
void odl_avgpool1d_backward_input(const float *da, unsigned n, unsigned c, unsigned p, float *dx)
{
    const unsigned m_out = n / p;
    const float div = (float)p;
    const float inv = 1.0f / div;
    const int exact = odl_is_power_of_two(p);
    for (unsigned t = m_out * p * c; t < n * c; ++t) {
        dx[t] = 0.0f;
    }
    if (p == 2u) {
        for (unsigned m = m_out; m-- > 0u;) {
            float *dx0 = dx + 2u * m * c;
            for (unsigned ch = c; ch-- > 0u;) {
                const float g = da[m * c + ch] * inv;
                dx0[c + ch] = g;
                dx0[ch] = g;
            }
        }
    } else {
        for (unsigned m = m_out; m-- > 0u;) {
            for (unsigned ch = c; ch-- > 0u;) {
                const float g = exact ? da[m * c + ch] * inv : da[m * c + ch] / div;
                for (unsigned i = p; i-- > 0u;) {
                    dx[(m * p + i) * c + ch] = g;
                }
            }
        }
    }
}

/* a[c] = (1/n) sum_t x[t, c] */
void odl_gap1d_forward(const float *x, unsigned n, unsigned c, float *a)
{
    const float div = (float)n;
    for (unsigned ch = 0; ch < c; ++ch) {
        float acc = 0.0f;
        for (unsigned t = 0; t < n; ++t) {
            acc += x[t * c + ch];
        }
        a[ch] = acc / div;
    }
}

/* dL/dx[t, c] = dL/da[c] / n */
void odl_gap1d_backward_input(const float *da, unsigned n, unsigned c, float *dx)
{
    const float div = (float)n;
    for (unsigned ch = 0; ch < c; ++ch) {
        const float g = da[ch] / div;
        for (unsigned t = 0; t < n; ++t) {
            dx[t * c + ch] = g;
        }
    }
}

/* a[c] = max_t x[t, c]. `ties` (ODL_MASK_WORDS(n * c) words, may be NULL when no backward pass will need
 * it) gets bit t * c + ch set where x[t, ch] equals its channel's maximum: TensorFlow's gradient of a
 * reduce_max splits dL/da evenly between every input equal to the maximum, not only the first (unlike its
 * MaxPool gradient), so the backward pass needs all of them, which an argmax cannot hold. */
void odl_gmp1d_forward(const float *x, unsigned n, unsigned c, float *a, uint32_t *ties)
{
    for (unsigned ch = 0; ch < c; ++ch) {
        float best = x[ch];
        for (unsigned t = 1; t < n; ++t) {
            best = x[t * c + ch] > best ? x[t * c + ch] : best;
        }
        a[ch] = best;
    }
    if (ties == 0) {
        return;
    }
    for (unsigned w = 0; w < ODL_MASK_WORDS(n * c); ++w) {
        ties[w] = 0u;
    }
    unsigned i = 0;
    for (unsigned t = 0; t < n; ++t) {
        for (unsigned ch = 0; ch < c; ++ch, ++i) {
            if (x[i] == a[ch]) {
                ties[i / 32u] |= 1u << (i % 32u);
            }
        }
    }
}

/* dL/dx[t, c] = (1 / k) dL/da[c] where x[t, c] is one of the k maxima of channel c, 0 elsewhere: TensorFlow's
 * (indicator / k) * grad, in that order, so a single maximum passes dL/da unchanged. */
void odl_gmp1d_backward_input(const float *da, unsigned n, unsigned c, const uint32_t *ties, float *dx)
{
    for (unsigned ch = 0; ch < c; ++ch) {
        unsigned k = 0;
        for (unsigned t = 0; t < n; ++t) {
            const unsigned i = t * c + ch;
            k += (ties[i / 32u] >> (i % 32u)) & 1u;
        }
        const float share = (1.0f / (float)k) * da[ch];
        for (unsigned t = 0; t < n; ++t) {
            const unsigned i = t * c + ch;
            dx[i] = ((ties[i / 32u] >> (i % 32u)) & 1u) ? share : 0.0f;
        }
    }
}

/*
 * Strided and padded pools (Keras strides != pool_size, padding 'same'): window m covers the inputs
 * [m s - pad, m s - pad + p) that exist. AvgPool1D divides by how many exist (TensorFlow's 'same' average
 * leaves the padding out of the count); MaxPool1D ignores the padding. The two kernels above stay the
 * stride = p, no-padding case.
 */
void odl_pool_window(unsigned m, unsigned n, unsigned p, const odl_window_t *g, unsigned *lo, unsigned *hi)
{
    const unsigned long start = (unsigned long)m * g->stride;
    const unsigned long end = start + p;
    *lo = start < g->pad ? 0u : (unsigned)(start - g->pad);
    *hi = end <= g->pad ? 0u : (unsigned)(end - g->pad);
    if (*hi > n) {
        *hi = n;
    }
}

void odl_avgpool1d_forward_general(const float *x, unsigned n, unsigned c, unsigned p, const odl_window_t *g,
                                   unsigned m_out, float *a)
{
    for (unsigned m = 0; m < m_out; ++m) {
        unsigned lo, hi;
        odl_pool_window(m, n, p, g, &lo, &hi);
        const float div = (float)(hi - lo);
        for (unsigned ch = 0; ch < c; ++ch) {
            float acc = 0.0f;
            for (unsigned t = lo; t < hi; ++t) {
                acc += x[t * c + ch];
            }
            a[m * c + ch] = acc / div;
        }
    }
}

void odl_avgpool1d_backward_input_general(const float *da, unsigned n, unsigned c, unsigned p,
                                          const odl_window_t *g, unsigned m_out, float *dx)
{
    for (unsigned i = 0; i < n * c; ++i) {
        dx[i] = 0.0f;
    }
    for (unsigned m = 0; m < m_out; ++m) {
        unsigned lo, hi;
        odl_pool_window(m, n, p, g, &lo, &hi);
        const float div = (float)(hi - lo);
        for (unsigned ch = 0; ch < c; ++ch) {
            const float share = da[m * c + ch] / div;
            for (unsigned t = lo; t < hi; ++t) {
                dx[t * c + ch] += share;
            }
        }
    }
}

/* Where each output's maximum sat, as its offset in the window: ODL_INDEX_BITS(p) bits per output. */
static void put_index(uint32_t *words, unsigned bits, unsigned i, unsigned value)
{
    const unsigned per_word = 32u / bits;
    const unsigned shift = (i % per_word) * bits;
    const uint32_t field = ((1u << bits) - 1u) << shift;
    words[i / per_word] = (words[i / per_word] & ~field) | ((uint32_t)value << shift);
}

static unsigned get_index(const uint32_t *words, unsigned bits, unsigned i)
{
    const unsigned per_word = 32u / bits;
    return (words[i / per_word] >> ((i % per_word) * bits)) & ((1u << bits) - 1u);
}

/* a[m, c] = max over the window; the first maximum wins a tie, as in TensorFlow's MaxPool gradient, which
 * routes dL/da to exactly one input. `argmax` may be NULL when no backward pass will need it. */
void odl_maxpool1d_forward(const float *x, unsigned n, unsigned c, unsigned p, const odl_window_t *g,
                           unsigned m_out, float *a, uint32_t *argmax)
{
    const unsigned bits = ODL_INDEX_BITS(p);
    for (unsigned m = 0; m < m_out; ++m) {
        unsigned lo, hi;
        odl_pool_window(m, n, p, g, &lo, &hi);
        for (unsigned ch = 0; ch < c; ++ch) {
            unsigned best = lo;
            for (unsigned t = lo + 1u; t < hi; ++t) {
                if (x[t * c + ch] > x[best * c + ch]) {
                    best = t;
                }
            }
            a[m * c + ch] = x[best * c + ch];
            if (argmax != 0 && bits != 0u) {
                put_index(argmax, bits, m * c + ch, best - lo);
            }
        }
    }
}

void odl_maxpool1d_backward_input(const float *da, unsigned n, unsigned c, unsigned p, const odl_window_t *g,
                                  unsigned m_out, const uint32_t *argmax, float *dx)
{
    const unsigned bits = ODL_INDEX_BITS(p);
    for (unsigned i = 0; i < n * c; ++i) {
        dx[i] = 0.0f;
    }
    for (unsigned m = 0; m < m_out; ++m) {
        unsigned lo, hi;
        odl_pool_window(m, n, p, g, &lo, &hi);
        for (unsigned ch = 0; ch < c; ++ch) {
            const unsigned t = lo + (bits != 0u ? get_index(argmax, bits, m * c + ch) : 0u);
            dx[t * c + ch] += da[m * c + ch];
        }
    }
}
