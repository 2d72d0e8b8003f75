/*
 * Crypto helpers (common/sb_crypto.c): SHA-256 against FIPS 180-2 vectors,
 * streamed over files larger than one chunk; RFC 4648 base64 vectors;
 * secret-file permissions; RS256/JWT signatures checked by the openssl
 * command line (an independent verifier) with a key generated for the test.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "sb_common.h"
#include "sb_crypto.h"
#include "th.h"

static char *hex_of(const unsigned char *d, size_t n)
{
	struct sb_buf b = SB_BUF_INIT(1024);

	sb_hex_encode(d, n, &b);
	return sb_buf_detach(&b, NULL);
}

static void test_sb_crypto__sha256_vectors(void **state)
{
	static const struct { const char *in; const char *hex; } v[] = {
		{ "", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855" },
		{ "abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad" },
		{ "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
		  "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1" },
	};
	unsigned char d[SB_SHA256_LEN];

	(void)state;
	for (size_t i = 0; i < SB_ARRAY_SIZE(v); i++) {
		char *h;

		sb_sha256(v[i].in, strlen(v[i].in), d);
		h = hex_of(d, sizeof(d));
		assert_string_equal(h, v[i].hex);
		free(h);
	}
}

static void test_sb_crypto__sha256_file_streamed(void **state)
{
	char *dir = th_tmpdir("sha"), *path = sb_xasprintf("%s/a.bin", dir), *h;
	/* One million 'a' (FIPS 180-2 vector): 15+ chunks of 64 KiB, last one partial. */
	size_t n = 1000000;
	char *data = sb_xmalloc(n);
	unsigned char d[SB_SHA256_LEN];
	struct sb_err err = SB_ERR_INIT;
	uint64_t size = 0;

	(void)state;
	memset(data, 'a', n);
	th_write(path, data, n, 0600);
	assert_int_equal(sb_sha256_file(path, d, &size, &err), 0);
	assert_int_equal(size, n);
	h = hex_of(d, sizeof(d));
	assert_string_equal(h, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
	free(h);

	/* exactly one chunk, so the loop's boundary is exercised too */
	th_write(path, data, SB_FILE_CHUNK, 0600);
	assert_int_equal(sb_sha256_file(path, d, &size, &err), 0);
	assert_int_equal(size, SB_FILE_CHUNK);
	{
		unsigned char m[SB_SHA256_LEN];

		sb_sha256(data, SB_FILE_CHUNK, m);
		assert_memory_equal(d, m, sizeof(d));
	}
	free(path);
	path = sb_xasprintf("%s/missing.bin", dir);
	memset(d, 0x5a, sizeof(d));
	assert_int_equal(sb_sha256_file(path, d, &size, &err), SB_ENOTFOUND);
	assert_int_equal(err.code, SB_ENOTFOUND);
	assert_non_null(strstr(err.msg, "missing.bin"));
	assert_int_equal(d[0], 0x5a);   /* output untouched on failure */
	free(path);
	free(data);
	th_rmrf(dir);
	free(dir);
}

static void test_sb_crypto__base64_rfc4648(void **state)
{
	static const struct { const char *in, *b64, *url; } v[] = {
		{ "", "", "" },
		{ "f", "Zg==", "Zg" },
		{ "fo", "Zm8=", "Zm8" },
		{ "foo", "Zm9v", "Zm9v" },
		{ "foob", "Zm9vYg==", "Zm9vYg" },
		{ "fooba", "Zm9vYmE=", "Zm9vYmE" },
		{ "foobar", "Zm9vYmFy", "Zm9vYmFy" },
		{ "\xfb\xff\xbf", "+/+/", "-_-_" },
	};
	(void)state;
	for (size_t i = 0; i < SB_ARRAY_SIZE(v); i++) {
		struct sb_buf a = SB_BUF_INIT(64), b = SB_BUF_INIT(64), c = SB_BUF_INIT(64);

		assert_int_equal(sb_base64_encode(v[i].in, strlen(v[i].in), &a), 0);
		assert_string_equal(sb_buf_cstr(&a), v[i].b64);
		assert_int_equal(sb_base64url_encode(v[i].in, strlen(v[i].in), &b), 0);
		assert_string_equal(sb_buf_cstr(&b), v[i].url);
		assert_int_equal(sb_base64_decode(a.buf ? a.buf : "", a.len, &c), 0);
		assert_int_equal(c.len, strlen(v[i].in));
		assert_memory_equal(sb_buf_cstr(&c), v[i].in, c.len);
		sb_buf_reset(&c);
		assert_int_equal(sb_base64url_decode(b.buf ? b.buf : "", b.len, &c), 0);
		assert_memory_equal(sb_buf_cstr(&c), v[i].in, c.len);
		sb_buf_release(&a);
		sb_buf_release(&b);
		sb_buf_release(&c);
	}
}

static void test_sb_crypto__decoders_refuse_garbage(void **state)
{
	static const char *const bad64[] = { "Zg=", "Zm9v!", "Zh==", "Z===", "Zm9vYg=" };
	struct sb_buf out = SB_BUF_INIT(64), small = SB_BUF_INIT(2);

	(void)state;
	for (size_t i = 0; i < SB_ARRAY_SIZE(bad64); i++) {
		if (sb_base64_decode(bad64[i], strlen(bad64[i]), &out) != SB_EINVAL)
			fail_msg("'%s' accepted", bad64[i]);
		assert_int_equal(out.len, 0);
	}
	assert_int_equal(sb_hex_decode("abc", 3, &out), SB_EINVAL);
	assert_int_equal(sb_hex_decode("zz", 2, &out), SB_EINVAL);
	assert_int_equal(sb_hex_decode("00ff", 4, &out), 0);
	assert_int_equal(out.len, 2);
	assert_int_equal((unsigned char)out.buf[1], 0xff);
	/* the buffer's ceiling holds */
	assert_int_equal(sb_base64_encode("foobar", 6, &small), SB_ETOOBIG);
	assert_int_equal(small.len, 0);
	sb_buf_release(&out);
	sb_buf_release(&small);
}

