/*
 * Crypto helpers over OpenSSL 3: SHA-256 (memory and streamed files),
 * base64/base64url/hex, random bytes and UUIDv4, private key loading with a
 * permission check, and RS256 signing for JWTs. All thread-safe.
 */
#ifndef SB_CRYPTO_H
#define SB_CRYPTO_H

#include <stddef.h>
#include <stdint.h>

#include "sb_buf.h"
#include "sb_err.h"

#define SB_SHA256_LEN 32
/* Read size for streamed hashing and uploads: memory does not grow with the file. */
#define SB_FILE_CHUNK (64u * 1024u)

void sb_sha256(const void *p, size_t len, unsigned char out[SB_SHA256_LEN]);

/*
 * SHA-256 of a file read in SB_FILE_CHUNK pieces. size_out (may be NULL)
 * gets the byte count. Returns 0, SB_ENOTFOUND or SB_EIO.
 */
int sb_sha256_file(const char *path, unsigned char out[SB_SHA256_LEN], uint64_t *size_out,
		   struct sb_err *err);

/* Streaming interface for callers that already read the data. */
struct sb_sha256_ctx;
struct sb_sha256_ctx *sb_sha256_begin(void);
void sb_sha256_update(struct sb_sha256_ctx *c, const void *p, size_t len);
/* Writes the digest and frees c. */
void sb_sha256_end(struct sb_sha256_ctx *c, unsigned char out[SB_SHA256_LEN]);

/* Encoders append to out: 0 or SB_ETOOBIG (out's ceiling). */
int sb_base64_encode(const void *p, size_t len, struct sb_buf *out);
/* base64url without padding (RFC 7515 / JWT). */
int sb_base64url_encode(const void *p, size_t len, struct sb_buf *out);
/* Lower-case hex. */
int sb_hex_encode(const void *p, size_t len, struct sb_buf *out);

/*
 * Decoders accept exactly their alphabet (standard base64 with padding;
 * base64url with or without); anything else is SB_EINVAL.
 */
int sb_base64_decode(const char *s, size_t len, struct sb_buf *out);
int sb_base64url_decode(const char *s, size_t len, struct sb_buf *out);
int sb_hex_decode(const char *s, size_t len, struct sb_buf *out);

/* Cryptographically strong random bytes; aborts if the RNG fails. */
void sb_random_bytes(void *p, size_t len);
/* A random UUID version 4, lower case, 36 chars plus NUL. */
void sb_uuid4(char out[37]);

/*
 * Check that a secret file is a regular file not readable or writable by
 * group or others (mode & 077 == 0). Returns 0, SB_ENOTFOUND or SB_ECONFIG
 * with a message naming the file and its mode.
 */
int sb_secret_file_check(const char *path, struct sb_err *err);

/*
 * Read a secret file (after sb_secret_file_check) into a new string with
 * surrounding white space trimmed. Free with sb_secret_free().
 */
int sb_secret_file_read(const char *path, char **out, struct sb_err *err);

/* Opaque private key (an OpenSSL EVP_PKEY). */
struct sb_pkey;

/*
 * Load a PEM private key (RSA, at least 2048 bits). The file must pass
 * sb_secret_file_check. Free with sb_pkey_free (NULL is fine).
 */
int sb_pkey_load(struct sb_pkey **out, const char *path, struct sb_err *err);
void sb_pkey_free(struct sb_pkey *k);
/* Borrowed EVP_PKEY * (as void * so this header does not pull in OpenSSL). */
void *sb_pkey_evp(const struct sb_pkey *k);

/* RSASSA-PKCS1-v1_5 with SHA-256 over (p, len); the raw signature is appended to sig. */
int sb_rs256_sign(const struct sb_pkey *k, const void *p, size_t len, struct sb_buf *sig,
		  struct sb_err *err);

/*
 * A compact JWS: base64url(header_json) "." base64url(claims_json) "."
 * base64url(RS256 signature). The JSON texts are used as given, so the
 * caller controls exactly which claims are present.
 */
int sb_jwt_sign_rs256(const struct sb_pkey *k, const char *header_json, const char *claims_json,
		      struct sb_buf *out, struct sb_err *err);

#endif
