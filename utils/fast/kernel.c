/* The fast trainer's CPU kernel: training steps of tied ReLU models, x' = ReLU(WᵀWx + b).
 *
 * `native.py` compiles it per shape and law (`cc -O3 -march=native -DNF=<features> -DNH=<hidden>
 * -DLAW=<law> -shared -fPIC`) and calls it through ctypes on torch tensors, from several threads, each
 * on its own range of instances. One instance at a time, all its steps run back to back with weights,
 * Adam moments and random state in cache. The arithmetic is `planes.py`'s (loss, hand-written
 * gradient, torch.optim.Adam with weight decay in the gradient), the laws `utils/data.py`'s
 * `*_from_uniform` maps; tests compare both with autograd.
 *
 * Samples go LANES = 8 at a time, sample l of a block in lane l of a vector type `vf` (one AVX
 * register), so the code reads like scalar code. Each lane of each instance has its own xoshiro128+
 * generator (Blackman and Vigna 2018) seeded by splitmix64 from the key and the lane's global index:
 * a stream depends on the key and the instance only, not on threads. Per-weight arrays are on the
 * heap (`train` returns 1 if that allocation fails), per-feature vectors on the stack.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* The laws, by the names utils/fast/laws.py passes as -DLAW=<name>. */
#define SPARSE_UNIFORM 0       /* feature f active when u_f < p_f, value low + (high - low) u_f / p_f */
#define HIERARCHICAL_PAIRS 1   /* parent when u_0 < p_1; child when also u_1 < p(child | parent) */
#define CORRELATED_PAIRS 2     /* pair k active when u_2k < p_k, values u_2k / p_k and u_2k+1 */
#define ANTICORRELATED_PAIRS 3 /* one uniform per pair: the first on [0, p), the second on [p, 2p) */

#if !defined(NF) || !defined(NH) || !defined(LAW)
#error "compile with -DNF=<features> -DNH=<hidden dimensions> -DLAW=<law name>"
#endif

#define LANES 8
typedef float vf __attribute__((vector_size(4 * LANES)));
typedef int32_t vi __attribute__((vector_size(4 * LANES)));
typedef uint32_t vu __attribute__((vector_size(4 * LANES)));
static const vi LANE_INDEX = {0, 1, 2, 3, 4, 5, 6, 7};

static inline vf splat(float a) { return (vf){0} + a; }
/* v where mask is true (all bits set), 0 elsewhere: comparisons give such masks. */
static inline vf where(vi mask, vf v) { return (vf)(mask & (vi)v); }
static inline float lane_sum(vf v) {
    float total = 0.0f;
    for (int l = 0; l < LANES; l++) total += v[l];
    return total;
}

#if LAW < SPARSE_UNIFORM || LAW > ANTICORRELATED_PAIRS
#error "unknown LAW"
#endif
/* Uniforms per sample NU and parameters per instance NP of each law. */
#define NU (LAW == HIERARCHICAL_PAIRS ? 2 : LAW == ANTICORRELATED_PAIRS ? NF / 2 : NF)
#define NP (LAW == SPARSE_UNIFORM ? NF : LAW == HIERARCHICAL_PAIRS ? 2 : NF / 2)
const int64_t n_uniforms = NU, n_params = NP; /* for native.py's argument checks */

#define WEIGHTS sizeof(float[NH][NF])
#define SUMS sizeof(vf[NH][NF])

typedef struct { vu s[4]; } rng_t; /* xoshiro128+ states of an instance's LANES generators: (4, LANES) uint32 */

/* One uniform on [0, 1) per lane, advancing every lane's generator once. */
static inline vf next_uniform(rng_t *r) {
    vu *s = r->s, result = s[0] + s[3], t = s[1] << 9;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = (s[3] << 11) | (s[3] >> 21);
    return __builtin_convertvector((vi)(result >> 8), vf) * 0x1p-24f; /* upper 24 bits, exact */
}

/* A block of LANES samples of the law with parameters p[NP]: x[f] holds feature f of each sample.
 * u·(1/p) stands for u/p (within one rounding; the reciprocal is computed once per instance). */
