/*
 * Fixture makers for agid/ tests (see th_agid.h). PDFs come from
 * Ghostscript or are laid out here object by object with a computed xref;
 * signatures are made with OpenSSL's CMS API over the real byte ranges.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <openssl/cms.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <sys/stat.h>

#include "sb_common.h"
#include "th.h"
#include "th_agid.h"

void tha_run(const char *const *argv)
{
	struct sb_buf out = SB_BUF_INIT(SB_MAX_DEFAULT), err = SB_BUF_INIT(SB_MAX_DEFAULT);
	const char *v[64];
	size_t n = 0;
	int rc;

	/* th_run uses execv: let env(1) find the tool on PATH */
	v[n++] = "/usr/bin/env";
	for (size_t i = 0; argv[i] && n < SB_ARRAY_SIZE(v) - 1; i++)
		v[n++] = argv[i];
	v[n] = NULL;
	rc = th_run(v, &out, &err);

	if (rc != 0)
		fprintf(stderr, "command %s failed (%d): %s\n", argv[0], rc, sb_buf_cstr(&err));
	sb_buf_release(&out);
	sb_buf_release(&err);
	assert_int_equal(rc, 0);
}

char *tha_pdfa_photo(const char *dir, const char *name, const char *title, int pages,
		     int photo_px)
{
	char *path = sb_xasprintf("%s/%s", dir, name), *script = th_fixture("make-fixtures.sh");
	char npages[16], px[16];
	const char *argv[] = { "/bin/sh", script, "--pdf", path, title, npages,
			       photo_px > 0 ? px : NULL, NULL };

	snprintf(npages, sizeof(npages), "%d", pages);
	snprintf(px, sizeof(px), "%d", photo_px);
	tha_run(argv);
	free(script);
	return path;
}

char *tha_pdfa(const char *dir, const char *name, const char *title, int pages)
{
	return tha_pdfa_photo(dir, name, title, pages, 0);
}

char *tha_plain(const char *dir, const char *name, const char *ps_extra)
{
	char *path = sb_xasprintf("%s/%s", dir, name), *ps = sb_xasprintf("%s/%s.ps", dir, name);
	char *outopt = sb_xasprintf("-sOutputFile=%s", path);
	const char *argv[] = { "gs", "-q", "-dSAFER", "-dBATCH", "-dNOPAUSE", "-sDEVICE=pdfwrite",
			       "-dCompatibilityLevel=1.7", outopt, ps, NULL };
	char *body = sb_xasprintf("%%!PS\n%s\n/Helvetica findfont 12 scalefont setfont\n"
				  "72 720 moveto (Documento di prova) show showpage\n",
				  ps_extra ? ps_extra : "");

	th_write_str(ps, body, 0644);
	tha_run(argv);
	free(body);
	free(outopt);
	free(ps);
	return path;
}

void tha_layout(const char *path, const struct tha_obj *objs, size_t n, char **out, size_t *len_out)
{
	struct sb_buf b = SB_BUF_INIT(SB_MAX_DEFAULT * 4);
	size_t *off = sb_xcalloc(n + 1, sizeof(size_t)), xref;

	assert_int_equal(sb_buf_adds(&b, "%PDF-1.7\n%\xe2\xe3\xcf\xd3\n"), 0);
	for (size_t i = 0; i < n; i++) {
		off[i] = b.len;
		assert_int_equal(sb_buf_addf(&b, "%zu 0 obj\n", i + 1), 0);
		assert_int_equal(sb_buf_add(&b, objs[i].body, objs[i].len), 0);
		assert_int_equal(sb_buf_adds(&b, "\nendobj\n"), 0);
	}
	xref = b.len;
	assert_int_equal(sb_buf_addf(&b, "xref\n0 %zu\n0000000000 65535 f \n", n + 1), 0);
	for (size_t i = 0; i < n; i++)
		assert_int_equal(sb_buf_addf(&b, "%010zu 00000 n \n", off[i]), 0);
	assert_int_equal(sb_buf_addf(&b, "trailer\n<< /Size %zu /Root 1 0 R /ID "
				     "[<0123456789abcdef0123456789abcdef>"
				     "<0123456789abcdef0123456789abcdef>] >>\n"
				     "startxref\n%zu\n%%%%EOF\n", n + 1, xref), 0);
	th_write(path, b.buf, b.len, 0644);
	free(off);
	if (out) {
		*out = sb_buf_detach(&b, len_out);
		return;
	}
	sb_buf_release(&b);
}

