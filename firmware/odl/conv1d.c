/* Conv1D (Table I, row 2): cross-correlation as Keras computes it. The valid, stride-1 case (the paper's) has
 * register-tiled kernels beside their _ref twins; strides, dilation and padding take the _general kernels. */
#include <stddef.h>

#include "odl_layers.h"

/* a[m, j] = sum_{k, c} x[m + k, c] * w[k, c, j] + b[j]. In channels-last memory the K*C inputs of one
 * output are contiguous, so each output is one dot product kept in a register. The bias is added
 * after the sum, in the order TensorFlow's Conv + BiasAdd uses. The reference: the oracle of the fast
 * kernel below, which must equal it bit for bit. */
void odl_conv1d_forward_ref(const float *x, unsigned n, unsigned c, const float *w, const float *b,
                            unsigned k, unsigned f, float *a)
{
    const unsigned m_out = n - k + 1u;
    const unsigned kc = k * c;
    for (unsigned m = 0; m < m_out; ++m) {
        const float *xm = x + m * c;
        float *am = a + m * f;
        for (unsigned j = 0; j < f; ++j) {
            const float *wj = w + j;
            float acc = 0.0f;
            for (unsigned i = 0; i < kc; ++i) {
                acc += xm[i] * wj[i * f];
            }
            am[j] = acc + b[j];
        }
    }
}

/*
 * Cortex-M4F inner loops of the 4 x 4 tiles, in inline assembly: GCC 12 loads each of the 4 rows' operand
 * with its own single-register post-increment VLDM (2 cycles each, TRM table 7-1: VLDM 1 + N) and keeps
 * the loop at one step; here two steps share each row's load (VLDM of 2: 3 cycles for 2 floats) or a
 * contiguous panel comes in one VLDM of 4 (5 cycles), and the loop runs two steps. Each output keeps its own
 * accumulator and the reference's summation order, VMUL then VADD (two roundings, as -ffp-contract=off),
 * so the results are the C tiles' bit for bit; tests/board/test_unicorn_kernels.py compares them on the
 * simulated board. Register map: s0..s15 the accumulators acc[r][q] = s(4r + q), s16..s27 operands, s28
 * and s29 the products. The host (and any other target) compiles the C tiles instead.
 */
#if defined(__ARM_ARCH_7EM__) && defined(__ARM_FP) && !defined(ODL_NO_ASM)
#define ODL_M4F_TILES 1

/* Two products, then their two sums: each VADD reads a product made two instructions earlier, because an FP
 * result used by the very next instruction costs a cycle more (TRM table 7-1, note). */
#define ODL_MAC2(A0, A1, X, W0, W1)                                                                        \
    "vmul.f32 s28, " X ", " W0 "\n\tvmul.f32 s29, " X ", " W1 "\n\tvadd.f32 " A0 ", " A0                    \
    ", s28\n\tvadd.f32 " A1 ", " A1 ", s29\n\t"
#define ODL_MAC_ROW(A0, A1, A2, A3, X, W0, W1, W2, W3) ODL_MAC2(A0, A1, X, W0, W1) ODL_MAC2(A2, A3, X, W2, W3)
/* acc[r][q] += X_r * W_q for the 4 x 4 pairs. */
#define ODL_MAC_TILE(X0, X1, X2, X3, W0, W1, W2, W3)                   \
    ODL_MAC_ROW("s0", "s1", "s2", "s3", X0, W0, W1, W2, W3)             \
    ODL_MAC_ROW("s4", "s5", "s6", "s7", X1, W0, W1, W2, W3)             \
    ODL_MAC_ROW("s8", "s9", "s10", "s11", X2, W0, W1, W2, W3)           \
    ODL_MAC_ROW("s12", "s13", "s14", "s15", X3, W0, W1, W2, W3)
