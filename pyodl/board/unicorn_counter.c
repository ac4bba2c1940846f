/* pyodl native block hook for Unicorn: Thumb-2 instruction counter, Cortex-M4 cycle model (the costs come from
   pyodl/board/cycle_model.py, once per block) and run-end detector. */
#include <stdint.h>
#include <stdlib.h>
#ifdef PYODL_HAVE_UNICORN_H
#include <unicorn/unicorn.h>
#else
typedef struct uc_struct uc_engine;
typedef int uc_err;
#endif

typedef uc_err (*emu_stop_fn)(uc_engine *uc);

/* What a block costs (pyodl/board/cycle_model.py computes it; the ctypes mirror keeps this field order). */
struct pyodl_block_cost {
    uint32_t instructions;
    uint32_t cycles;     /* every instruction, branches falling through */
    uint32_t taken;      /* added when the next block is not the fall-through: the final branch was taken */
    uint32_t fetch;      /* stall cycles of fetching the block from flash past the instruction cache */
    uint32_t first_wide; /* the first instruction is 32 bits wide */
};

/* Returns 0 and fills *cost, or non-zero when the block cannot be described (the run is then stopped). */
typedef int (*describe_fn)(uint64_t address, uint32_t size, struct pyodl_block_cost *cost);

#define NO_PENDING UINT64_MAX
/* RM0351 3.3.3: the ART instruction cache, 32 lines of 4 x 64 bits. Its replacement policy is not
   documented: first-in first-out is modelled, which also lets a hit leave the cache untouched. */
#define ICACHE_LINES 32u
#define ICACHE_LINE_SHIFT 5u
#define ACR_PRFTEN (1u << 8)
#define ACR_ICEN (1u << 9)

struct memo_entry {
    uint32_t size_count; /* block size << 16 | instruction count, 0 = unknown */
    uint32_t cycles;
    uint16_t fetch;
    uint8_t taken;
    uint8_t first_wide;
    uint32_t generation; /* the counter's generation it was described in: an older one is stale */
    uint64_t epoch;      /* the cache's miss count when every line of this block was last seen present */
};

/* The header is mirrored by a ctypes Structure: keep the field order. */
struct pyodl_counter {
    uint64_t executed;     /* instructions of the blocks entered since the counter was made */
    uint64_t limit;        /* stop before a block that would take executed past this */
    uint64_t stop_address; /* stop before a block starting here ... */
    uint32_t stop_armed;   /* ... unless this is 0: then let it run once (a run resuming from it) */
    uint32_t stop_reason;  /* 0 none, 1 stop_address, 2 limit, 3 a block the cycle model cannot describe */
    uint64_t cycles;       /* modelled core cycles of the blocks entered */
    uint32_t acr;          /* FLASH_ACR as the firmware last wrote it: LATENCY, PRFTEN, ICEN */
    uint32_t pending_taken; /* cycles the previous block's final branch adds if it was taken ... */
    uint64_t pending_from; /* ... which it was unless the next block starts here (NO_PENDING: no branch) */
    uint64_t failed_address; /* the block the cycle model could not describe */
    uint64_t code_base;    /* [code_base, code_base + code_size) is immutable host memory at code_host */
    uint64_t code_size;
    const uint8_t *code_host;
    emu_stop_fn emu_stop;
    describe_fn describe;
    /* Per flash halfword: the block starting there. Indexed directly, so a hit is one load; calloc leaves
       the untouched pages unmapped. */
    struct memo_entry *memo;
    uint32_t generation; /* bumped when FLASH_ACR changes the fetch costs: every memo entry goes stale */
    uint64_t icache_tag[ICACHE_LINES]; /* line address + 1, 0 = empty */
    uint32_t icache_next;              /* the slot the next miss fills */
    uint64_t icache_misses;
};

static int is_wide(const uint8_t *p)
{
    return (p[1] >> 3) >= 0x1D;
}

/* Looks every line of [address, address + size) up in the instruction cache, filling the missing ones;
   returns whether any was missing. */
static int icache_miss(struct pyodl_counter *c, uint64_t address, uint32_t size)
{
    int missed = 0;
    for (uint64_t line = address >> ICACHE_LINE_SHIFT; line <= (address + size - 1) >> ICACHE_LINE_SHIFT; ++line) {
        int present = 0;
        for (uint32_t i = 0; i < ICACHE_LINES; ++i) {
            if (c->icache_tag[i] == line + 1) {
                present = 1;
                break;
            }
        }
        if (!present) {
            c->icache_tag[c->icache_next] = line + 1;
            c->icache_next = (c->icache_next + 1) % ICACHE_LINES;
            c->icache_misses++;
            missed = 1;
        }
    }
    return missed;
}

