/* CRC-32C (Castagnoli, reflected polynomial 0x82F63B78: the iSCSI/ext4/LevelDB CRC),
 * byte-table driven. Used to checksum journal records (include/dspex/optim/journal.h).
 * Pure C, no state. */
#ifndef DSPEX_CRC32C_H
#define DSPEX_CRC32C_H

#include <stddef.h>
#include <stdint.h>

/* Extends `crc` (0 to start) over data[0..len): dspex_crc32c(0, "123456789", 9) is
 * 0xE3069283, and dspex_crc32c(dspex_crc32c(0, a, n), b, m) is the CRC of a || b. */
uint32_t dspex_crc32c(uint32_t crc, const void *data, size_t len);

#endif