/* The 16 accumulators from a core register holding 0: 8 VMOVs of two (2 cycles each, TRM table 7-1). */
#define ODL_ZERO_ACCUMULATORS                                                                              \
    "vmov s0, s1, %[z], %[z]\n\tvmov s2, s3, %[z], %[z]\n\tvmov s4, s5, %[z], %[z]\n\t"                   \
    "vmov s6, s7, %[z], %[z]\n\tvmov s8, s9, %[z], %[z]\n\tvmov s10, s11, %[z], %[z]\n\t"                 \
    "vmov s12, s13, %[z], %[z]\n\tvmov s14, s15, %[z], %[z]\n\t"
/* The end of a two-steps-per-iteration loop (label 1), then into the odd last step unless n was even (label 3
 * after it). */
#define ODL_PAIRS_LOOP_END "subs %[n], %[n], #1\n\tbne 1b\n2:\n\tcmp %[odd], #0\n\tbeq 3f\n\t"
#define ODL_FPU_CLOBBERS                                                                                   \
    "s0", "s1", "s2", "s3", "s4", "s5", "s6", "s7", "s8", "s9", "s10", "s11", "s12", "s13", "s14", "s15",  \
        "s16", "s17", "s18", "s19", "s20", "s21", "s22", "s23", "s24", "s25", "s26", "s27", "s28", "s29",      \
        "memory", "cc"

/* acc[r][q] = sum_{i < n} x[r c + i] w[i f + q]: four rows of x against a 4-wide panel of w (the forward).
 * Per two steps: 4 VLDM of 2 (x), 2 VLDM of 4 (w), 64 VMUL/VADD: 91 cycles for 32 multiply-adds. */
static void odl_m4f_rows_by_panel(const float *x, unsigned c, const float *w, unsigned f, unsigned n, float *acc)
{
    const float *x0 = x, *x1 = x + c, *x2 = x + 2u * c, *x3 = x + 3u * c;
    unsigned pairs = n >> 1;
    const unsigned odd = n & 1u, fb = 4u * f, zero = 0u;
    __asm__ volatile(
        ODL_ZERO_ACCUMULATORS
        "cmp %[n], #0\n\t"
        "beq 2f\n"
        "1:\n\t"
        "vldmia %[x0]!, {s16, s17}\n\t"
        "vldmia %[x1]!, {s18, s19}\n\t"
        "vldmia %[x2]!, {s20, s21}\n\t"
        "vldmia %[x3]!, {s22, s23}\n\t"
        "vldmia %[w], {s24, s25, s26, s27}\n\t"
        "add %[w], %[w], %[fb]\n\t"
        ODL_MAC_TILE("s16", "s18", "s20", "s22", "s24", "s25", "s26", "s27")
        "vldmia %[w], {s24, s25, s26, s27}\n\t"
        "add %[w], %[w], %[fb]\n\t"
        ODL_MAC_TILE("s17", "s19", "s21", "s23", "s24", "s25", "s26", "s27")
        ODL_PAIRS_LOOP_END
        "vldr s16, [%[x0]]\n\t"
        "vldr s18, [%[x1]]\n\t"
        "vldr s20, [%[x2]]\n\t"
        "vldr s22, [%[x3]]\n\t"
        "vldmia %[w], {s24, s25, s26, s27}\n\t"
        ODL_MAC_TILE("s16", "s18", "s20", "s22", "s24", "s25", "s26", "s27")
        "3:\n\t"
        "vstmia %[acc], {s0-s15}\n\t"
        : [x0] "+r"(x0), [x1] "+r"(x1), [x2] "+r"(x2), [x3] "+r"(x3), [w] "+r"(w), [n] "+r"(pairs)
        : [fb] "r"(fb), [odd] "r"(odd), [acc] "r"(acc), [z] "r"(zero)
        : ODL_FPU_CLOBBERS);
}
/* acc[r][q] += sum_{j < n} a[r sa + j] b[q sb + j]: four rows against four rows, both contiguous in j (the input
 * gradient: rows of dL/da against rows of w), acc read and written back. Per two steps: 4 VLDM of 2 (a),
 * 8 single VLDM (b), 64 VMUL/VADD: 95 cycles for 32 multiply-adds. */