void tha_make_ca(const char *dir)
{
	char *cakey = sb_xasprintf("%s/ca.key", dir), *ca = sb_xasprintf("%s/ca.pem", dir);
	char *key = sb_xasprintf("%s/signer.key", dir), *csr = sb_xasprintf("%s/signer.csr", dir);
	char *cert = sb_xasprintf("%s/signer.pem", dir), *ext = sb_xasprintf("%s/ext.cnf", dir);
	const char *a1[] = { "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes",
			     "-keyout", cakey, "-out", ca,
			     "-subj", "/CN=send-bridge Test CA", "-days", "3",
			     "-addext", "basicConstraints=critical,CA:TRUE",
			     "-addext", "keyUsage=critical,keyCertSign,cRLSign", NULL };
	const char *a2[] = { "openssl", "req", "-new", "-newkey", "rsa:2048", "-nodes",
			     "-keyout", key, "-out", csr,
			     "-subj", "/CN=Funzionario di Prova/O=Comune di Esempio", NULL };
	const char *a3[] = { "openssl", "x509", "-req", "-in", csr, "-CA", ca, "-CAkey", cakey,
			     "-set_serial", "2", "-days", "3",
			     "-extfile", ext, "-out", cert, NULL };
	char *pkey = sb_xasprintf("%s/plain.key", dir), *pcsr = sb_xasprintf("%s/plain.csr", dir);
	char *pcert = sb_xasprintf("%s/plain.pem", dir), *pext = sb_xasprintf("%s/plain.cnf", dir);
	const char *a4[] = { "openssl", "req", "-new", "-newkey", "rsa:2048", "-nodes",
			     "-keyout", pkey, "-out", pcsr,
			     "-subj", "/CN=Firma Non Qualificata", NULL };
	const char *a5[] = { "openssl", "x509", "-req", "-in", pcsr, "-CA", ca, "-CAkey", cakey,
			     "-set_serial", "3", "-days", "3",
			     "-extfile", pext, "-out", pcert, NULL };

	/*
	 * qcStatements with QcCompliance (0.4.0.1862.1.1): the signer's
	 * certificate is "qualified"
	 */
	th_write_str(ext, "keyUsage=critical,digitalSignature,nonRepudiation\n"
		     "1.3.6.1.5.5.7.1.3=DER:30:0A:30:08:06:06:04:00:8E:46:01:01\n", 0644);
	th_write_str(pext, "keyUsage=critical,digitalSignature\n", 0644);
	tha_run(a1);
	tha_run(a2);
	tha_run(a3);
	tha_run(a4);
	tha_run(a5);
	free(pkey);
	free(pcsr);
	free(pcert);
	free(pext);
	free(cakey);
	free(ca);
	free(key);
	free(csr);
	free(cert);
	free(ext);
}

#define SIG_HEX 16384   /* room for the DER CMS, hex encoded */

char *tha_signed_pdf(const char *dir, const char *name, const char *subfilter)
{
	return tha_signed_pdf_by(dir, name, subfilter, "signer");
}

