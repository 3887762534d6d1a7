/* Exact k nearest neighbours by Hamming distance over packed binary codes, ties by position.
 *
 * For each query: the k smallest (distance, position) pairs over the database, so a tie at the
 * k-th distance keeps the items stored first.  Loaded with ctypes (vsb2net/index/scan_backend.py),
 * which releases the GIL during the call: the caller runs one call per core on slices of the
 * queries.
 *
 * Why it is faster than a heap over every distance (faiss IndexBinaryFlat's default):
 *  - selection by counting: a distance is one of 0..bits, so each query keeps, per distance, the
 *    first k positions seen at it and a bound: once k items lie at distance <= t, an item at
 *    distance >= t can no longer enter (one at t comes after those already kept), so the bound
 *    drops to t - 1 and almost every code costs one compare after the popcount;
 *  - tiles: a tile of queries scans one block of the database while it sits in the L1/L2 cache;
 *  - where the CPU has AVX-512 VPOPCNTDQ (checked at run time, so one build runs anywhere), 8
 *    64-bit or 16 32-bit distances per instruction and one mask test against the bound.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define HAVE_AVX512_PATH 1
#endif

#define TILE_Q 8
#define BLOCK 2048

typedef struct {
    int32_t *pos;   /* (bits + 1) x k positions, in the order they were seen */
    int32_t *cnt;   /* (bits + 1) counts, at most k each */
    int bound;      /* largest distance that may still enter */
} selection;

static void accept(selection *s, int d, int32_t p, int k) {
    if (s->cnt[d] < k) {
        s->pos[(int64_t)d * k + s->cnt[d]] = p;
        s->cnt[d]++;
    }
    int64_t cum = 0;
    for (int t = 0; t <= s->bound; t++) {
        cum += s->cnt[t];
        if (cum >= k) {
            s->bound = t - 1;
            return;
        }
    }
}

static inline int dist_words(const uint64_t *a, const uint64_t *b, int words) {
    int d = 0;
    for (int w = 0; w < words; w++) d += __builtin_popcountll(a[w] ^ b[w]);
    return d;
}

#ifdef HAVE_AVX512_PATH
/* the codes of one vector whose distance passed the bound, in position order; the bound may drop
 * while they are taken, so each is checked again */
static inline void take_mask(selection *s, uint64_t mask, int64_t j, const int *d, int k) {
    while (mask) {
        int b = __builtin_ctzll(mask);
        mask &= mask - 1;
        if (d[b] <= s->bound) accept(s, d[b], (int32_t)(j + b), k);
    }
}

__attribute__((target("avx512f,avx512vpopcntdq")))
static void scan64_avx512(const uint64_t *c, int64_t lo, int64_t hi, uint64_t qc, selection *s, int k) {
    __m512i qv = _mm512_set1_epi64((long long)qc);
    __m512i bv = _mm512_set1_epi64(s->bound);
    int64_t j = lo;
    for (; j + 8 <= hi; j += 8) {
        __m512i d = _mm512_popcnt_epi64(_mm512_xor_si512(_mm512_loadu_si512((const void *)(c + j)), qv));
        __mmask8 m = _mm512_cmple_epi64_mask(d, bv);
        if (m) {
            long long dl[8];
            int di[8];
            _mm512_storeu_si512((void *)dl, d);
            for (int b = 0; b < 8; b++) di[b] = (int)dl[b];
            take_mask(s, m, j, di, k);
            bv = _mm512_set1_epi64(s->bound);
        }
    }
    for (; j < hi; j++) {
        int d = __builtin_popcountll(qc ^ c[j]);
        if (d <= s->bound) accept(s, d, (int32_t)j, k);
    }
}

__attribute__((target("avx512f,avx512vpopcntdq")))
static void scan32_avx512(const uint32_t *c, int64_t lo, int64_t hi, uint32_t qc, selection *s, int k) {
    __m512i qv = _mm512_set1_epi32((int)qc);
    __m512i bv = _mm512_set1_epi32(s->bound);
    int64_t j = lo;
    for (; j + 16 <= hi; j += 16) {
        __m512i d = _mm512_popcnt_epi32(_mm512_xor_si512(_mm512_loadu_si512((const void *)(c + j)), qv));
        __mmask16 m = _mm512_cmple_epi32_mask(d, bv);
        if (m) {
            int di[16];
            _mm512_storeu_si512((void *)di, d);
            take_mask(s, m, j, di, k);
            bv = _mm512_set1_epi32(s->bound);
        }
    }
    for (; j < hi; j++) {
        int d = __builtin_popcount(qc ^ c[j]);
        if (d <= s->bound) accept(s, d, (int32_t)j, k);
    }
}