static void odl_m4f_rows_by_rows(const float *a, unsigned sa, const float *b, unsigned sb, unsigned n, float *acc)
{
    const float *a0 = a, *a1 = a + sa, *a2 = a + 2u * sa, *a3 = a + 3u * sa;
    const float *b0 = b, *b1 = b + sb, *b2 = b + 2u * sb, *b3 = b + 3u * sb;
    unsigned pairs = n >> 1;
    const unsigned odd = n & 1u;
    __asm__ volatile(
        "vldmia %[acc], {s0-s15}\n\t"
        "cmp %[n], #0\n\t"
        "beq 2f\n"
        "1:\n\t"
        "vldmia %[a0]!, {s16, s17}\n\t"
        "vldmia %[a1]!, {s18, s19}\n\t"
        "vldmia %[a2]!, {s20, s21}\n\t"
        "vldmia %[a3]!, {s22, s23}\n\t"
        "vldmia %[b0]!, {s24}\n\t"
        "vldmia %[b1]!, {s25}\n\t"
        "vldmia %[b2]!, {s26}\n\t"
        "vldmia %[b3]!, {s27}\n\t"
        ODL_MAC_TILE("s16", "s18", "s20", "s22", "s24", "s25", "s26", "s27")
        "vldmia %[b0]!, {s24}\n\t"
        "vldmia %[b1]!, {s25}\n\t"
        "vldmia %[b2]!, {s26}\n\t"
        "vldmia %[b3]!, {s27}\n\t"
        ODL_MAC_TILE("s17", "s19", "s21", "s23", "s24", "s25", "s26", "s27")
        ODL_PAIRS_LOOP_END
        "vldr s16, [%[a0]]\n\t"
        "vldr s18, [%[a1]]\n\t"
        "vldr s20, [%[a2]]\n\t"
        "vldr s22, [%[a3]]\n\t"
        "vldr s24, [%[b0]]\n\t"
        "vldr s25, [%[b1]]\n\t"
        "vldr s26, [%[b2]]\n\t"
        "vldr s27, [%[b3]]\n\t"
        ODL_MAC_TILE("s16", "s18", "s20", "s22", "s24", "s25", "s26", "s27")
        "3:\n\t"
        "vstmia %[acc], {s0-s15}\n\t"
        : [a0] "+r"(a0), [a1] "+r"(a1), [a2] "+r"(a2), [a3] "+r"(a3), [b0] "+r"(b0), [b1] "+r"(b1),
          [b2] "+r"(b2), [b3] "+r"(b3), [n] "+r"(pairs)
        : [odd] "r"(odd), [acc] "r"(acc)
        : ODL_FPU_CLOBBERS);
}

/* acc[r][q] = sum_{m < n} x[m c + r] d[m f + q]: two 4-wide panels walked down together (the weight gradient:
 * x rows against dL/da rows). Per step 2 VLDM of 4 (5 cycles each: VLDM's table cost, which needs no
 * assumption about back-to-back VLDRs pipelining), two pointer steps and 32 VMUL/VADD; two steps per loop:
 * 91 cycles for 32 multiply-adds. */
static void odl_m4f_panel_by_panel(const float *x, unsigned c, const float *d, unsigned f, unsigned n, float *acc)
{
    unsigned pairs = n >> 1;
    const unsigned odd = n & 1u, cb = 4u * c, fb = 4u * f, zero = 0u;
#define ODL_PANEL_STEP                                                                                     \
    "vldmia %[x], {s16, s17, s18, s19}\n\t"                                                                \
    "vldmia %[d], {s20, s21, s22, s23}\n\t"                                                                \
    "add %[x], %[x], %[cb]\n\t"                                                                            \
    "add %[d], %[d], %[fb]\n\t"                                                                            \
    ODL_MAC_TILE("s16", "s17", "s18", "s19", "s20", "s21", "s22", "s23")
    __asm__ volatile(
        ODL_ZERO_ACCUMULATORS
        "cmp %[n], #0\n\t"
        "beq 2f\n"
        "1:\n\t"
        ODL_PANEL_STEP
        ODL_PANEL_STEP
        ODL_PAIRS_LOOP_END
        ODL_PANEL_STEP
        "3:\n\t"
        "vstmia %[acc], {s0-s15}\n\t"
        : [x] "+r"(x), [d] "+r"(d), [n] "+r"(pairs)
        : [cb] "r"(cb), [fb] "r"(fb), [odd] "r"(odd), [acc] "r"(acc), [z] "r"(zero)
        : ODL_FPU_CLOBBERS);
#undef ODL_PANEL_STEP
}
#endif

