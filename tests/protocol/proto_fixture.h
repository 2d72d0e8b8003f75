/*
 * Shared set-up of the protocol tests: a fresh folder with a real SQLite
 * store, a seal key and self-signed certificate made by OpenSSL for this
 * run, the AgID XSD from ../shared, and a struct proto over them.
 * Include after cmocka and th.h.
 */
#ifndef PROTO_FIXTURE_H
#define PROTO_FIXTURE_H

#include <sys/stat.h>

#include "proto.h"
#include "svc_store.h"

struct pf {
	char *dir;
	char *db_path;
	char *key;
	char *cert;
	char *xsd;
	char *pdf;        /* a real PDF/A from fixtures/ */
	char *pdf2;
	struct svc_store *store;
	struct proto *p;
	struct proto_opts o;
	int64_t now;      /* the clock the register sees; 0: the wall clock */
};

static int64_t pf_clock(void *arg)
{
	struct pf *f = arg;

	return f->now;
}

/* Kept as a name the protocol tests use; th_run takes a const list itself. */
static int pf_run(const char *const *args, struct sb_buf *out, struct sb_buf *errb)
{
	return th_run(args, out, errb);
}

/* Make a key and a self-signed certificate with the openssl tool; name is a file stem. */
static void pf_make_seal(const char *dir, const char *name, char **key, char **cert)
{
	char *k = sb_xasprintf("%s/%s.key", dir, name), *c = sb_xasprintf("%s/%s.crt", dir, name);
	const char *gen[] = { "/usr/bin/openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt",
			      "rsa_keygen_bits:2048", "-out", k, NULL };
	const char *req[] = { "/usr/bin/openssl", "req", "-new", "-x509", "-key", k,
			      "-out", c, "-days", "30",
			      "-subj", "/C=IT/O=Comune di Esempio/CN=sigillo protocollo", NULL };

	assert_int_equal(pf_run(gen, NULL, NULL), 0);
	assert_int_equal(chmod(k, 0600), 0);
	assert_int_equal(pf_run(req, NULL, NULL), 0);
	*key = k;
	*cert = c;
}

static void pf_opts(struct pf *f)
{
	memset(&f->o, 0, sizeof(f->o));
	f->o.backend = "embedded";
	f->o.register_code = "PG";
	f->o.ipa_code = "c_x000";
	f->o.aoo_code = "A1B2C3D";
	f->o.ente_name = "Comune di Esempio";
	f->o.ente_tax_id = "00000000000";
	f->o.xsd_path = f->xsd;
	f->o.seal_key_file = f->key;
	f->o.seal_cert_file = f->cert;
	f->o.clock = pf_clock;
	f->o.clock_arg = f;
}

static struct pf *pf_new(const char *tag)
{
	struct pf *f = sb_xcalloc(1, sizeof(*f));
	struct sb_err err = SB_ERR_INIT;

	f->dir = th_tmpdir(tag);
	f->db_path = sb_xasprintf("%s/store.db", f->dir);
	f->xsd = th_shared("specs/agid/segnatura_protocollo.xsd");
	assert_non_null(f->xsd);
	f->pdf = th_fixture("acts/fine-pagopa/verbale.pdf");
	f->pdf2 = th_fixture("acts/fine-pagopa/avviso-pagopa.pdf");
	pf_make_seal(f->dir, "seal", &f->key, &f->cert);
	assert_int_equal(svc_store_open(&f->store, f->db_path, 60000, &err), 0);
	assert_int_equal(proto_store_migrate(svc_store_db(f->store), &err), 0);
	f->now = 1794992000;    /* 2026-11-18T08:53:20Z */
	pf_opts(f);
	if (proto_open(&f->p, svc_store_db(f->store), &f->o, &err) < 0)
		fail_msg("proto_open: %s", err.msg);
	return f;
}

static void pf_free(struct pf *f)
{
	if (!f)
		return;
	proto_free(f->p);
	svc_store_close(f->store);
	th_rmrf(f->dir);
	free(f->dir);
	free(f->db_path);
	free(f->key);
	free(f->cert);
	free(f->xsd);
	free(f->pdf);
	free(f->pdf2);
	free(f);
}

/* An outgoing act with one PF and one PG recipient and two documents. */
struct pf_act {
	struct proto_party rcpt[2];
	struct proto_doc docs[2];
	struct proto_outgoing in;
};

static void pf_act_init(struct pf *f, struct pf_act *a, const char *act_id)
{
	memset(a, 0, sizeof(*a));
	a->rcpt[0] = (struct proto_party){ PROTO_PF, "Mario Rossi", NULL, NULL,
					   "RSSMRA80A01H501U", NULL };
	a->rcpt[1] = (struct proto_party){ PROTO_PG, "Esempio S.r.l.", NULL, NULL, "12345678901",
					   NULL };
	a->docs[0] = (struct proto_doc){ .path = f->pdf, .name = "verbale.pdf",
					 .mime_type = "application/pdf",
					 .title = "Verbale di accertamento" };
	a->docs[1] = (struct proto_doc){ .path = f->pdf2, .name = "avviso-pagopa.pdf" };
	a->in.act_id = act_id;
	a->in.subject = "Verbale di accertamento n. 1001/2026 - art. 142 CdS";
	a->in.classification = "VI.4";
	a->in.classification_name = "Polizia locale - sanzioni";
	a->in.assignment = "polizia-municipale";
	a->in.author = "op.bianchi";
	a->in.recipients = a->rcpt;
	a->in.nrecipients = 2;
	a->in.documents = a->docs;
	a->in.ndocuments = 2;
}

#endif