__attribute__((target("avx512f,avx512vpopcntdq")))
static int64_t sum64_avx512(const uint64_t *c, int64_t lo, int64_t hi, uint64_t qc) {
    __m512i qv = _mm512_set1_epi64((long long)qc), acc = _mm512_setzero_si512();
    int64_t j = lo, total = 0;
    for (; j + 8 <= hi; j += 8)
        acc = _mm512_add_epi64(acc, _mm512_popcnt_epi64(_mm512_xor_si512(_mm512_loadu_si512((const void *)(c + j)), qv)));
    for (; j < hi; j++) total += __builtin_popcountll(qc ^ c[j]);
    return total + _mm512_reduce_add_epi64(acc);
}

__attribute__((target("avx512f,avx512vpopcntdq")))
static int64_t sum32_avx512(const uint32_t *c, int64_t lo, int64_t hi, uint32_t qc) {
    __m512i qv = _mm512_set1_epi32((int)qc), acc = _mm512_setzero_si512();
    int64_t j = lo, total = 0;
    for (; j + 16 <= hi; j += 16)
        acc = _mm512_add_epi32(acc, _mm512_popcnt_epi32(_mm512_xor_si512(_mm512_loadu_si512((const void *)(c + j)), qv)));
    for (; j < hi; j++) total += __builtin_popcount(qc ^ c[j]);
    return total + (int64_t)_mm512_reduce_add_epi32(acc);
}

static int use_avx512(void) {
    static int checked = -1;
    if (checked < 0) {
        __builtin_cpu_init();
        /* VSB2NET_SCALAR_SCAN=1 takes the portable path (the tests check both give the same) */
        const char *scalar = getenv("VSB2NET_SCALAR_SCAN");
        checked = !(scalar && scalar[0] == '1') && __builtin_cpu_supports("avx512f")
                  && __builtin_cpu_supports("avx512vpopcntdq");
    }
    return checked;
}
#else
static int use_avx512(void) { return 0; }
#endif

/* one tile of queries against database codes [lo, hi) */
static void scan_block(const uint8_t *q, int nq, const uint8_t *db, int64_t lo, int64_t hi, int nbytes,
                       selection *sel, int k) {
#ifdef HAVE_AVX512_PATH
    if (use_avx512() && (nbytes == 4 || nbytes == 8)) {
        for (int i = 0; i < nq; i++) {
            if (nbytes == 8) {
                uint64_t qc;
                memcpy(&qc, q + (int64_t)i * 8, 8);
                scan64_avx512((const uint64_t *)db, lo, hi, qc, sel + i, k);
            } else {
                uint32_t qc;
                memcpy(&qc, q + (int64_t)i * 4, 4);
                scan32_avx512((const uint32_t *)db, lo, hi, qc, sel + i, k);
            }
        }
        return;
    }
#endif
    if (nbytes == 4) {
        const uint32_t *c = (const uint32_t *)db;
        for (int i = 0; i < nq; i++) {
            uint32_t qc;
            memcpy(&qc, q + (int64_t)i * 4, 4);
            selection *s = sel + i;
            int bound = s->bound;
            for (int64_t j = lo; j < hi; j++) {
                int d = __builtin_popcount(qc ^ c[j]);
                if (d <= bound) {
                    accept(s, d, (int32_t)j, k);
                    bound = s->bound;
                }
            }
        }
    } else if (nbytes == 8) {
        const uint64_t *c = (const uint64_t *)db;
        for (int i = 0; i < nq; i++) {
            uint64_t qc;
            memcpy(&qc, q + (int64_t)i * 8, 8);
            selection *s = sel + i;
            int bound = s->bound;
            for (int64_t j = lo; j < hi; j++) {
                int d = __builtin_popcountll(qc ^ c[j]);
                if (d <= bound) {
                    accept(s, d, (int32_t)j, k);
                    bound = s->bound;
                }
            }
        }
    } else {
        int words = nbytes / 8;
        const uint64_t *c = (const uint64_t *)db;
        for (int i = 0; i < nq; i++) {
            const uint64_t *qc = (const uint64_t *)(q + (int64_t)i * nbytes);
            selection *s = sel + i;
            int bound = s->bound;
            for (int64_t j = lo; j < hi; j++) {
                int d = dist_words(qc, c + j * words, words);
                if (d <= bound) {
                    accept(s, d, (int32_t)j, k);
                    bound = s->bound;
                }
            }
        }
    }
}

