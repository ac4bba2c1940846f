/*
 * Personalized weights that survive a reset or a flat battery: two slots (A and B) in flash bank 2, each a
 * 32-byte header and the state of odl_state_word(). SAVE writes the slot that does not hold the newest
 * valid copy, header last, so a power cut at any point leaves the newest valid copy intact: the new one
 * counts only once its header's last double-word (header CRC and commit word) is programmed. Boot and
 * LOAD take the newest valid slot whose model hash matches this firmware's model.
 *
 * Header, as four double-words: magic, format | model hash, sequence | state words, state CRC-32 |
 * header CRC-32 (over the first 24 bytes), commit word.
 */
#include <string.h>

#include "app.h"

#define SLOT_MAGIC 0x534C444Fu /* "ODLS" in memory order */
#define SLOT_FORMAT 1u
#define SLOT_COMMIT 0xC0FFEE01u
#define HEADER_WORDS 8u

typedef char odl_slot_fits_bank_2[(2u * ODL_SLOT_BYTES <= 256u * ODL_FLASH_PAGE_BYTES) ? 1 : -1];

/* The slots' flash (bank 2), from the linker script; `extern`, so the compiler assumes nothing of it. */
extern const uint32_t _sslots[];

static const volatile uint32_t *slot_words(unsigned slot)
{
    return (const volatile uint32_t *)((uintptr_t)_sslots + slot * ODL_SLOT_BYTES);
}

static uint32_t crc_word(uint32_t crc, uint32_t word)
{
    uint8_t bytes[4];
    memcpy(bytes, &word, sizeof bytes);
    return odl_crc32(crc, bytes, sizeof bytes);
}

/* The header's CRC-32, over its first six words (everything but the CRC and the commit word). */
static uint32_t header_crc(const uint32_t header[HEADER_WORDS])
{
    uint32_t crc = 0;
    for (unsigned i = 0; i < 6u; ++i) {
        crc = crc_word(crc, header[i]);
    }
    return crc;
}

/* The sequence number of a slot whose header and state check out for this model, or 0. */
static uint32_t valid_sequence(unsigned slot)
{
    const volatile uint32_t *w = slot_words(slot);
    const uint32_t state_words = odl_state_words(&odl_model);
    uint32_t header[HEADER_WORDS];
    for (unsigned i = 0; i < HEADER_WORDS; ++i) {
        header[i] = w[i];
    }
    if (header[0] != SLOT_MAGIC || header[1] != SLOT_FORMAT || header[2] != odl_model.model_hash ||
        header[4] != state_words || header[6] != header_crc(header) || header[7] != SLOT_COMMIT ||
        header[3] == 0u) {
        return 0;
    }
    uint32_t crc = 0;
    for (uint32_t k = 0; k < state_words; ++k) {
        crc = crc_word(crc, w[HEADER_WORDS + k]);
    }
    return crc == header[5] ? header[3] : 0u;
}

/* The slot holding the newest valid copy (0 or 1), or -1. */
static int newest(uint32_t *sequence)
{
    const uint32_t a = valid_sequence(0), b = valid_sequence(1);
    if (a == 0u && b == 0u) {
        return -1;
    }
    *sequence = a > b ? a : b;
    return a > b ? 0 : 1;
}

uint32_t odl_persist_load(uint32_t *slot, uint32_t *sequence)
{
    const int found = newest(sequence);
    if (found < 0) {
        return ODL_APP_ERR_NO_SLOT;
    }
    *slot = (uint32_t)found;
    /* The slot is memory-mapped: restore straight from flash (the library checks before it writes). */
    return (uint32_t)odl_state_restore(&odl_model, (const uint32_t *)(uintptr_t)(slot_words(*slot) + HEADER_WORDS),
                                       odl_state_words(&odl_model));
}

uint32_t odl_persist_save(uint32_t *slot, uint32_t *sequence, uint32_t *flash_status)
{
    uint32_t last = 0;
    const int current = newest(&last);
    const unsigned target = current == 0 ? 1u : 0u;
    const uintptr_t base = (uintptr_t)slot_words(target);
    const uint32_t words = odl_state_words(&odl_model);
    uint32_t st = 0;
    for (uint32_t page = 0; page < ODL_SLOT_BYTES / ODL_FLASH_PAGE_BYTES && st == 0u; ++page) {
        st = odl_flash_erase_page(base + page * ODL_FLASH_PAGE_BYTES);
    }
    /* The state, after the header's place; an odd word count pads its last double-word with ones. */
    uint32_t crc = 0;
    for (uint32_t k = 0; k < words && st == 0u; k += 2u) {
        const uint32_t low = odl_state_word(&odl_model, k);
        const uint32_t high = k + 1u < words ? odl_state_word(&odl_model, k + 1u) : 0xFFFFFFFFu;
        crc = crc_word(crc, low);
        if (k + 1u < words) {
            crc = crc_word(crc, high);
        }
        st = odl_flash_program(base + 4u * (HEADER_WORDS + k), low, high);
    }
    uint32_t header[HEADER_WORDS] = {SLOT_MAGIC, SLOT_FORMAT, odl_model.model_hash, last + 1u, words, crc, 0u,
                                     SLOT_COMMIT};
    header[6] = header_crc(header);
    /* Header last, its commit double-word the very last. */
    for (unsigned i = 0; i < HEADER_WORDS && st == 0u; i += 2u) {
        st = odl_flash_program(base + 4u * i, header[i], header[i + 1u]);
    }
    *flash_status = st;
    if (st != 0u) {
        return ODL_APP_ERR_FLASH;
    }
    /* Read back: what boot would load must be what was saved. */
    if (valid_sequence(target) != last + 1u) {
        return ODL_APP_ERR_FLASH;
    }
    *slot = target;
    *sequence = last + 1u;
    return ODL_OK;
}
