/*
 * Benchmark driver for scripts/bench-protocol.sh (not part of the build):
 *
 *   bench_protocol DB XSD KEY CERT ACT_PDF RECEIPT_PDF N
 *
 * Registers N acts in the embedded register the way the daemon does for
 * each act (issue 7): one outgoing registration with two documents, then
 * three incoming SEND receipts linked to it, all on one struct proto in one
 * thread. Prints the CPU time (getrusage: user + system) per registration,
 * which is what bounds acts per second on a shared 2-core machine; wall time
 * would mostly measure the disk's fsync.
 */
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>

#include "sb_common.h"
#include "sb_time.h"
#include "proto.h"
#include "svc_store.h"

static double cpu_seconds(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
	       (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

static int die(const char *what, const struct sb_err *err)
{
	fprintf(stderr, "bench_protocol: %s: %s\n", what, err->msg);
	return 1;
}

int main(int argc, char **argv)
{
	static const char *const cats[3] = { "SENDER_ACK", "DIGITAL_DELIVERY", "PEC_RECEIPT" };
	struct sb_err err = SB_ERR_INIT;
	struct svc_store *store = NULL;
	struct proto *p = NULL;
	struct proto_opts o;
	struct proto_party rcpt = { PROTO_PF, "Mario Rossi", NULL, NULL, "RSSMRA80A01H501U",
				    NULL };
	struct proto_doc docs[2];
	struct proto_outgoing in;
	double cpu0, cpu1;
	int64_t t0, t1;
	long n;

	if (argc != 8 || (n = strtol(argv[7], NULL, 10)) <= 0)
		return fprintf(stderr, "usage: bench_protocol DB XSD KEY CERT ACT_PDF"
			       " RECEIPT_PDF N\n"), 2;
	memset(&o, 0, sizeof(o));
	o.backend = "embedded";
	o.ipa_code = "c_x000";
	o.aoo_code = "A1B2C3D";
	o.ente_name = "Comune di Esempio";
	o.ente_tax_id = "00000000000";
	o.xsd_path = argv[2];
	o.seal_key_file = argv[3];
	o.seal_cert_file = argv[4];
	if (svc_store_open(&store, argv[1], 60000, &err) < 0)
		return die("store", &err);
	if (proto_store_migrate(svc_store_db(store), &err) < 0 ||
	    proto_open(&p, svc_store_db(store), &o, &err) < 0)
		return die("open", &err);
	docs[0] = (struct proto_doc){ .path = argv[5], .name = "verbale.pdf",
				      .title = "Verbale di accertamento" };
	docs[1] = (struct proto_doc){ .path = argv[6], .name = "avviso-pagopa.pdf" };
	memset(&in, 0, sizeof(in));
	in.subject = "Verbale di accertamento n. 1001/2026 - art. 142 CdS";
	in.classification = "VI.4";
	in.classification_name = "Polizia locale - sanzioni";
	in.author = "bench";
	in.recipients = &rcpt;
	in.nrecipients = 1;
	in.documents = docs;
	in.ndocuments = 2;
	t0 = sb_now_ms();
	cpu0 = cpu_seconds();
	for (long i = 0; i < n; i++) {
		struct proto_reg *out = NULL, *r = NULL;
		char act[32], fact[48], iun[40];

		snprintf(act, sizeof(act), "bench-%ld", i);
		in.act_id = act;
		if (proto_register_outgoing(p, &in, &out, &err) < 0)
			return die("outgoing", &err);
		snprintf(iun, sizeof(iun), "BNCH-%04ld-%04ld-202611-A-1", i / 10000, i % 10000);
		for (int k = 0; k < 3; k++) {
			struct proto_receipt rc_in = { fact, cats[k], iun, out->id, argv[6], NULL };

			snprintf(fact, sizeof(fact), "bench-%ld-%d", i, k);
			if (proto_register_receipt(p, &rc_in, &r, &err) < 0)
				return die("receipt", &err);
			proto_reg_free(r);
		}
		proto_reg_free(out);
	}
	cpu1 = cpu_seconds();
	t1 = sb_now_ms();
	printf("bench: registrations=%ld cpu_ms_per_registration=%.3f registrations_per_cpu_s=%.0f"
	       " wall_ms_per_registration=%.3f\n", 4 * n, 1000 * (cpu1 - cpu0) / (4.0 * n),
	       4.0 * n / (cpu1 - cpu0), (double)(t1 - t0) / (4.0 * n));
	proto_free(p);
	svc_store_close(store);
	return 0;
}