/* queries (nq x nbytes) and database (n x nbytes), nbytes 4 or a multiple of 8, both aligned to
 * nbytes' word; n < 2^31.  Writes out_d (nq x k, int32) and out_p (nq x k, int64), -1 past the end
 * of a database smaller than k.  Returns 0, or -1 when memory runs out. */
int hamming_knn(const uint8_t *q, int64_t nq, const uint8_t *db, int64_t n, int nbytes, int k,
                int32_t *out_d, int64_t *out_p) {
    int bits = nbytes * 8;
    selection sel[TILE_Q];
    int32_t *pos = malloc(sizeof(int32_t) * (size_t)TILE_Q * (bits + 1) * k);
    int32_t *cnt = malloc(sizeof(int32_t) * (size_t)TILE_Q * (bits + 1));
    if (!pos || !cnt) {
        free(pos);
        free(cnt);
        return -1;
    }
    for (int64_t q0 = 0; q0 < nq; q0 += TILE_Q) {
        int tile = (int)(nq - q0 < TILE_Q ? nq - q0 : TILE_Q);
        memset(cnt, 0, sizeof(int32_t) * (size_t)TILE_Q * (bits + 1));
        for (int i = 0; i < tile; i++) {
            sel[i].pos = pos + (int64_t)i * (bits + 1) * k;
            sel[i].cnt = cnt + (int64_t)i * (bits + 1);
            sel[i].bound = bits;
        }
        for (int64_t lo = 0; lo < n; lo += BLOCK) {
            int64_t hi = lo + BLOCK < n ? lo + BLOCK : n;
            scan_block(q + q0 * nbytes, tile, db, lo, hi, nbytes, sel, k);
        }
        for (int i = 0; i < tile; i++) {
            int32_t *od = out_d + (q0 + i) * k;
            int64_t *op = out_p + (q0 + i) * k;
            int filled = 0;
            for (int d = 0; d <= bits && filled < k; d++) {
                for (int c = 0; c < sel[i].cnt[d] && filled < k; c++) {
                    od[filled] = d;
                    op[filled] = sel[i].pos[(int64_t)d * k + c];
                    filled++;
                }
            }
            for (; filled < k; filled++) {
                od[filled] = -1;
                op[filled] = -1;
            }
        }
    }
    free(pos);
    free(cnt);
    return 0;
}

/* the popcount floor: every query's distance to every code, summed (so the compiler cannot drop
 * it), with no selection: what the scan costs before it decides anything */
int64_t hamming_popcount_pass(const uint8_t *q, int64_t nq, const uint8_t *db, int64_t n, int nbytes) {
    int64_t total = 0;
    for (int64_t q0 = 0; q0 < nq; q0 += TILE_Q) {
        int tile = (int)(nq - q0 < TILE_Q ? nq - q0 : TILE_Q);
        for (int64_t lo = 0; lo < n; lo += BLOCK) {
            int64_t hi = lo + BLOCK < n ? lo + BLOCK : n;
            for (int i = 0; i < tile; i++) {
                const uint8_t *qi = q + (q0 + i) * nbytes;
                int64_t sum = 0;
#ifdef HAVE_AVX512_PATH
                if (use_avx512() && (nbytes == 4 || nbytes == 8)) {
                    if (nbytes == 8) {
                        uint64_t qc;
                        memcpy(&qc, qi, 8);
                        total += sum64_avx512((const uint64_t *)db, lo, hi, qc);
                    } else {
                        uint32_t qc;
                        memcpy(&qc, qi, 4);
                        total += sum32_avx512((const uint32_t *)db, lo, hi, qc);
                    }
                    continue;
                }
#endif
                if (nbytes == 8) {
                    uint64_t qc;
                    memcpy(&qc, qi, 8);
                    const uint64_t *c = (const uint64_t *)db;
                    for (int64_t j = lo; j < hi; j++) sum += __builtin_popcountll(qc ^ c[j]);
                } else if (nbytes == 4) {
                    uint32_t qc;
                    memcpy(&qc, qi, 4);
                    const uint32_t *c = (const uint32_t *)db;
                    for (int64_t j = lo; j < hi; j++) sum += __builtin_popcount(qc ^ c[j]);
                } else {
                    int words = nbytes / 8;
                    const uint64_t *c = (const uint64_t *)db;
                    for (int64_t j = lo; j < hi; j++) sum += dist_words((const uint64_t *)qi, c + j * words, words);
                }
                total += sum;
            }
        }
    }
    return total;
}

/* per query, how many database codes lie at each Hamming distance: out (nq x nbins, int64, added
 * to), nbins >= the largest possible distance + 1.  Four interleaved sub-histograms keep
 * consecutive increments of one bin from waiting on each other. */