static inline void sample(rng_t *r, const float *p, float low, float high, vf x[NF]) {
    vf u[NU];
    for (int k = 0; k < NU; k++) u[k] = next_uniform(r);
#if LAW == SPARSE_UNIFORM
    for (int f = 0; f < NF; f++) x[f] = where(u[f] < p[f], low + (high - low) * (u[f] * (1.0f / p[f])));
#elif LAW == HIERARCHICAL_PAIRS
    vi parent = u[0] < p[0];
    x[0] = where(parent, u[0] * (1.0f / p[0]));
    x[1] = where(parent & (u[1] < p[1]), u[1] * (1.0f / p[1]));
#elif LAW == CORRELATED_PAIRS
    for (int k = 0; k < NF / 2; k++) {
        vi active = u[2 * k] < p[k];
        x[2 * k] = where(active, u[2 * k] * (1.0f / p[k]));
        x[2 * k + 1] = where(active, u[2 * k + 1]);
    }
#elif LAW == ANTICORRELATED_PAIRS
    for (int k = 0; k < NF / 2; k++) {
        vf v = u[k];
        float q = p[k];
        x[2 * k] = where(v < q, v * (1.0f / q));
        x[2 * k + 1] = where((v >= q) & (v < 2.0f * q), (v - q) * (1.0f / q));
    }
#endif
}

/* Adds one block's weighted squared errors to `loss` and its gradient terms to gW, gb:
 * z = W x, a = Wᵀz + b, e = ReLU(a) - x, r = scale·I·e·1[a > 0]; gb += r, gW += z rᵀ + (W r) xᵀ.
 * A NaN pre-activation counts as on, so that NaN weights give a NaN loss, as ReLU(NaN) = NaN in torch.
 * `mask` is 1 for real samples and 0 for the padding of a last, partial block. */
static inline void accumulate(const float W[NH][NF], const float b[NF], const float importance[NF], const vf x[NF],
                              vf mask, float scale, vf *loss, vf gW[NH][NF], vf gb[NF]) {
    vf z[NH], r[NF];
    for (int h = 0; h < NH; h++) {
        z[h] = splat(0.0f);
        for (int f = 0; f < NF; f++) z[h] += W[h][f] * x[f];
    }
    for (int f = 0; f < NF; f++) {
        vf a = splat(b[f]);
        for (int h = 0; h < NH; h++) a += W[h][f] * z[h];
        vi on = ~(a <= 0.0f); /* a > 0, or NaN */
        vf error = where(on, a) - x[f];
        vf weighted = importance[f] * error * mask;
        *loss += weighted * error;
        r[f] = where(on, weighted * scale);
        gb[f] += r[f];
    }
    for (int h = 0; h < NH; h++) {
        vf wr = splat(0.0f);
        for (int f = 0; f < NF; f++) wr += W[h][f] * r[f];
        for (int f = 0; f < NF; f++) gW[h][f] += z[h] * r[f] + wr * x[f];
    }
}

/* Draws n samples, LANES at a time, and accumulates their loss and gradient terms; the padding lanes of
 * a last, partial block are masked (full blocks multiply by a constant 1, which the compiler removes). */
static inline void samples(rng_t *r, const float *p, float low, float high, const float W[NH][NF], const float b[NF],
                           const float importance[NF], int64_t n, float scale, vf *loss, vf gW[NH][NF], vf gb[NF]) {
    vf x[NF];
    for (int64_t block = 0; block < n / LANES; block++) {
        sample(r, p, low, high, x);
        accumulate(W, b, importance, x, splat(1.0f), scale, loss, gW, gb);
    }
    if (n % LANES) {
        sample(r, p, low, high, x);
        accumulate(W, b, importance, x, where(LANE_INDEX < (int32_t)(n % LANES), splat(1.0f)), scale, loss, gW, gb);
    }
}

/* torch.optim.Adam's update of one parameter (see utils/fast/planes.py). */
static inline void adam(float *param, float grad, float *m, float *v, float lr_over_bc1, float bc2_sqrt,
                        float weight_decay) {
    grad += weight_decay * *param;
    *m += (1.0f - 0.9f) * (grad - *m);
    *v = *v * 0.999f + (1.0f - 0.999f) * grad * grad;
    *param -= lr_over_bc1 * *m / (sqrtf(*v) / bc2_sqrt + 1e-8f);
}

