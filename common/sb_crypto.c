/*
 * Crypto helpers: see sb_crypto.h. Hashing of files is streamed so that a
 * 200 MB PDF costs one 64 KiB buffer; key files are refused when others can
 * read them, before a single byte of them is read.
 */

#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/rsa.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "sb_common.h"
#include "sb_crypto.h"

struct sb_sha256_ctx {
	EVP_MD_CTX *md;
};

struct sb_pkey {
	EVP_PKEY *pkey;
};

static pthread_once_t sha256_once = PTHREAD_ONCE_INIT;
static EVP_MD *sha256_md;

/*
 * Fetched once: with EVP_sha256() OpenSSL 3 looks the implementation up in
 * its provider store at every digest, under a lock that all workers share,
 * which costs more than hashing a short text.
 */
static void sha256_fetch(void)
{
	sha256_md = EVP_MD_fetch(NULL, "SHA256", NULL);
}

static const EVP_MD *sha256_impl(void)
{
	pthread_once(&sha256_once, sha256_fetch);
	return sha256_md ? sha256_md : EVP_sha256();
}

void sb_sha256(const void *p, size_t len, unsigned char out[SB_SHA256_LEN])
{
	unsigned int n = 0;

	if (EVP_Digest(p, len, out, &n, sha256_impl(), NULL) != 1 || n != SB_SHA256_LEN)
		SB_ASSERT(!"EVP_Digest sha256 failed");
}

struct sb_sha256_ctx *sb_sha256_begin(void)
{
	struct sb_sha256_ctx *c = sb_xcalloc(1, sizeof(*c));

	c->md = EVP_MD_CTX_new();
	SB_ASSERT(c->md);
	if (EVP_DigestInit_ex(c->md, sha256_impl(), NULL) != 1)
		SB_ASSERT(!"EVP_DigestInit_ex failed");
	return c;
}

void sb_sha256_update(struct sb_sha256_ctx *c, const void *p, size_t len)
{
	if (EVP_DigestUpdate(c->md, p, len) != 1)
		SB_ASSERT(!"EVP_DigestUpdate failed");
}

void sb_sha256_end(struct sb_sha256_ctx *c, unsigned char out[SB_SHA256_LEN])
{
	unsigned int n = 0;

	if (EVP_DigestFinal_ex(c->md, out, &n) != 1 || n != SB_SHA256_LEN)
		SB_ASSERT(!"EVP_DigestFinal_ex failed");
	EVP_MD_CTX_free(c->md);
	free(c);
}

int sb_sha256_file(const char *path, unsigned char out[SB_SHA256_LEN], uint64_t *size_out,
		   struct sb_err *err)
{
	unsigned char *chunk = NULL;
	struct sb_sha256_ctx *c = NULL;
	uint64_t total = 0;
	int fd, rc = 0;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return sb_err_set(err, errno == ENOENT ? SB_ENOTFOUND : SB_EIO, errno,
				  "cannot open '%s': %s", path, strerror(errno));
	chunk = sb_xmalloc(SB_FILE_CHUNK);
	c = sb_sha256_begin();
	for (;;) {
		ssize_t n = read(fd, chunk, SB_FILE_CHUNK);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			rc = sb_err_set(err, SB_EIO, errno, "cannot read '%s': %s", path,
					strerror(errno));
			break;
		}
		if (n == 0)
			break;
		sb_sha256_update(c, chunk, (size_t)n);
		total += (uint64_t)n;
	}
	if (rc == 0) {
		sb_sha256_end(c, out);
		if (size_out)
			*size_out = total;
	} else {
		unsigned char scratch[SB_SHA256_LEN];

		sb_sha256_end(c, scratch);
	}
	free(chunk);
	close(fd);
	return rc;
}

static const char b64std[] =
	"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
static const char b64url[] =
	"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

