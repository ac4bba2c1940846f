/* Activations (Table I, row 3): ReLU and softmax, and the ReLU6, LeakyReLU, tanh and sigmoid of HAR models.
 * Each backward follows TensorFlow's gradient op (Relu6Grad, LeakyReluGrad, TanhGrad, SigmoidGrad). */
#include <math.h>

#include "odl_layers.h"

/* The mask records output > 0, which is where TensorFlow's ReluGrad lets the gradient through. One bit
 * per element costs 1/32 of keeping the pre-activation for the backward pass. NaN passes through, as in
 * TensorFlow, so an overflow upstream is still seen at the loss instead of being silently zeroed. */
void odl_relu_forward_ref(const float *x, unsigned n, float *a, uint32_t *mask)
{
    for (unsigned w = 0; w < ODL_MASK_WORDS(n); ++w) {
        const unsigned end = (w * 32u + 32u < n) ? w * 32u + 32u : n;
        uint32_t bits = 0u;
        for (unsigned i = w * 32u; i < end; ++i) {
            const float v = x[i];
            if (v > 0.0f) {
                bits |= 1u << (i & 31u);
            }
            a[i] = (v <= 0.0f) ? 0.0f : v;
        }
        if (mask != 0) {
            mask[w] = bits;
        }
    }
}

#if defined(__ARM_ARCH_7EM__) && defined(__ARM_FP) && !defined(ODL_NO_ASM)
/* The reference's loop over one mask word, from one compare: after VCMP, GT is v > 0 and LS is v <= 0, both
 * false for NaN, exactly the reference's two tests, which GCC compiles as two VCMPs and two VMRSs. 14 cycles
 * an element instead of 19 (TRM tables 3-1 and 7-1). */
static uint32_t odl_m4f_relu_word(const float *x, unsigned count, float *a)
{
    uint32_t bits = 0u, bit = 1u;
    const uint32_t zero = 0u;
    __asm__ volatile(
        "vmov s1, %[z]\n"
        "1:\n\t"
        "vldmia %[x]!, {s0}\n\t"
        "vcmpe.f32 s0, #0\n\t"
        "vmrs APSR_nzcv, fpscr\n\t"
        "it gt\n\t"
        "orrgt %[bits], %[bits], %[bit]\n\t"
        "it ls\n\t"
        "vmovls.f32 s0, s1\n\t"
        "vstmia %[a]!, {s0}\n\t"
        "lsl %[bit], %[bit], #1\n\t"
        "subs %[n], %[n], #1\n\t"
        "bne 1b\n\t"
        : [x] "+r"(x), [a] "+r"(a), [n] "+r"(count), [bits] "+r"(bits), [bit] "+r"(bit)
        : [z] "r"(zero)
        : "s0", "s1", "memory", "cc");
    return bits;
}

void odl_relu_forward(const float *x, unsigned n, float *a, uint32_t *mask)
{
    for (unsigned w = 0; w < ODL_MASK_WORDS(n); ++w) {
        const unsigned start = w * 32u;
        const unsigned end = (start + 32u < n) ? start + 32u : n;
        const uint32_t bits = odl_m4f_relu_word(x + start, end - start, a + start);
        if (mask != 0) {
            mask[w] = bits;
        }
    }
}
#else
void odl_relu_forward(const float *x, unsigned n, float *a, uint32_t *mask)
{
    odl_relu_forward_ref(x, n, a, mask);
}
#endif

/* Only the elements whose mask bit is clear are touched: each word's clear bits are found one by one (count
 * trailing zeros: RBIT and CLZ), so an element the ReLU passed costs nothing. Same stores as the reference. */
void odl_relu_backward_ref(float *da, unsigned n, const uint32_t *mask)
{
    for (unsigned i = 0; i < n; ++i) {
        if (((mask[i >> 5] >> (i & 31u)) & 1u) == 0u) {
            da[i] = 0.0f;
        }
    }
}

