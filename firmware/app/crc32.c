/*
 * CRC-32 (IEEE 802.3, reflected, as zlib.crc32 computes it): the UART frames' check and the persistence
 * slots' check. Bitwise rather than table-driven: 1 KB less flash, and neither use is on a hot path.
 */
#include "app.h"

uint32_t odl_crc32(uint32_t crc, const uint8_t *data, uint32_t len)
{
    crc = ~crc;
    for (uint32_t i = 0; i < len; ++i) {
        crc ^= data[i];
        for (int bit = 0; bit < 8; ++bit) {
            crc = (crc >> 1) ^ (0xEDB88320u & (0u - (crc & 1u)));
        }
    }
    return ~crc;
}