static int b64_encode(const char *alpha, bool pad, const void *in, size_t len,
		      struct sb_buf *out)
{
	const unsigned char *p = in;
	size_t start = out->len, i;
	char q[4];

	for (i = 0; i + 2 < len; i += 3) {
		q[0] = alpha[p[i] >> 2];
		q[1] = alpha[((p[i] & 3) << 4) | (p[i + 1] >> 4)];
		q[2] = alpha[((p[i + 1] & 15) << 2) | (p[i + 2] >> 6)];
		q[3] = alpha[p[i + 2] & 63];
		if (sb_buf_add(out, q, 4) < 0)
			goto toobig;
	}
	if (i < len) {
		size_t n = 2;

		q[0] = alpha[p[i] >> 2];
		if (i + 1 < len) {
			q[1] = alpha[((p[i] & 3) << 4) | (p[i + 1] >> 4)];
			q[2] = alpha[(p[i + 1] & 15) << 2];
			n = 3;
		} else {
			q[1] = alpha[(p[i] & 3) << 4];
		}
		if (pad) {
			while (n < 4)
				q[n++] = '=';
		}
		if (sb_buf_add(out, q, n) < 0)
			goto toobig;
	}
	return 0;
toobig:
	out->len = start;
	if (out->buf)
		out->buf[start] = '\0';
	return SB_ETOOBIG;
}

int sb_base64_encode(const void *p, size_t len, struct sb_buf *out)
{
	return b64_encode(b64std, true, p, len, out);
}

int sb_base64url_encode(const void *p, size_t len, struct sb_buf *out)
{
	return b64_encode(b64url, false, p, len, out);
}

int sb_hex_encode(const void *in, size_t len, struct sb_buf *out)
{
	static const char hex[] = "0123456789abcdef";
	const unsigned char *p = in;
	size_t start = out->len;

	for (size_t i = 0; i < len; i++) {
		char h[2] = { hex[p[i] >> 4], hex[p[i] & 15] };

		if (sb_buf_add(out, h, 2) < 0) {
			out->len = start;
			if (out->buf)
				out->buf[start] = '\0';
			return SB_ETOOBIG;
		}
	}
	return 0;
}

static int b64_value(const char *alpha, char c)
{
	const char *p = memchr(alpha, c, 64);

	return (p && c) ? (int)(p - alpha) : -1;
}

static int b64_decode(const char *alpha, bool need_pad, const char *s, size_t len,
		      struct sb_buf *out)
{
	size_t start = out->len, pad = 0, i;
	uint32_t acc = 0;
	int bits = 0;

	while (pad < len && pad < 2 && s[len - 1 - pad] == '=')
		pad++;
	if (need_pad && len % 4 != 0)
		return SB_EINVAL;
	if (pad && (len % 4 != 0))
		return SB_EINVAL;
	len -= pad;
	if (len % 4 == 1)
		return SB_EINVAL;
	for (i = 0; i < len; i++) {
		int v = b64_value(alpha, s[i]);

		if (v < 0)
			goto bad;
		acc = (acc << 6) | (uint32_t)v;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			if (sb_buf_addch(out, (char)((acc >> bits) & 0xff)) < 0)
				goto toobig;
		}
	}
	/* Leftover bits must be zero: a non-canonical encoding is refused. */
	if (bits && (acc & ((1u << bits) - 1)))
		goto bad;
	return 0;
bad:
	out->len = start;
	if (out->buf)
		out->buf[start] = '\0';
	return SB_EINVAL;
toobig:
	out->len = start;
	if (out->buf)
		out->buf[start] = '\0';
	return SB_ETOOBIG;
}

int sb_base64_decode(const char *s, size_t len, struct sb_buf *out)
{
	return b64_decode(b64std, true, s, len, out);
}

int sb_base64url_decode(const char *s, size_t len, struct sb_buf *out)
{
	return b64_decode(b64url, false, s, len, out);
}