static int describe(struct pyodl_counter *c, uint64_t address, uint32_t size, struct memo_entry *out)
{
    struct pyodl_block_cost cost = {0, 0, 0, 0, 0};
    if (c->describe(address, size, &cost) != 0 || cost.taken > 0xFF || cost.fetch > 0xFFFF ||
        cost.instructions > 0xFFFF) {
        return 1;
    }
    out->size_count = size << 16 | cost.instructions;
    out->cycles = cost.cycles;
    out->taken = (uint8_t)cost.taken;
    out->fetch = (uint16_t)cost.fetch;
    out->first_wide = (uint8_t)(cost.first_wide != 0);
    out->generation = c->generation;
    out->epoch = UINT64_MAX;
    return 0;
}

/* The block's memo entry (flash), or *scratch described afresh (code outside flash may change); NULL when
   the cycle model cannot describe it. */
static inline struct memo_entry *block_entry(struct pyodl_counter *c, uint64_t address, uint32_t size,
                                             struct memo_entry *scratch)
{
    uint64_t offset = address - c->code_base; /* wraps to huge below code_base */
    if (__builtin_expect(offset < c->code_size && size <= c->code_size - offset && size < 0x10000, 1)) {
        struct memo_entry *m = &c->memo[offset >> 1];
        if (__builtin_expect(m->size_count >> 16 == size && m->generation == c->generation, 1))
            return m;
        return describe(c, address, size, m) == 0 ? m : NULL;
    }
    if (size >= 0x10000 || describe(c, address, size, scratch) != 0)
        return NULL;
    scratch->fetch = 0; /* SRAM: no wait states */
    return scratch;
}

static void stop(struct pyodl_counter *c, uc_engine *uc, uint32_t reason)
{
    c->stop_reason = reason;
    c->emu_stop(uc);
}

void pyodl_block_hook(uc_engine *uc, uint64_t address, uint32_t size, void *user_data)
{
    struct pyodl_counter *c = (struct pyodl_counter *)user_data;
    if (c->pending_from != NO_PENDING) {
        if (address != c->pending_from) {
            /* TRM: P is 1 to 3 "depending on the alignment and width of the target instruction" */
            uint64_t offset = address - c->code_base;
            uint32_t misaligned_wide = (address & 2u) && offset + 2 <= c->code_size && is_wide(c->code_host + offset);
            uint32_t p = c->pending_taken + misaligned_wide;
            c->cycles += p > 3u ? 3u : p;
        }
        c->pending_from = NO_PENDING;
    }
    if (__builtin_expect(address == c->stop_address, 0)) {
        if (c->stop_armed) {
            stop(c, uc, 1);
            return;
        }
        c->stop_armed = 1;
    }
    struct memo_entry scratch;
    struct memo_entry *m = block_entry(c, address, size, &scratch);
    if (__builtin_expect(m == NULL, 0)) {
        c->failed_address = address;
        stop(c, uc, 3);
        return;
    }
    uint32_t n = m->size_count & 0xFFFF;
    if (__builtin_expect(c->executed + n > c->limit, 0)) {
        stop(c, uc, 2);
        return;
    }
    c->executed += n;
    c->cycles += m->cycles;
    if (!(c->acr & ACR_ICEN)) {
        c->cycles += m->fetch;
    } else if (m->epoch != c->icache_misses && m != &scratch) {
        /* Lines only leave the cache on a miss: with no miss since this block last found all of its lines
           present, they still are, and the lookup is skipped. The cache fills at any wait state. */
        if (icache_miss(c, address, size))
            c->cycles += m->fetch;
        m->epoch = c->icache_misses;
    }
    if (m->taken != 0) {
        c->pending_from = address + size;
        c->pending_taken = m->taken;
    }
}

/* The fetch costs depend on FLASH_ACR: the host calls this when the firmware changes it. */
void pyodl_counter_set_acr(struct pyodl_counter *c, uint32_t acr)
{
    if (acr == c->acr)
        return;
    c->acr = acr;
    /* Every block is described again at its next entry (no memset: the memo's untouched pages stay unmapped).
       The cached lines stay: a new latency changes what a miss costs, not what the cache holds. */
    c->generation++;
}

/* Unicorn's emu_stop and the describer are passed in (ctypes hands over uclib's own), so this file links
   to nothing. */
struct pyodl_counter *pyodl_counter_new(emu_stop_fn emu_stop, describe_fn describe_block,
                                        uint64_t code_base, uint64_t code_size, const uint8_t *code_host,
                                        uint32_t acr)
{
    struct pyodl_counter *c = calloc(1, sizeof *c);
    if (c == NULL)
        return NULL;
    c->memo = calloc(code_size / 2, sizeof *c->memo);
    if (c->memo == NULL) {
        free(c);
        return NULL;
    }
    c->limit = UINT64_MAX;
    c->stop_address = UINT64_MAX;
    c->pending_from = NO_PENDING;
    c->generation = 1;
    c->acr = acr;
    c->code_base = code_base;
    c->code_size = code_size;
    c->code_host = code_host;
    c->emu_stop = emu_stop;
    c->describe = describe_block;
    return c;
}

void pyodl_counter_free(struct pyodl_counter *c)
{
    if (c != NULL)
        free(c->memo);
    free(c);
}