/* One row band of a kernel's tiles: ROWS rows by the N_COLS columns counted in COL, 4 columns at a time
 * (TILE44() for a 4-row band: the assembly tile on the Cortex-M4F), then the remaining columns one by one. */
#define ODL_TILE_BAND(ROWS, COL, N_COLS, TILE, TILE44)                                                     \
    do {                                                                                                   \
        unsigned COL = 0;                                                                                  \
        for (; COL + 4u <= (N_COLS); COL += 4u) {                                                          \
            if ((ROWS) == 4u) {                                                                            \
                TILE44();                                                                                  \
            } else {                                                                                       \
                TILE(ROWS, 4u);                                                                            \
            }                                                                                              \
        }                                                                                                  \
        for (; COL < (N_COLS); ++COL) {                                                                    \
            TILE(ROWS, 1u);                                                                                \
        }                                                                                                  \
    } while (0)

/* The bands of rows I = 0 .. N-1: 4 rows at a time, then 2, then 1; ROWS(R) computes the band of R rows at I. */
#define ODL_ROW_BANDS(I, N, ROWS)                                                                          \
    do {                                                                                                   \
        unsigned I = 0;                                                                                    \
        for (; I + 4u <= (N); I += 4u) {                                                                   \
            ROWS(4u);                                                                                      \
        }                                                                                                  \
        for (; I + 2u <= (N); I += 2u) {                                                                   \
            ROWS(2u);                                                                                      \
        }                                                                                                  \
        for (; I < (N); ++I) {                                                                             \
            ROWS(1u);                                                                                      \
        }                                                                                                  \
    } while (0)

/* One tile of the fast forward: ROWS output positions x COLS filters, each output with its own accumulator
 * summed over i = 0 .. kc-1 in the reference's order (so the result is the reference's, bit for bit, with
 * -ffp-contract=off), but every x[] and w[] load shared by the tile: 2 x loads and 4 contiguous w loads feed
 * 8 multiply-adds in the 2 x 4 tile, where the reference loads 2 floats per multiply-add. */
#define ODL_CONV_TILE(ROWS, COLS)                                                                          \
    do {                                                                                                   \
        float acc[ROWS][COLS] = {{0.0f}};                                                                  \
        for (unsigned i = 0; i < kc; ++i) {                                                                \
            const float *wi = w + i * f + j;                                                               \
            float wv[COLS];                                                                                \
            for (unsigned q = 0; q < (COLS); ++q) {                                                        \
                wv[q] = wi[q];                                                                             \
            }                                                                                              \
            for (unsigned r = 0; r < (ROWS); ++r) {                                                        \
                const float xv = x[(m + r) * c + i];                                                       \
                for (unsigned q = 0; q < (COLS); ++q) {                                                    \
                    acc[r][q] += xv * wv[q];                                                               \
                }                                                                                          \
            }                                                                                              \
        }                                                                                                  \
        for (unsigned r = 0; r < (ROWS); ++r) {                                                            \
            for (unsigned q = 0; q < (COLS); ++q) {                                                        \
                a[(m + r) * f + j + q] = acc[r][q] + b[j + q];                                             \
            }                                                                                              \
        }                                                                                                  \
    } while (0)

#ifdef ODL_M4F_TILES
#define ODL_CONV_TILE44()                                                                                  \
    do {                                                                                                   \
        float acc[16];                                                                                     \
        odl_m4f_rows_by_panel(x + m * c, c, w + j, f, kc, acc);                                            \
        for (unsigned r = 0; r < 4u; ++r) {                                                                \
            for (unsigned q = 0; q < 4u; ++q) {                                                            \
                a[(m + r) * f + j + q] = acc[4u * r + q] + b[j + q];                                       \
            }                                                                                              \
        }                                                                                                  \
    } while (0)
