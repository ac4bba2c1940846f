/* pyodl native block hook: Thumb-2 instruction counter and run-end detector for Unicorn. */
#include <stdint.h>
#include <stdlib.h>
#ifdef PYODL_HAVE_UNICORN_H
#include <unicorn/unicorn.h>
#else
typedef struct uc_struct uc_engine;
typedef int uc_err;
#endif

typedef uc_err (*mem_read_fn)(uc_engine *uc, uint64_t address, void *bytes, uint64_t size);
typedef uc_err (*emu_stop_fn)(uc_engine *uc);

#define MAX_BLOCK 4096

/* The header is mirrored by a ctypes Structure: keep the field order. */
struct pyodl_counter {
    uint64_t executed;     /* instructions of the blocks entered since the counter was made */
    uint64_t limit;        /* stop before a block that would take executed past this */
    uint64_t stop_address; /* stop before a block starting here ... */
    uint32_t stop_armed;   /* ... unless this is 0: then let it run once (a run resuming from it) */
    uint32_t stop_reason;  /* 0 none, 1 stop_address, 2 limit */
    uint64_t code_base;    /* [code_base, code_base + code_size) is immutable host memory at code_host */
    uint64_t code_size;
    const uint8_t *code_host;
    mem_read_fn mem_read;
    emu_stop_fn emu_stop;
    /* Per flash halfword: (block size << 16 | instruction count) of the block starting there, 0 = unknown.
       Indexed directly, so a hit is one load; calloc leaves the untouched pages unmapped. */
    uint32_t *memo;
};

static uint32_t count_thumb(const uint8_t *p, uint32_t size)
{
    uint32_t n = 0, off = 0;
    while (off + 1 < size) {
        uint32_t top5 = p[off + 1] >> 3;
        /* 0b11101, 0b11110, 0b11111 start a 32-bit Thumb-2 instruction */
        off += top5 >= 0x1D ? 4 : 2;
        n++;
    }
    return n;
}

static inline uint32_t block_count(struct pyodl_counter *c, uc_engine *uc, uint64_t address, uint32_t size)
{
    uint64_t offset = address - c->code_base; /* wraps to huge below code_base */
    if (__builtin_expect(offset < c->code_size && size <= c->code_size - offset && size < 0x10000, 1)) {
        uint32_t *m = &c->memo[offset >> 1];
        if (__builtin_expect(*m >> 16 == size, 1))
            return *m & 0xFFFF;
        uint32_t n = count_thumb(c->code_host + offset, size);
        *m = size << 16 | n;
        return n;
    }
    /* code outside flash (RAM) may change: decode it every time */
    uint8_t buf[MAX_BLOCK];
    uint32_t n = 0;
    while (size > 0) {
        uint32_t chunk = size < MAX_BLOCK ? size : MAX_BLOCK;
        if (c->mem_read(uc, address, buf, chunk) != 0)
            return n + (chunk + 1) / 2;
        n += count_thumb(buf, chunk);
        address += chunk;
        size -= chunk;
    }
    return n;
}

void pyodl_block_hook(uc_engine *uc, uint64_t address, uint32_t size, void *user_data)
{
    struct pyodl_counter *c = (struct pyodl_counter *)user_data;
    if (__builtin_expect(address == c->stop_address, 0)) {
        if (c->stop_armed) {
            c->stop_reason = 1;
            c->emu_stop(uc);
            return;
        }
        c->stop_armed = 1;
    }
    uint32_t n = block_count(c, uc, address, size);
    if (__builtin_expect(c->executed + n > c->limit, 0)) {
        c->stop_reason = 2;
        c->emu_stop(uc);
        return;
    }
    c->executed += n;
}

/* The two Unicorn functions are passed in (ctypes hands over uclib's own), so this file links to nothing. */
struct pyodl_counter *pyodl_counter_new(mem_read_fn mem_read, emu_stop_fn emu_stop, uint64_t code_base,
                                        uint64_t code_size, const uint8_t *code_host)
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
    c->code_base = code_base;
    c->code_size = code_size;
    c->code_host = code_host;
    c->mem_read = mem_read;
    c->emu_stop = emu_stop;
    return c;
}

void pyodl_counter_free(struct pyodl_counter *c)
{
    if (c != NULL)
        free(c->memo);
    free(c);
}