int sb_hex_decode(const char *s, size_t len, struct sb_buf *out)
{
	size_t start = out->len;

	if (len % 2)
		return SB_EINVAL;
	for (size_t i = 0; i < len; i += 2) {
		int hi = -1, lo = -1;
		char pair[2] = { s[i], s[i + 1] };

		for (int k = 0; k < 2; k++) {
			char c = pair[k];
			int v = (c >= '0' && c <= '9') ? c - '0' :
				(c >= 'a' && c <= 'f') ? c - 'a' + 10 :
				(c >= 'A' && c <= 'F') ? c - 'A' + 10 : -1;
			if (k == 0)
				hi = v;
			else
				lo = v;
		}
		if (hi < 0 || lo < 0 || sb_buf_addch(out, (char)(hi << 4 | lo)) < 0) {
			out->len = start;
			if (out->buf)
				out->buf[start] = '\0';
			return hi < 0 || lo < 0 ? SB_EINVAL : SB_ETOOBIG;
		}
	}
	return 0;
}

void sb_random_bytes(void *p, size_t len)
{
	SB_ASSERT(len <= INT32_MAX);
	if (RAND_bytes(p, (int)len) != 1)
		SB_ASSERT(!"RAND_bytes failed");
}

void sb_uuid4(char out[37])
{
	unsigned char b[16];

	sb_random_bytes(b, sizeof(b));
	b[6] = (unsigned char)((b[6] & 0x0f) | 0x40);
	b[8] = (unsigned char)((b[8] & 0x3f) | 0x80);
	snprintf(out, 37,
		 "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
		 b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11],
		 b[12], b[13], b[14], b[15]);
}

int sb_secret_file_check(const char *path, struct sb_err *err)
{
	struct stat st;

	if (stat(path, &st) < 0)
		return sb_err_set(err, errno == ENOENT ? SB_ENOTFOUND : SB_ECONFIG, errno,
				  "secret file '%s': %s", path, strerror(errno));
	if (!S_ISREG(st.st_mode))
		return sb_err_set(err, SB_ECONFIG, 0, "secret file '%s' is not a regular file",
				  path);
	if (st.st_mode & 077)
		return sb_err_set(err, SB_ECONFIG, 0,
				  "secret file '%s' is accessible by group or others "
				  "(mode %04o); run chmod 600 on it",
				  path, (unsigned)(st.st_mode & 07777));
	return 0;
}

int sb_secret_file_read(const char *path, char **out, struct sb_err *err)
{
	struct sb_buf b = SB_BUF_INIT(SB_MAX_SECRET_FILE);
	char chunk[4096];
	int fd, rc;
	size_t s, e;
	char *val;

	rc = sb_secret_file_check(path, err);
	if (rc < 0)
		return rc;
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return sb_err_set(err, SB_ECONFIG, errno, "cannot open secret file '%s': %s",
				  path, strerror(errno));
	for (;;) {
		ssize_t n = read(fd, chunk, sizeof(chunk));

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			rc = sb_err_set(err, SB_EIO, errno, "cannot read '%s': %s", path,
					strerror(errno));
			break;
		}
		if (n == 0)
			break;
		if (sb_buf_add(&b, chunk, (size_t)n) < 0) {
			rc = sb_err_set(err, SB_ETOOBIG, 0,
					"secret file '%s' is larger than %u bytes",
					path, SB_MAX_SECRET_FILE);
			break;
		}
	}
	close(fd);
	sb_wipe(chunk, sizeof(chunk));
	if (rc == 0) {
		const char *p = sb_buf_cstr(&b);

		for (s = 0; s < b.len && strchr(" \t\r\n", p[s]); s++)
			;
		for (e = b.len; e > s && strchr(" \t\r\n", p[e - 1]); e--)
			;
		if (e == s) {
			rc = sb_err_set(err, SB_ECONFIG, 0, "secret file '%s' is empty", path);
		} else {
			val = sb_xstrndup(p + s, e - s);
			*out = val;
		}
	}
	sb_wipe(b.buf, b.alloc);
	sb_buf_release(&b);
	return rc;
}