#else
#define ODL_CONV_TILE44() ODL_CONV_TILE(4u, 4u)
#endif

/* The filters of ROWS output positions from m: 4-filter tiles, then the remaining filters one by one. */
#define ODL_CONV_ROWS(ROWS) ODL_TILE_BAND(ROWS, j, f, ODL_CONV_TILE, ODL_CONV_TILE44)

/* 4 x 4 tiles: 16 accumulators, 4 weights and one input in the FPU's 32 registers; 8 loads per 16
 * multiply-adds. The last 1 to 3 positions take 2- and 1-row tiles. */
void odl_conv1d_forward(const float *x, unsigned n, unsigned c, const float *w, const float *b, unsigned k,
                        unsigned f, float *a)
{
    const unsigned m_out = n - k + 1u;
    const unsigned kc = k * c;
    ODL_ROW_BANDS(m, m_out, ODL_CONV_ROWS);
}

/* dL/dx = conv(pad(dL/da), flip(w)) (the paper's eq. 5): dx[t, c] = sum_{k, j} da[t - k, j] w[k, c, j].
 * Instead of materialising the K-1 zeros of padding on each side, the k range is clipped to the rows
 * of da that exist, which is the same sum without the zero terms. The reference of the fast kernel below. */
void odl_conv1d_backward_input_ref(const float *da, unsigned n, unsigned c, const float *w, unsigned k,
                                   unsigned f, float *dx)
{
    const unsigned m_out = n - k + 1u;
    for (unsigned t = 0; t < n; ++t) {
        const unsigned k_lo = (t + 1u > m_out) ? t + 1u - m_out : 0u;
        const unsigned k_hi = (t < k - 1u) ? t : k - 1u;
        for (unsigned ch = 0; ch < c; ++ch) {
            float acc = 0.0f;
            for (unsigned kk = k_lo; kk <= k_hi; ++kk) {
                const float *dam = da + (t - kk) * f;
                const float *wk = w + (kk * c + ch) * f;
                for (unsigned j = 0; j < f; ++j) {
                    acc += dam[j] * wk[j];
                }
            }
            dx[t * c + ch] = acc;
        }
    }
}

/* One tile of the fast input gradient: ROWS consecutive positions t (sharing one tap range) x COLS channels,
 * each dx[t, ch] summed over kk, then j, in the reference's order, the da[] and w[] loads shared. */
#define ODL_DX_TILE(ROWS, COLS)                                                                            \
    do {                                                                                                   \
        float acc[ROWS][COLS] = {{0.0f}};                                                                  \
        for (unsigned kk = k_lo; kk <= k_hi; ++kk) {                                                       \
            const float *wk = w + (kk * c + ch) * f;                                                       \
            const float *dk = da + (t - kk) * f;                                                           \
            for (unsigned j = 0; j < f; ++j) {                                                             \
                float dv[ROWS];                                                                            \
                for (unsigned r = 0; r < (ROWS); ++r) {                                                    \
                    dv[r] = dk[r * f + j];                                                                 \
                }                                                                                          \
                for (unsigned q = 0; q < (COLS); ++q) {                                                    \
                    const float wv = wk[q * f + j];                                                        \
                    for (unsigned r = 0; r < (ROWS); ++r) {                                                \
                        acc[r][q] += dv[r] * wv;                                                           \
                    }                                                                                      \
                }                                                                                          \
            }                                                                                              \
        }                                                                                                  \
        for (unsigned r = 0; r < (ROWS); ++r) {                                                            \
            for (unsigned q = 0; q < (COLS); ++q) {                                                        \
                dx[(t + r) * c + ch + q] = acc[r][q];                                                      \
            }                                                                                              \
        }                                                                                                  \
    } while (0)

