/*
 * The audit trails' shared pieces: see sb_audit.h and docs/decisions/0014.
 *
 * sb_audit_mac_row runs once per audit row on the daemon's hot path, inside
 * the store's write transaction, so the keyed HMAC state is built once
 * (sb_audit_mac_new: both padded key blocks hashed) and each row copies it:
 * a row then costs its own bytes and one block for the outer hash, and no
 * lookup in OpenSSL's provider store, which goes through a lock every
 * worker shares.
 */
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/kdf.h>
#include <openssl/params.h>
#include <string.h>

#include "sb_common.h"
#include "sb_cfg.h"
#include "sb_crypto.h"
#include "sb_audit.h"

struct sb_audit_mac {
	EVP_MAC_CTX *keyed;   /* initialised with the key; copied per row, never used itself */
};

int sb_audit_key_load(const struct sb_cfg *cfg, unsigned char key[SB_AUDIT_KEY_SIZE],
		      bool *have, struct sb_err *err)
{
	const char *file = sb_cfg_str(cfg, "pdnd", "audit_key_file");
	char *secret = NULL;
	int rc;

	*have = false;
	if (!file)
		return 0;
	rc = sb_secret_file_read(file, &secret, err);
	if (rc < 0)
		return sb_err_prefix(err, "[pdnd] audit_key_file");
	if (strlen(secret) < 16) {
		sb_secret_free(secret);
		return sb_err_set(err, SB_ECONFIG, 0,
				  "[pdnd] audit_key_file: shorter than 16 bytes");
	}
	/* A fixed-size key whatever the file holds (hex, base64 or raw bytes). */
	sb_sha256(secret, strlen(secret), key);
	sb_secret_free(secret);
	*have = true;
	return 0;
}

void sb_audit_key_derive(const unsigned char key[SB_AUDIT_KEY_SIZE], const char *label,
			 unsigned char out[SB_AUDIT_KEY_SIZE])
{
	EVP_KDF *kdf = EVP_KDF_fetch(NULL, "HKDF", NULL);
	EVP_KDF_CTX *ctx = kdf ? EVP_KDF_CTX_new(kdf) : NULL;
	OSSL_PARAM params[4];

	/* Casts drop const only for OSSL_PARAM's sake: OpenSSL reads these. */
	params[0] = OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST,
						     (char *)(uintptr_t)"SHA256", 0);
	params[1] = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, (void *)(uintptr_t)key,
						      SB_AUDIT_KEY_SIZE);
	params[2] = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO, (void *)(uintptr_t)label,
						      strlen(label));
	params[3] = OSSL_PARAM_construct_end();
	SB_ASSERT(ctx && EVP_KDF_derive(ctx, out, SB_AUDIT_KEY_SIZE, params) == 1);
	EVP_KDF_CTX_free(ctx);
	EVP_KDF_free(kdf);
}

void sb_audit_sha256_hex(const void *p, size_t len, char out[SB_AUDIT_HEX_SIZE])
{
	unsigned char d[SB_SHA256_LEN];
	struct sb_buf hex = SB_BUF_INIT(SB_AUDIT_HEX_SIZE);

	sb_sha256(p, len, d);
	sb_hex_encode(d, sizeof(d), &hex);
	memcpy(out, hex.buf, SB_AUDIT_HEX_SIZE);
	sb_buf_release(&hex);
}

void sb_audit_hmac_hex(const unsigned char key[SB_AUDIT_KEY_SIZE], const void *p, size_t len,
		       char out[SB_AUDIT_HEX_SIZE])
{
	unsigned char mac[EVP_MAX_MD_SIZE];
	unsigned int n = 0;
	struct sb_buf hex = SB_BUF_INIT(SB_AUDIT_HEX_SIZE);

	HMAC(EVP_sha256(), key, SB_AUDIT_KEY_SIZE, p, len, mac, &n);
	sb_hex_encode(mac, n, &hex);
	memcpy(out, hex.buf, SB_AUDIT_HEX_SIZE);
	sb_buf_release(&hex);
}

void sb_audit_row_encode(struct sb_buf *b, const char *prev, int64_t id, int64_t at,
			 const char *const *f, size_t n)
{
	sb_buf_addf(b, "%s|%lld|%lld", prev, (long long)id, (long long)at);
	for (size_t i = 0; i < n; i++) {
		/* NULL and "" differ: a NULL field must not be replaced by "" unnoticed. */
		if (f[i])
			sb_buf_addf(b, "|%zu:%s", strlen(f[i]), f[i]);
		else
			sb_buf_adds(b, "|-");
	}
}

struct sb_audit_mac *sb_audit_mac_new(const unsigned char key[SB_AUDIT_KEY_SIZE])
{
	struct sb_audit_mac *m = sb_xcalloc(1, sizeof(*m));
	EVP_MAC *mac = EVP_MAC_fetch(NULL, "HMAC", NULL);
	OSSL_PARAM params[2];

	/* The cast drops const for OSSL_PARAM's sake: OpenSSL reads it. */
	params[0] = OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST,
						     (char *)(uintptr_t)"SHA512", 0);
	params[1] = OSSL_PARAM_construct_end();
	m->keyed = mac ? EVP_MAC_CTX_new(mac) : NULL;
	SB_ASSERT(m->keyed && EVP_MAC_init(m->keyed, key, SB_AUDIT_KEY_SIZE, params) == 1);
	EVP_MAC_free(mac);   /* the context holds its own reference */
	return m;
}

void sb_audit_mac_free(struct sb_audit_mac *m)
{
	if (!m)
		return;
	EVP_MAC_CTX_free(m->keyed);   /* OpenSSL cleanses the key it holds */
	free(m);
}

void sb_audit_mac_row(const struct sb_audit_mac *m, const char *prev_seal, const void *p,
		      size_t len, char link[SB_AUDIT_HEX_SIZE], char seal[SB_AUDIT_HEX_SIZE])
{
	/* EVP_MAC_CTX_dup only reads its source, so threads may share m. */
	EVP_MAC_CTX *ctx = EVP_MAC_CTX_dup(m->keyed);
	unsigned char out[64];
	size_t n = 0;
	struct sb_buf hex = SB_BUF_INIT(2 * sizeof(out) + 1);

	SB_ASSERT(ctx);
	SB_ASSERT(EVP_MAC_update(ctx, (const unsigned char *)prev_seal, strlen(prev_seal)) == 1 &&
		  EVP_MAC_update(ctx, (const unsigned char *)"|", 1) == 1 &&
		  EVP_MAC_update(ctx, p, len) == 1 &&
		  EVP_MAC_final(ctx, out, &n, sizeof(out)) == 1 && n == sizeof(out));
	EVP_MAC_CTX_free(ctx);
	sb_hex_encode(out, sizeof(out), &hex);
	memcpy(link, hex.buf, 64);
	link[64] = '\0';
	memcpy(seal, hex.buf + 64, 64);
	seal[64] = '\0';
	OPENSSL_cleanse(out, sizeof(out));
	sb_buf_release(&hex);
}