int sb_pkey_load(struct sb_pkey **out, const char *path, struct sb_err *err)
{
	FILE *f = NULL;
	EVP_PKEY *pkey = NULL;
	struct sb_pkey *k;
	int rc;

	rc = sb_secret_file_check(path, err);
	if (rc < 0)
		return rc;
	f = fopen(path, "re");
	if (!f)
		return sb_err_set(err, SB_ECONFIG, errno, "cannot open key '%s': %s", path,
				  strerror(errno));
	pkey = PEM_read_PrivateKey(f, NULL, NULL, NULL);
	fclose(f);
	if (!pkey)
		return sb_err_set(err, SB_ECONFIG, 0, "'%s' is not a PEM private key", path);
	if (EVP_PKEY_get_base_id(pkey) != EVP_PKEY_RSA || EVP_PKEY_get_bits(pkey) < 2048) {
		EVP_PKEY_free(pkey);
		return sb_err_set(err, SB_ECONFIG, 0,
				  "key '%s' must be RSA with at least 2048 bits", path);
	}
	k = sb_xcalloc(1, sizeof(*k));
	k->pkey = pkey;
	*out = k;
	return 0;
}

void sb_pkey_free(struct sb_pkey *k)
{
	if (!k)
		return;
	EVP_PKEY_free(k->pkey);
	free(k);
}

void *sb_pkey_evp(const struct sb_pkey *k)
{
	return k->pkey;
}

int sb_rs256_sign(const struct sb_pkey *k, const void *p, size_t len, struct sb_buf *sig,
		  struct sb_err *err)
{
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	unsigned char *out = NULL;
	size_t out_len = 0;
	int rc = 0;

	SB_ASSERT(md);
	if (EVP_DigestSignInit(md, NULL, EVP_sha256(), NULL, k->pkey) != 1 ||
	    EVP_DigestSign(md, NULL, &out_len, p, len) != 1) {
		rc = sb_err_set(err, SB_EINTERNAL, 0, "rs256 signature setup failed");
		goto cleanup;
	}
	out = sb_xmalloc(out_len);
	if (EVP_DigestSign(md, out, &out_len, p, len) != 1) {
		rc = sb_err_set(err, SB_EINTERNAL, 0, "rs256 signature failed");
		goto cleanup;
	}
	if (sb_buf_add(sig, out, out_len) < 0)
		rc = sb_err_set(err, SB_ETOOBIG, 0, "signature buffer too small");
cleanup:
	free(out);
	EVP_MD_CTX_free(md);
	return rc;
}

int sb_jwt_sign_rs256(const struct sb_pkey *k, const char *header_json, const char *claims_json,
		      struct sb_buf *out, struct sb_err *err)
{
	struct sb_buf input = SB_BUF_INIT(SB_MAX_DEFAULT);
	struct sb_buf sig = SB_BUF_INIT(4096);
	int rc;

	if (sb_base64url_encode(header_json, strlen(header_json), &input) < 0 ||
	    sb_buf_addch(&input, '.') < 0 ||
	    sb_base64url_encode(claims_json, strlen(claims_json), &input) < 0) {
		rc = sb_err_set(err, SB_ETOOBIG, 0, "jwt too large");
		goto cleanup;
	}
	rc = sb_rs256_sign(k, input.buf, input.len, &sig, err);
	if (rc < 0)
		goto cleanup;
	if (sb_buf_add(out, input.buf, input.len) < 0 || sb_buf_addch(out, '.') < 0 ||
	    sb_base64url_encode(sig.buf, sig.len, out) < 0)
		rc = sb_err_set(err, SB_ETOOBIG, 0, "jwt output buffer too small");
cleanup:
	sb_buf_release(&input);
	sb_buf_release(&sig);
	return rc;
}
