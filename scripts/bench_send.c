/*
 * Benchmark driver for scripts/bench-send.sh (not part of the build):
 *
 *   bench_send CONFIG upload FILE        upload one PDF; prints seconds and peak RSS
 *   bench_send CONFIG create N           create N notifications; prints per second
 *
 * Peak RSS is the process's VmHWM from /proc/self/status, so it covers
 * hashing, preload and the upload itself.
 */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "sb_common.h"
#include "sb_cfg.h"
#include "sb_http.h"
#include "sb_problems.h"
#include "sb_time.h"
#include "send_client.h"

static long peak_rss_kb(void)
{
	FILE *f = fopen("/proc/self/status", "r");
	char line[256];
	long kb = -1;

	while (f && fgets(line, sizeof(line), f))
		if (!strncmp(line, "VmHWM:", 6))
			kb = strtol(line + 6, NULL, 10);
	if (f)
		fclose(f);
	return kb;
}

static int die(const char *what, const struct sb_err *err)
{
	fprintf(stderr, "bench_send: %s: %s\n", what, err->msg);
	return 1;
}

int main(int argc, char **argv)
{
	struct sb_problems probs = SB_PROBLEMS_INIT;
	struct sb_err err = SB_ERR_INIT;
	struct sb_cfg *cfg = NULL;
	struct send_client *c = NULL;
	int64_t t0;

	if (argc != 4)
		return fprintf(stderr, "usage: bench_send CONFIG upload FILE | create N\n"), 2;
	sb_http_global_init();
	if (sb_cfg_load(&cfg, argv[1], &probs, &err) < 0)
		return die("config", &err);
	if (send_client_new(&c, cfg, NULL, &err) < 0)
		return die("client", &err);
	t0 = sb_mono_ms();
	if (!strcmp(argv[2], "upload")) {
		struct send_upload u = { argv[3], SEND_CT_PDF, "bench",
					 { { 0 }, { 0 }, { 0 }, NULL } };

		if (send_files_upload(c, &u, 1, NULL, &err) < 0)
			return die("upload", &err);
		printf("upload_seconds %.2f\npeak_rss_kb %ld\n", (sb_mono_ms() - t0) / 1000.0,
		       peak_rss_kb());
	} else {
		uint64_t n = 0;
		struct send_upload u = { NULL, SEND_CT_PDF, "doc", { { 0 }, { 0 }, { 0 }, NULL } };
		char *pdf = sb_xstrdup("/tmp/bench-send-doc.pdf");
		FILE *f = fopen(pdf, "w");
		struct send_payment pay = { 0 };
		struct send_recipient rec = { 0 };
		struct send_document doc = { 0 };
		struct send_notification nt = { 0 };
		char proto[64], notice[24];
		int64_t t1;

		if (sb_parse_u64z(argv[3], 1000000, &n) < 0 || !f)
			return fprintf(stderr, "bench_send: bad N or cannot write %s\n", pdf), 2;
		fputs("%PDF-1.4\n% bench\n%%EOF\n", f);
		fclose(f);
		u.path = pdf;
		if (send_files_upload(c, &u, 1, NULL, &err) < 0)
			return die("upload", &err);
		doc.ref = u.ref;
		doc.title = "Verbale";
		pay.has_pagopa = true;
		pay.notice_code = notice;
		pay.creditor_tax_id = send_client_sender_tax_id(c);
		rec.type = SEND_PF;
		rec.tax_id = "RSSMRA80A01H501U";
		rec.denomination = "Mario Rossi";
		rec.has_address = true;
		rec.address.address = "Via Roma 1";
		rec.address.zip = "00100";
		rec.address.municipality = "Roma";
		rec.address.province = "RM";
		rec.payments = &pay;
		rec.npayments = 1;
		nt.protocol_number = proto;
		nt.subject = "Verbale";
		nt.taxonomy_code = "010102P";
		nt.sender_denomination = "Comune di Esempio";
		nt.fee_policy = SEND_FEE_FLAT_RATE;
		nt.comm_type = SEND_AR_REGISTERED_LETTER;
		nt.recipients = &rec;
		nt.nrecipients = 1;
		nt.documents = &doc;
		nt.ndocuments = 1;
		t1 = sb_mono_ms();
		for (uint64_t i = 0; i < n; i++) {
			char id[SEND_REQUEST_ID_MAX];

			snprintf(proto, sizeof(proto), "BENCH-%lld-%llu", (long long)t1,
				 (unsigned long long)i);
			snprintf(notice, sizeof(notice), "30201%06lld%07llu",
				 (long long)(t1 % 1000000), (unsigned long long)i);
			if (send_notification_create(c, &nt, NULL, id, NULL, &err) < 0)
				return die("create", &err);
		}
		printf("created %llu\nseconds %.2f\nper_second %.1f\n", (unsigned long long)n,
		       (sb_mono_ms() - t1) / 1000.0, n * 1000.0 / (double)(sb_mono_ms() - t1 + 1));
		remove(pdf);
		free(pdf);
	}
	send_client_free(c);
	sb_cfg_free(cfg);
	sb_http_global_cleanup();
	return 0;
}