#ifdef ODL_M4F_TILES
#define ODL_DX_TILE44()                                                                                    \
    do {                                                                                                   \
        float acc[16] = {0.0f};                                                                            \
        for (unsigned kk = k_lo; kk <= k_hi; ++kk) {                                                       \
            odl_m4f_rows_by_rows(da + (t - kk) * f, f, w + (kk * c + ch) * f, f, f, acc);                  \
        }                                                                                                  \
        for (unsigned r = 0; r < 4u; ++r) {                                                                \
            for (unsigned q = 0; q < 4u; ++q) {                                                            \
                dx[(t + r) * c + ch + q] = acc[4u * r + q];                                                \
            }                                                                                              \
        }                                                                                                  \
    } while (0)
#else
#define ODL_DX_TILE44() ODL_DX_TILE(4u, 4u)
#endif

/* The channels of ROWS positions from t that share the tap range [k_lo, k_hi]. */
#define ODL_DX_ROWS(ROWS) ODL_TILE_BAND(ROWS, ch, c, ODL_DX_TILE, ODL_DX_TILE44)

void odl_conv1d_backward_input(const float *da, unsigned n, unsigned c, const float *w, unsigned k, unsigned f,
                               float *dx)
{
    const unsigned m_out = n - k + 1u;
    for (unsigned t = 0; t < n;) {
        const unsigned k_lo = (t + 1u > m_out) ? t + 1u - m_out : 0u;
        const unsigned k_hi = (t < k - 1u) ? t : k - 1u;
        /* Positions share a tile when they have the same taps: between the edges, t in [k-1, m_out-1]. */
        const unsigned shared = (t >= k - 1u && t < m_out) ? m_out - t : 1u;
        if (shared >= 4u) {
            ODL_DX_ROWS(4u);
            t += 4u;
        } else if (shared >= 2u) {
            ODL_DX_ROWS(2u);
            t += 2u;
        } else {
            ODL_DX_ROWS(1u);
            t += 1u;
        }
    }
}

/* dL/dw = conv(x, dL/da): grad_w[k, c, j] += sum_m x[m + k, c] da[m, j]; grad_b[j] += sum_m da[m, j].
 * The per-sample sum is formed first and then added to the accumulator, so one sample's rounding
 * does not depend on what was accumulated before it. The reference of the fast kernel below. */
void odl_conv1d_backward_params_ref(const float *da, const float *x, unsigned n, unsigned c, unsigned k,
                                    unsigned f, float *grad_w, float *grad_b)
{
    const unsigned m_out = n - k + 1u;
    const unsigned kc = k * c;
    for (unsigned i = 0; i < kc; ++i) {
        for (unsigned j = 0; j < f; ++j) {
            float acc = 0.0f;
            for (unsigned m = 0; m < m_out; ++m) {
                acc += x[m * c + i] * da[m * f + j];
            }
            grad_w[i * f + j] += acc;
        }
    }
    odl_bias_gradient_ref(da, m_out, f, grad_b);
}

/* One tile of the fast weight gradient: ROWS consecutive (tap, channel) rows i x COLS filters, each weight's
 * sum over m = 0 .. m_out-1 in the reference's order, its x[] and da[] loads shared by the tile. */
#define ODL_GRAD_TILE(ROWS, COLS)                                                                          \
    do {                                                                                                   \
        float acc[ROWS][COLS] = {{0.0f}};                                                                  \
        for (unsigned m = 0; m < m_out; ++m) {                                                             \
            const float *dm = da + m * f + j;                                                              \
            float dv[COLS];                                                                                \
            for (unsigned q = 0; q < (COLS); ++q) {                                                        \
                dv[q] = dm[q];                                                                             \
            }                                                                                              \
            for (unsigned r = 0; r < (ROWS); ++r) {                                                        \
                const float xv = x[m * c + i + r];                                                         \
                for (unsigned q = 0; q < (COLS); ++q) {                                                    \
                    acc[r][q] += xv * dv[q];                                                               \
                }                                                                                          \
            }                                                                                              \
        }                                                                                                  \
        for (unsigned r = 0; r < (ROWS); ++r) {                                                            \
            for (unsigned q = 0; q < (COLS); ++q) {                                                        \
                grad_w[(i + r) * f + j + q] += acc[r][q];                                                  \
            }                                                                                              \
        }                                                                                                  \
    } while (0)