void odl_relu_backward(float *da, unsigned n, const uint32_t *mask)
{
    for (unsigned w = 0; w < ODL_MASK_WORDS(n); ++w) {
        const unsigned count = (w * 32u + 32u < n) ? 32u : n - w * 32u;
        uint32_t zeros = ~mask[w] & (count == 32u ? 0xFFFFFFFFu : (1u << count) - 1u);
        float *base = da + w * 32u;
        while (zeros != 0u) {
            base[__builtin_ctz(zeros)] = 0.0f;
            zeros &= zeros - 1u;
        }
    }
}

void odl_relu6_forward(const float *x, unsigned n, float *a, uint32_t *mask)
{
    for (unsigned w = 0; w < ODL_MASK_WORDS(n); ++w) {
        const unsigned end = (w * 32u + 32u < n) ? w * 32u + 32u : n;
        uint32_t bits = 0u;
        for (unsigned i = w * 32u; i < end; ++i) {
            const float v = x[i];
            if (v > 0.0f && v < 6.0f) {
                bits |= 1u << (i & 31u);
            }
            a[i] = (v <= 0.0f) ? 0.0f : (v >= 6.0f ? 6.0f : v);
        }
        if (mask != 0) {
            mask[w] = bits;
        }
    }
}

void odl_leaky_relu_forward(const float *x, unsigned n, float alpha, float *a, uint32_t *mask)
{
    for (unsigned w = 0; w < ODL_MASK_WORDS(n); ++w) {
        const unsigned end = (w * 32u + 32u < n) ? w * 32u + 32u : n;
        uint32_t bits = 0u;
        for (unsigned i = w * 32u; i < end; ++i) {
            const float v = x[i];
            if (v > 0.0f) {
                bits |= 1u << (i & 31u);
            }
            a[i] = (v > 0.0f) ? v : v * alpha;
        }
        if (mask != 0) {
            mask[w] = bits;
        }
    }
}

void odl_leaky_relu_backward(float *da, unsigned n, float alpha, const uint32_t *mask)
{
    for (unsigned i = 0; i < n; ++i) {
        if (((mask[i >> 5] >> (i & 31u)) & 1u) == 0u) {
            da[i] = da[i] * alpha;
        }
    }
}

void odl_tanh_forward(const float *x, unsigned n, float *a, float *saved)
{
    for (unsigned i = 0; i < n; ++i) {
        a[i] = tanhf(x[i]);
        if (saved != 0) {
            saved[i] = a[i];
        }
    }
}

void odl_tanh_backward(float *da, unsigned n, const float *y)
{
    for (unsigned i = 0; i < n; ++i) {
        da[i] = da[i] * (1.0f - y[i] * y[i]);
    }
}

void odl_sigmoid_forward(const float *x, unsigned n, float *a, float *saved)
{
    for (unsigned i = 0; i < n; ++i) {
        a[i] = 1.0f / (1.0f + expf(-x[i]));
        if (saved != 0) {
            saved[i] = a[i];
        }
    }
}

void odl_sigmoid_backward(float *da, unsigned n, const float *y)
{
    for (unsigned i = 0; i < n; ++i) {
        da[i] = da[i] * (y[i] * (1.0f - y[i]));
    }
}

float odl_max(const float *z, unsigned n)
{
    float zmax = z[0];
    for (unsigned i = 1; i < n; ++i) {
        if (z[i] > zmax) {
            zmax = z[i];
        }
    }
    return zmax;
}

/* p_i = exp(z_i - max z) / sum_j exp(z_j - max z); the shift keeps exp from overflowing. */
void odl_softmax_forward(const float *z, unsigned n, float *p)
{
    const float zmax = odl_max(z, n);
    float sum = 0.0f;
    for (unsigned i = 0; i < n; ++i) {
        p[i] = expf(z[i] - zmax);
        sum += p[i];
    }
    for (unsigned i = 0; i < n; ++i) {
        p[i] = p[i] / sum;
    }
}
