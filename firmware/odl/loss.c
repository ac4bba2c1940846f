/* Categorical cross-entropy of a softmax output. Keras 3 computes it from the logits
 * (tf.nn.softmax_cross_entropy_with_logits), not from clipped probabilities, so this does too:
 * the loss stays finite and the gradient stays p - t even when a probability underflows. */
#include <math.h>

#include "odl_layers.h"

/* L = log(sum_j exp(z_j - max z)) - (z_label - max z) */
float odl_cross_entropy(const float *z, unsigned n, unsigned label)
{
    const float zmax = odl_max(z, n);
    float sum = 0.0f;
    for (unsigned i = 0; i < n; ++i) {
        sum += expf(z[i] - zmax);
    }
    return logf(sum) - (z[label] - zmax);
}

/* Table I: dL/dz = a - t, with t the one-hot label. */
void odl_cross_entropy_backward(const float *p, unsigned n, unsigned label, float *dz)
{
    for (unsigned i = 0; i < n; ++i) {
        dz[i] = (i == label) ? p[i] - 1.0f : p[i];
    }
}
