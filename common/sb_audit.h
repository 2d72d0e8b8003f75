/*
 * What the store's two tamper-evident trails share (pdnd/'s access trail and
 * service/'s audit table): the audit key, kept in a file off the store, the
 * keys derived from it, the encoding a row's hash covers, and the keyed MAC
 * that both chains a row and seals the trail's head (docs/decisions/0014).
 * All thread-safe.
 */
#ifndef SB_AUDIT_H
#define SB_AUDIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sb_buf.h"
#include "sb_err.h"

struct sb_cfg;

#define SB_AUDIT_KEY_SIZE 32
/* A hash, MAC or seal in hex with its NUL. */
#define SB_AUDIT_HEX_SIZE 65
/* The link before the first row, and the hash of an empty trail. */
#define SB_AUDIT_GENESIS "0000000000000000000000000000000000000000000000000000000000000000"

/*
 * The audit key from [pdnd] audit_key_file: SHA-256 of the file's content
 * (white space trimmed, at least 16 bytes; the file must not be readable
 * by group or others). *have is false, and key untouched, when the key is
 * not configured. SB_ECONFIG naming the key for a bad file. Wipe the key
 * with sb_wipe() when done.
 */
int sb_audit_key_load(const struct sb_cfg *cfg, unsigned char key[SB_AUDIT_KEY_SIZE],
		      bool *have, struct sb_err *err);

/*
 * A key for one use of the audit key (HKDF-SHA256, RFC 5869, with label as
 * info), so that one trail's MACs never serve as another's.
 */
void sb_audit_key_derive(const unsigned char key[SB_AUDIT_KEY_SIZE], const char *label,
			 unsigned char out[SB_AUDIT_KEY_SIZE]);

/* hex(SHA-256(p)) into out: an unkeyed row hash. */
void sb_audit_sha256_hex(const void *p, size_t len, char out[SB_AUDIT_HEX_SIZE]);

/* hex(HMAC-SHA256(key, p)) into out. */
void sb_audit_hmac_hex(const unsigned char key[SB_AUDIT_KEY_SIZE], const void *p, size_t len,
		       char out[SB_AUDIT_HEX_SIZE]);

/*
 * Append what a row's hash covers to b: "prev|id|at", then "|len:value" for
 * each of the n fields, or "|-" for a NULL one (NULL and "" differ).
 */
void sb_audit_row_encode(struct sb_buf *b, const char *prev, int64_t id, int64_t at,
			 const char *const *f, size_t n);

/*
 * A keyed chain: one HMAC-SHA512 per row gives two independent values, the
 * row's link (stored in the row, and the next row's prev) and the trail's
 * seal (stored only in the head, and covered by the next row's MAC).
 * Knowing a row's link says nothing of the seal, so a head moved back to an
 * earlier row cannot be sealed again without the key.
 */
struct sb_audit_mac;

/* Ready to MAC with key (copied; wiped by _free). */
struct sb_audit_mac *sb_audit_mac_new(const unsigned char key[SB_AUDIT_KEY_SIZE]);
void sb_audit_mac_free(struct sb_audit_mac *m);   /* NULL is a no-op */

/*
 * link and seal (hex) of the row encoded in (p, len) that follows seal
 * prev_seal. Safe from several threads on one m.
 */
void sb_audit_mac_row(const struct sb_audit_mac *m, const char *prev_seal, const void *p,
		      size_t len, char link[SB_AUDIT_HEX_SIZE], char seal[SB_AUDIT_HEX_SIZE]);

#endif