char *tha_signed_pdf_by(const char *dir, const char *name, const char *subfilter, const char *who)
{
	char *path = sb_xasprintf("%s/%s", dir, name), *data = NULL, *sigdict, *zeros;
	char *cpath = sb_xasprintf("%s/%s.pem", dir, who),
	     *kpath = sb_xasprintf("%s/%s.key", dir, who);
	static const char content[] = "BT /F1 12 Tf 72 720 Td (Avviso firmato) Tj ET";
	char page_content[128];
	size_t len = 0, a, b, dlen;
	char *br, *ct, *signed_bytes;
	unsigned char *der = NULL;
	int derlen;
	FILE *f;
	X509 *cert;
	EVP_PKEY *key;
	BIO *in;
	CMS_ContentInfo *cms;
	struct tha_obj objs[7];

	zeros = sb_xmalloc(SIG_HEX + 1);
	memset(zeros, '0', SIG_HEX);
	zeros[SIG_HEX] = '\0';
	sigdict = sb_xasprintf("<< /Type /Sig /Filter /Adobe.PPKLite /SubFilter /%s "
			       "/ByteRange [0 0000000000 0000000000 0000000000] "
			       "/Contents <%s> /M (D:20260101000000Z) >>", subfilter, zeros);
	snprintf(page_content, sizeof(page_content), "<< /Length %zu >>\nstream\n%s\nendstream",
		 strlen(content), content);
	objs[0] = (struct tha_obj){ "<< /Type /Catalog /Pages 2 0 R"
				    " /AcroForm << /SigFlags 3 /Fields [5 0 R] >> >>", 0 };
	objs[1] = (struct tha_obj){ "<< /Type /Pages /Kids [3 0 R] /Count 1 >>", 0 };
	objs[2] = (struct tha_obj){ "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] "
				    "/Contents 4 0 R /Annots [5 0 R] /Resources << >> >>", 0 };
	objs[3] = (struct tha_obj){ page_content, 0 };
	objs[4] = (struct tha_obj){ "<< /Type /Annot /Subtype /Widget /FT /Sig "
				    "/T (Firma1) /Rect [0 0 0 0] /F 132 /P 3 0 R /V 6 0 R >>", 0 };
	objs[5] = (struct tha_obj){ sigdict, 0 };
	for (size_t i = 0; i < 6; i++)
		objs[i].len = strlen(objs[i].body);
	tha_layout(path, objs, 6, &data, &len);

	/*
	 * The hole is the hex string with its angle brackets; patch the range
	 * in place (same width).
	 */
	ct = strstr(data, "/Contents <0000");
	br = strstr(data, "/ByteRange [0 ");
	assert_non_null(ct);
	assert_non_null(br);
	a = (size_t)(ct - data) + strlen("/Contents ");
	b = a + SIG_HEX + 2;
	{
		char range[64];

		snprintf(range, sizeof(range), "[0 %010zu %010zu %010zu]", a, b, len - b);
		memcpy(br + strlen("/ByteRange "), range, strlen(range));
	}
	dlen = a + (len - b);
	signed_bytes = sb_xmalloc(dlen);
	memcpy(signed_bytes, data, a);
	memcpy(signed_bytes + a, data + b, len - b);

	f = fopen(cpath, "r");
	assert_non_null(f);
	cert = PEM_read_X509(f, NULL, NULL, NULL);
	fclose(f);
	f = fopen(kpath, "r");
	assert_non_null(f);
	key = PEM_read_PrivateKey(f, NULL, NULL, NULL);
	fclose(f);
	assert_non_null(cert);
	assert_non_null(key);
	in = BIO_new_mem_buf(signed_bytes, (int)dlen);
	/*
	 * PAdES baseline signatures carry signing-certificate-v2 (CAdES);
	 * legacy PKCS#7 ones do not
	 */
	cms = CMS_sign(cert, key, NULL, in, CMS_DETACHED | CMS_BINARY |
		       (strstr(subfilter, "CAdES") ? CMS_CADES : 0));
	assert_non_null(cms);
	derlen = i2d_CMS_ContentInfo(cms, &der);
	assert_true(derlen > 0 && (size_t)derlen * 2 <= SIG_HEX);
	for (int i = 0; i < derlen; i++) {
		static const char hex[] = "0123456789abcdef";

		data[a + 1 + 2 * (size_t)i] = hex[der[i] >> 4];
		data[a + 2 + 2 * (size_t)i] = hex[der[i] & 15];
	}
	th_write(path, data, len, 0644);

	OPENSSL_free(der);
	CMS_ContentInfo_free(cms);
	BIO_free(in);
	X509_free(cert);
	EVP_PKEY_free(key);
	free(signed_bytes);
	free(data);
	free(sigdict);
	free(zeros);
	free(cpath);
	free(kpath);
	return path;
}