#ifdef ODL_M4F_TILES
#define ODL_GRAD_TILE44()                                                                                  \
    do {                                                                                                   \
        float acc[16];                                                                                     \
        odl_m4f_panel_by_panel(x + i, c, da + j, f, m_out, acc);                                           \
        for (unsigned r = 0; r < 4u; ++r) {                                                                \
            for (unsigned q = 0; q < 4u; ++q) {                                                            \
                grad_w[(i + r) * f + j + q] += acc[4u * r + q];                                            \
            }                                                                                              \
        }                                                                                                  \
    } while (0)
#else
#define ODL_GRAD_TILE44() ODL_GRAD_TILE(4u, 4u)
#endif

/* The filters of ROWS (tap, channel) rows from i. */
#define ODL_GRAD_ROWS(ROWS) ODL_TILE_BAND(ROWS, j, f, ODL_GRAD_TILE, ODL_GRAD_TILE44)

void odl_conv1d_backward_params(const float *da, const float *x, unsigned n, unsigned c, unsigned k,
                                unsigned f, float *grad_w, float *grad_b)
{
    const unsigned m_out = n - k + 1u;
    const unsigned kc = k * c;
    ODL_ROW_BANDS(i, kc, ODL_GRAD_ROWS);
    odl_bias_gradient(da, m_out, f, grad_b);
}

/*
 * The general Conv1D: stride s, dilation d, `pad` zero positions before the input (Keras 'same' and
 * 'causal'; the padding after it follows from m_out). Output m reads input rows t = m s - pad + kk d; rows
 * outside [0, n) are the zero padding and contribute nothing, so the loops run only over the taps (or the
 * outputs) whose rows exist, computed once per loop instead of tested per term. The kernels above are
 * the s = d = 1, no-padding case, kept apart because that loop is the hot path of every paper-style model.
 */

/* grad_b[j] += sum_m da[m, j]: the bias gradient of every convolution, the sample's sum formed first.
 * grad_b NULL: a layer without bias. The reference of the blocked version below. */
void odl_bias_gradient_ref(const float *da, unsigned m_out, unsigned f, float *grad_b)
{
    if (grad_b == NULL) {
        return;
    }
    for (unsigned j = 0; j < f; ++j) {
        float acc = 0.0f;
        for (unsigned m = 0; m < m_out; ++m) {
            acc += da[m * f + j];
        }
        grad_b[j] += acc;
    }
}

void odl_bias_gradient(const float *da, unsigned m_out, unsigned f, float *grad_b)
{
    if (grad_b == NULL) {
        return;
    }
    unsigned j = 0;
    /* Four filters at a time: one row pointer, four loads side by side, each filter its own sum in m order. */
    for (; j + 4u <= f; j += 4u) {
        float acc0 = 0.0f, acc1 = 0.0f, acc2 = 0.0f, acc3 = 0.0f;
        for (unsigned m = 0; m < m_out; ++m) {
            const float *row = da + m * f + j;
            acc0 += row[0];
            acc1 += row[1];
            acc2 += row[2];
            acc3 += row[3];
        }
        grad_b[j] += acc0;
        grad_b[j + 1u] += acc1;
        grad_b[j + 2u] += acc2;
        grad_b[j + 3u] += acc3;
    }
    for (; j < f; ++j) {
        float acc = 0.0f;
        for (unsigned m = 0; m < m_out; ++m) {
            acc += da[m * f + j];
        }
        grad_b[j] += acc;
    }
}

/* The taps [lo, hi) of output m whose input row exists. */
void odl_tap_range(unsigned m, unsigned n, unsigned k, const odl_window_t *g, unsigned *lo, unsigned *hi)
{
    const long first_row = (long)m * (long)g->stride - (long)g->pad; /* the row of tap 0 */
    const long d = (long)g->dilation;
    const long a = first_row >= 0 ? 0 : (-first_row + d - 1) / d;
    const long room = (long)n - first_row;
    long b = room <= 0 ? 0 : (room + d - 1) / d;
    b = b > (long)k ? (long)k : b;
    *hi = (unsigned)b;
    *lo = a > b ? (unsigned)b : (unsigned)a;
}