#define HIST_MAX_BITS 1024
#ifdef HAVE_AVX512_PATH
__attribute__((target("avx512f,avx512vpopcntdq")))
static void hist64_avx512(const uint64_t *c, int64_t lo, int64_t hi, uint64_t qc, uint32_t (*h)[HIST_MAX_BITS + 1]) {
    __m512i qv = _mm512_set1_epi64((long long)qc);
    int64_t j = lo;
    long long d[8];
    for (; j + 8 <= hi; j += 8) {
        _mm512_storeu_si512((void *)d, _mm512_popcnt_epi64(_mm512_xor_si512(_mm512_loadu_si512((const void *)(c + j)), qv)));
        h[0][d[0]]++; h[1][d[1]]++; h[2][d[2]]++; h[3][d[3]]++;
        h[0][d[4]]++; h[1][d[5]]++; h[2][d[6]]++; h[3][d[7]]++;
    }
    for (; j < hi; j++) h[0][__builtin_popcountll(qc ^ c[j])]++;
}

__attribute__((target("avx512f,avx512vpopcntdq")))
static void hist32_avx512(const uint32_t *c, int64_t lo, int64_t hi, uint32_t qc, uint32_t (*h)[HIST_MAX_BITS + 1]) {
    __m512i qv = _mm512_set1_epi32((int)qc);
    int64_t j = lo;
    int d[16];
    for (; j + 16 <= hi; j += 16) {
        _mm512_storeu_si512((void *)d, _mm512_popcnt_epi32(_mm512_xor_si512(_mm512_loadu_si512((const void *)(c + j)), qv)));
        for (int b = 0; b < 16; b += 4) {
            h[0][d[b]]++; h[1][d[b + 1]]++; h[2][d[b + 2]]++; h[3][d[b + 3]]++;
        }
    }
    for (; j < hi; j++) h[0][__builtin_popcount(qc ^ c[j])]++;
}
#endif

int hamming_hist(const uint8_t *q, int64_t nq, const uint8_t *db, int64_t n, int nbytes, int64_t *out, int nbins) {
    int bits = nbytes * 8;
    if (bits > HIST_MAX_BITS) return -1;
    uint32_t (*h)[HIST_MAX_BITS + 1] = malloc(sizeof(uint32_t) * 4 * (HIST_MAX_BITS + 1));
    if (!h) return -1;
    for (int64_t i = 0; i < nq; i++) {
        const uint8_t *qi = q + i * nbytes;
        memset(h, 0, sizeof(uint32_t) * 4 * (HIST_MAX_BITS + 1));
        /* blocks of under 2^32 codes keep the uint32 counts exact */
        for (int64_t lo = 0; lo < n; lo += ((int64_t)1 << 30)) {
            int64_t hi = n - lo > ((int64_t)1 << 30) ? lo + ((int64_t)1 << 30) : n;
#ifdef HAVE_AVX512_PATH
            if (use_avx512() && nbytes == 8) {
                uint64_t qc;
                memcpy(&qc, qi, 8);
                hist64_avx512((const uint64_t *)db, lo, hi, qc, h);
            } else if (use_avx512() && nbytes == 4) {
                uint32_t qc;
                memcpy(&qc, qi, 4);
                hist32_avx512((const uint32_t *)db, lo, hi, qc, h);
            } else
#endif
            if (nbytes == 4) {
                uint32_t qc;
                memcpy(&qc, qi, 4);
                const uint32_t *c = (const uint32_t *)db;
                for (int64_t j = lo; j < hi; j++) h[j & 3][__builtin_popcount(qc ^ c[j])]++;
            } else if (nbytes == 8) {
                uint64_t qc;
                memcpy(&qc, qi, 8);
                const uint64_t *c = (const uint64_t *)db;
                for (int64_t j = lo; j < hi; j++) h[j & 3][__builtin_popcountll(qc ^ c[j])]++;
            } else {
                int words = nbytes / 8;
                const uint64_t *c = (const uint64_t *)db;
                for (int64_t j = lo; j < hi; j++) h[j & 3][dist_words((const uint64_t *)qi, c + j * words, words)]++;
            }
            int64_t *o = out + i * nbins;
            for (int d = 0; d < nbins && d <= bits; d++) o[d] += (int64_t)h[0][d] + h[1][d] + h[2][d] + h[3][d];
            memset(h, 0, sizeof(uint32_t) * 4 * (HIST_MAX_BITS + 1));
        }
    }
    free(h);
    return 0;
}