static uint64_t splitmix64(uint64_t *x) {
    uint64_t z = (*x += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* The generators of instances 0 .. n - 1 under `key`: rng (n, 4, LANES) uint32. */
void seed(int64_t n, uint64_t key, uint32_t *rng) {
    for (int64_t i = 0; i < n; i++)
        for (int l = 0; l < LANES; l++) {
            uint64_t x = key ^ (((uint64_t)i * LANES + (uint64_t)l) * 0xD1B54A32D192ED03ull);
            uint64_t w0 = splitmix64(&x), w1 = splitmix64(&x);
            uint32_t *s = rng + i * 4 * LANES + l;
            s[0] = (uint32_t)w0, s[LANES] = (uint32_t)(w0 >> 32), s[2 * LANES] = (uint32_t)w1;
            s[3 * LANES] = (uint32_t)(w1 >> 32);
        }
}

/* Steps first_step .. last_step - 1 (of n_steps, from 0) for n instances, in place. W (n, NH, NF), b (n, NF),
 * their Adam moments alike; importance (n, NF); params (n, NP); rng (n, 4, LANES); lr (n_steps,); history
 * (n_logged, history_stride): at every log_every-th step, and the last, instance i's loss before the update
 * (mean over batch and features of I_f (x'_f - x_f)²) goes to column i. 1 if memory runs out, else 0. */
int train(int64_t n, int64_t first_step, int64_t last_step, int64_t n_steps, int64_t batch, float *W, float *b,
          float *mW, float *vW, float *mb, float *vb, const float *importance, const float *params, float low,
          float high, uint32_t *rng, const float *lr, float weight_decay, int64_t log_every, float *history,
          int64_t history_stride) {
    const float inv_n = 1.0f / (float)(batch * NF), scale = 2.0f * inv_n;
    const float log_beta1 = (float)log(0.9), log_beta2 = (float)log(0.999);
    float(*w)[NF] = malloc(WEIGHTS), (*m_w)[NF] = malloc(WEIGHTS), (*v_w)[NF] = malloc(WEIGHTS);
    vf(*gW)[NF] = aligned_alloc(sizeof(vf), SUMS);
    float *step_size = malloc(2 * sizeof(float) * (size_t)(last_step - first_step)); /* Adam's, per step */
    if (!w || !m_w || !v_w || !gW || !step_size) return free(w), free(m_w), free(v_w), free(gW), free(step_size), 1;
    for (int64_t step = first_step; step < last_step; step++) { /* lr / (1 - β₁ᵗ) and √(1 - β₂ᵗ), t = step + 1 */
        float t = (float)(step + 1), *s = step_size + 2 * (step - first_step);
        s[0] = lr[step] / -expm1f(t * log_beta1), s[1] = sqrtf(-expm1f(t * log_beta2));
    }
    for (int64_t i = 0; i < n; i++) {
        float bias[NF], m_b[NF], v_b[NF], imp[NF], p[NP];
        rng_t r;
        memcpy(w, W + i * NH * NF, WEIGHTS), memcpy(m_w, mW + i * NH * NF, WEIGHTS);
        memcpy(v_w, vW + i * NH * NF, WEIGHTS), memcpy(bias, b + i * NF, sizeof bias);
        memcpy(m_b, mb + i * NF, sizeof bias), memcpy(v_b, vb + i * NF, sizeof bias);
        memcpy(imp, importance + i * NF, sizeof imp), memcpy(p, params + i * NP, sizeof p);
        memcpy(&r, rng + i * 4 * LANES, sizeof r);

        for (int64_t step = first_step; step < last_step; step++) {
            vf loss = splat(0.0f), gb[NF];
            for (int h = 0; h < NH; h++)
                for (int f = 0; f < NF; f++) gW[h][f] = splat(0.0f);
            for (int f = 0; f < NF; f++) gb[f] = splat(0.0f);
            samples(&r, p, low, high, (const float(*)[NF])w, bias, imp, batch, scale, &loss, gW, gb);
            if ((step + 1) % log_every == 0 || step == n_steps - 1)
                history[(step / log_every) * history_stride + i] = lane_sum(loss) * inv_n;

            float lr_over_bc1 = step_size[2 * (step - first_step)], bc2_sqrt = step_size[2 * (step - first_step) + 1];
            for (int h = 0; h < NH; h++)
                for (int f = 0; f < NF; f++)
                    adam(&w[h][f], lane_sum(gW[h][f]), &m_w[h][f], &v_w[h][f], lr_over_bc1, bc2_sqrt, weight_decay);
            for (int f = 0; f < NF; f++)
                adam(&bias[f], lane_sum(gb[f]), &m_b[f], &v_b[f], lr_over_bc1, bc2_sqrt, weight_decay);
        }

        memcpy(W + i * NH * NF, w, WEIGHTS), memcpy(mW + i * NH * NF, m_w, WEIGHTS);
        memcpy(vW + i * NH * NF, v_w, WEIGHTS), memcpy(b + i * NF, bias, sizeof bias);
        memcpy(mb + i * NF, m_b, sizeof bias), memcpy(vb + i * NF, v_b, sizeof bias);
        memcpy(rng + i * 4 * LANES, &r, sizeof r);
    }
    return free(w), free(m_w), free(v_w), free(gW), free(step_size), 0;
}