static void test_sb_crypto__uuid4_format(void **state)
{
	char a[37], b[37];

	(void)state;
	sb_uuid4(a);
	sb_uuid4(b);
	assert_int_equal(strlen(a), 36);
	assert_string_not_equal(a, b);
	assert_int_equal(a[14], '4');
	assert_non_null(strchr("89ab", a[19]));
	for (int i = 0; i < 36; i++) {
		if (i == 8 || i == 13 || i == 18 || i == 23)
			assert_int_equal(a[i], '-');
		else
			assert_non_null(strchr("0123456789abcdef", a[i]));
	}
}

static void test_sb_crypto__jwt_verified_by_openssl(void **state)
{
	char *dir = th_tmpdir("jwt"), *key = sb_xasprintf("%s/key.pem", dir);
	char *pub = sb_xasprintf("%s/pub.pem", dir), *in = sb_xasprintf("%s/in", dir);
	char *sig = sb_xasprintf("%s/sig", dir);
	const char *gen[] = { "/usr/bin/openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt",
			      "rsa_keygen_bits:2048", "-out", key, NULL };
	const char *pubcmd[] = { "/usr/bin/openssl", "pkey", "-in", key, "-pubout",
				 "-out", pub, NULL };
	const char *verify[] = { "/usr/bin/openssl", "dgst", "-sha256", "-verify", pub,
				 "-signature", sig, in, NULL };
	struct sb_buf jwt = SB_BUF_INIT(8192), raw = SB_BUF_INIT(8192), vout = SB_BUF_INIT(256);
	struct sb_err err = SB_ERR_INIT;
	struct sb_pkey *pk = NULL;
	const char *dot1, *dot2;

	(void)state;
	assert_int_equal(th_run(gen, NULL, NULL), 0);
	assert_int_equal(th_run(pubcmd, NULL, NULL), 0);

	/* a key readable by others is refused before it is read */
	assert_int_equal(chmod(key, 0644), 0);
	assert_int_equal(sb_pkey_load(&pk, key, &err), SB_ECONFIG);
	assert_null(pk);
	assert_non_null(strstr(err.msg, "chmod 600"));
	assert_int_equal(chmod(key, 0600), 0);
	assert_int_equal(sb_pkey_load(&pk, key, &err), 0);

	assert_int_equal(sb_jwt_sign_rs256(pk, "{\"alg\":\"RS256\",\"typ\":\"JWT\"}",
					   "{\"iss\":\"client\",\"iat\":1}", &jwt, &err), 0);
	dot1 = strchr(jwt.buf, '.');
	dot2 = dot1 ? strchr(dot1 + 1, '.') : NULL;
	assert_non_null(dot2);
	/* signing input and signature, handed to openssl for an independent check */
	th_write(in, jwt.buf, (size_t)(dot2 - jwt.buf), 0600);
	assert_int_equal(sb_base64url_decode(dot2 + 1, strlen(dot2 + 1), &raw), 0);
	assert_int_equal(raw.len, 256);
	th_write(sig, raw.buf, raw.len, 0600);
	assert_int_equal(th_run(verify, &vout, NULL), 0);
	assert_non_null(strstr(sb_buf_cstr(&vout), "Verified OK"));
	/* one changed byte in the signed input must fail verification */
	((char *)jwt.buf)[3] ^= 1;
	th_write(in, jwt.buf, (size_t)(dot2 - jwt.buf), 0600);
	assert_int_not_equal(th_run(verify, NULL, NULL), 0);

	sb_pkey_free(pk);
	sb_buf_release(&jwt);
	sb_buf_release(&raw);
	sb_buf_release(&vout);
	th_rmrf(dir);
	free(dir); free(key); free(pub); free(in); free(sig);
}

static void test_sb_crypto__secret_file_read(void **state)
{
	char *dir = th_tmpdir("secret"), *p = sb_xasprintf("%s/token", dir);
	struct sb_err err = SB_ERR_INIT;
	char *val = NULL;

	(void)state;
	th_write_str(p, "  abc.def \n", 0600);
	assert_int_equal(sb_secret_file_read(p, &val, &err), 0);
	assert_string_equal(val, "abc.def");
	sb_secret_free(val);
	val = NULL;
	th_write_str(p, "\n\n", 0600);
	assert_int_equal(sb_secret_file_read(p, &val, &err), SB_ECONFIG);
	assert_null(val);
	assert_non_null(strstr(err.msg, "is empty"));
	th_write_str(p, "abc", 0604);
	assert_int_equal(sb_secret_file_read(p, &val, &err), SB_ECONFIG);
	assert_non_null(strstr(err.msg, "mode 0604"));
	th_rmrf(dir);
	free(dir);
	free(p);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_sb_crypto__sha256_vectors),
		cmocka_unit_test(test_sb_crypto__sha256_file_streamed),
		cmocka_unit_test(test_sb_crypto__base64_rfc4648),
		cmocka_unit_test(test_sb_crypto__decoders_refuse_garbage),
		cmocka_unit_test(test_sb_crypto__uuid4_format),
		cmocka_unit_test(test_sb_crypto__jwt_verified_by_openssl),
		cmocka_unit_test(test_sb_crypto__secret_file_read),
	};
	return cmocka_run_group_tests_name("sb_crypto", tests, NULL, NULL);
}