/* The outputs [lo, hi) whose tap kk reads a row that exists. */
void odl_output_range(unsigned kk, unsigned n, unsigned m_out, const odl_window_t *g, unsigned *lo, unsigned *hi)
{
    const long row0 = (long)kk * (long)g->dilation - (long)g->pad; /* the row output 0 reads at tap kk */
    const long s = (long)g->stride;
    const long a = row0 >= 0 ? 0 : (-row0 + s - 1) / s;
    const long room = (long)n - row0;
    long b = room <= 0 ? 0 : (room + s - 1) / s;
    b = b > (long)m_out ? (long)m_out : b;
    *hi = (unsigned)b;
    *lo = a > b ? (unsigned)b : (unsigned)a;
}

void odl_conv1d_forward_general(const float *x, unsigned n, unsigned c, const float *w, const float *b,
                                unsigned k, unsigned f, const odl_window_t *g, unsigned m_out, float *a)
{
    for (unsigned m = 0; m < m_out; ++m) {
        unsigned lo, hi;
        odl_tap_range(m, n, k, g, &lo, &hi);
        /* The row of tap lo (not formed when no tap reads a row: it would point before x). */
        const float *xm = lo < hi ? x + (m * g->stride + lo * g->dilation - g->pad) * c : x;
        for (unsigned j = 0; j < f; ++j) {
            float acc = 0.0f;
            for (unsigned kk = lo; kk < hi; ++kk) {
                const float *xt = xm + (kk - lo) * g->dilation * c;
                const float *wk = w + kk * c * f + j;
                for (unsigned ch = 0; ch < c; ++ch) {
                    acc += xt[ch] * wk[ch * f];
                }
            }
            a[m * f + j] = acc + b[j];
        }
    }
}

/* dx[t, c] = sum over the (m, kk) that read row t of da[m, j] w[kk, c, j]. */
void odl_conv1d_backward_input_general(const float *da, unsigned n, unsigned c, const float *w, unsigned k,
                                       unsigned f, const odl_window_t *g, unsigned m_out, float *dx)
{
    for (unsigned i = 0; i < n * c; ++i) {
        dx[i] = 0.0f;
    }
    for (unsigned m = 0; m < m_out; ++m) {
        const float *dam = da + m * f;
        unsigned lo, hi;
        odl_tap_range(m, n, k, g, &lo, &hi);
        for (unsigned kk = lo; kk < hi; ++kk) {
            float *dxt = dx + (m * g->stride + kk * g->dilation - g->pad) * c;
            for (unsigned ch = 0; ch < c; ++ch) {
                const float *wk = w + (kk * c + ch) * f;
                float acc = 0.0f;
                for (unsigned j = 0; j < f; ++j) {
                    acc += dam[j] * wk[j];
                }
                dxt[ch] += acc;
            }
        }
    }
}

/* grad_w[kk, c, j] += sum_m x[m s - pad + kk d, c] da[m, j] over the rows that exist; grad_b as above. */
void odl_conv1d_backward_params_general(const float *da, const float *x, unsigned n, unsigned c, unsigned k,
                                        unsigned f, const odl_window_t *g, unsigned m_out, float *grad_w,
                                        float *grad_b)
{
    const unsigned row_step = g->stride * c;
    for (unsigned kk = 0; kk < k; ++kk) {
        unsigned lo, hi;
        odl_output_range(kk, n, m_out, g, &lo, &hi);
        const float *x0 = lo < hi ? x + (lo * g->stride + kk * g->dilation - g->pad) * c : x; /* output lo's row */
        for (unsigned ch = 0; ch < c; ++ch) {
            for (unsigned j = 0; j < f; ++j) {
                float acc = 0.0f;
                for (unsigned m = lo; m < hi; ++m) {
                    acc += x0[(m - lo) * row_step + ch] * da[m * f + j];
                }
                grad_w[(kk * c + ch) * f + j] += acc;
            }
        }
    }
    odl_bias_gradient(da, m_out, f, grad_b);
}
