/*
 * send-bridge validate FILE... [--profile FLAVOUR] [--office NAME] [--json]
 *
 * Runs the checks the daemon applies to every document of an act (agid/:
 * SEND limits, PDF/A profile, signatures, office policy) on files given on
 * the command line, so that an office can test its documents before
 * writing an act. Signer names are personal data: shown only with
 * --show-personal-data.
 */
#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "sb_common.h"
#include "sb_cfg.h"
#include "agid_doc.h"
#include "cli_int.h"

void svc_help_validate(FILE *out)
{
	fprintf(out,
		"usage: send-bridge validate FILE... [--profile FLAVOUR] [--office NAME] [--json]\n"
		"\n"
		"Checks each FILE as a document of an act: SEND's limits (PDF only, at most\n"
		"200 MB), the PDF/A profile (ISO 19005 clause of each finding, with page or\n"
		"object when known), PAdES signatures or a CAdES .p7m envelope, and the\n"
		"office's policy ([office.NAME] pdfa_flavours, signature_required,\n"
		"signature_trust_store; defaults without -c/--office).\n"
		"\n"
		"  --profile FLAVOUR   check against 1a, 1b, 2a, 2b, 2u, 3a, 3b or 3u instead of\n"
		"                      the flavour the file claims\n"
		"  --office NAME       apply the policy of [office.NAME] (needs a configuration)\n"
		"  --json              one JSON array with a report per file\n"
		"\n"
		"exit: 0 all valid, 1 some file invalid, 2 some file could not be checked\n"
		"      (or usage/configuration error)\n");
}

static json_t *findings_json(const struct agid_finding *f, size_t n)
{
	json_t *a = json_array();

	for (size_t i = 0; i < n; i++) {
		json_t *o = json_pack("{s:s, s:s}", "clause", f[i].clause, "message", f[i].msg);

		if (f[i].page)
			json_object_set_new(o, "page", json_integer(f[i].page));
		if (f[i].obj)
			json_object_set_new(o, "object", json_integer(f[i].obj));
		json_array_append_new(a, o);
	}
	return a;
}

static json_t *report_json(const char *file, const struct agid_doc_report *r, bool personal)
{
	json_t *o = json_pack("{s:s, s:s, s:I, s:s, s:s}", "file", file, "verdict",
			      agid_verdict_name(r->verdict), "size", (json_int_t)r->size, "sha256",
			      r->sha256, "mime", r->mime);
	json_t *sigs = json_array(), *findings = findings_json(r->findings, r->nfindings);

	if (r->pdfa) {
		json_t *p = json_pack("{s:s, s:s, s:b, s:i, s:s}",
				      "claimed", agid_flavour_name(r->pdfa->claimed),
				      "profile", agid_flavour_name(r->pdfa->profile),
				      "valid", r->pdfa->valid, "pages", r->pdfa->pages,
				      "not_verified", AGID_PDFA_NOT_VERIFIED);

		json_object_set_new(p, "findings",
				    findings_json(r->pdfa->findings, r->pdfa->nfindings));
		json_object_set_new(o, "pdfa", p);
	}
	for (size_t i = 0; i < r->sig.n; i++) {
		const struct agid_sig *s = &r->sig.sigs[i];
		json_t *j = json_pack("{s:s, s:b, s:b, s:b, s:b, s:b}",
				      "kind", agid_sig_kind_name(s->kind), "valid", s->valid,
				      "covers_file", s->covers_file, "digest_ok", s->digest_ok,
				      "signature_ok", s->signature_ok, "seal", s->seal);

		if (s->chain_checked)
			json_object_set_new(j, "chain_ok", json_boolean(s->chain_ok));
		if (s->problem[0])
			json_object_set_new(j, "problem", json_string(s->problem));
		if (personal)
			json_object_set_new(j, "signer", json_string(s->signer));
		json_array_append_new(sigs, j);
	}
	json_object_set_new(o, "signatures", sigs);
	json_object_set_new(o, "findings", findings);
	json_object_set_new(o, "warnings", findings_json(r->warnings, r->nwarnings));
	return o;
}

static void print_finding(const char *prefix, const struct agid_finding *f)
{
	printf("  %s[%s] %s", prefix, f->clause, f->msg);
	if (f->page && f->obj)
		printf(" (page %d, object %d)", f->page, f->obj);
	else if (f->page)
		printf(" (page %d)", f->page);
	else if (f->obj)
		printf(" (object %d)", f->obj);
	printf("\n");
}

static void report_text(const char *file, const struct agid_doc_report *r, bool personal)
{
	printf("%s: %s\n", file, agid_verdict_name(r->verdict));
	printf("  %s, %llu bytes, sha256 %s\n", r->mime, (unsigned long long)r->size,
	       r->sha256[0] ? r->sha256 : "-");
	if (r->pdfa) {
		printf("  PDF/A: claims %s, checked as %s, %d page(s), %s\n",
		       agid_flavour_name(r->pdfa->claimed), agid_flavour_name(r->pdfa->profile),
		       r->pdfa->pages, r->pdfa->valid ? "conforming" : "not conforming");
		for (size_t i = 0; i < r->pdfa->nfindings; i++)
			print_finding("", &r->pdfa->findings[i]);
		if (r->pdfa->dropped)
			printf("  ... and %zu more\n", r->pdfa->dropped);
	}
	for (size_t i = 0; i < r->nfindings; i++)
		print_finding("", &r->findings[i]);
	for (size_t i = 0; i < r->nwarnings; i++)
		print_finding("warning ", &r->warnings[i]);
	for (size_t i = 0; i < r->sig.n; i++) {
		const struct agid_sig *s = &r->sig.sigs[i];

		printf("  signature %zu: %s, %s%s%s, signer %s%s\n", i + 1,
		       agid_sig_kind_name(s->kind),
		       s->valid ? "valid" : "NOT valid", s->problem[0] ? ": " : "", s->problem,
		       personal ? s->signer : "(hidden; --show-personal-data)",
		       s->chain_checked ? "" : ", chain not checked (no trust store)");
	}
	if (!r->sig.n)
		printf("  no signature\n");
	if (r->pdfa)
		printf("  not verified: %s\n", AGID_PDFA_NOT_VERIFIED);
}

int svc_cmd_validate(const struct svc_cli *cli_in, int argc, char **argv)
{
	struct svc_cli cli = *cli_in;
	struct agid_policy pol;
	struct sb_cfg *cfg = NULL;
	enum agid_flavour profile = AGID_PDFA_NONE;
	const char *office = NULL;
	bool json = false;
	json_t *all = NULL;
	int worst = SVC_EXIT_OK, nfiles = 0, rc, i;

	agid_policy_default(&pol);
	for (i = 1; i < argc; i++) {
		struct sb_err err = SB_ERR_INIT;

		rc = svc_opt_config(&cli, argc, argv, &i);
		if (rc < 0)
			return svc_usage("%s needs a file name", argv[i]);
		if (rc > 0)
			continue;
		if (svc_is_help(argv[i])) {
			svc_help_validate(stdout);
			return SVC_EXIT_OK;
		} else if (!strcmp(argv[i], "--json")) {
			json = true;
		} else if (!strcmp(argv[i], "--profile") || !strcmp(argv[i], "--office")) {
			if (i + 1 >= argc)
				return svc_usage("%s needs a value", argv[i]);
			if (argv[i][2] == 'o')
				office = argv[++i];
			else if (agid_flavour_parse(argv[++i], &profile, &err) < 0)
				return svc_usage("%s", err.msg);
		} else if (argv[i][0] == '-' && argv[i][1]) {
			return svc_usage("unknown option '%s'", argv[i]);
		} else {
			nfiles++;
		}
	}
	if (!nfiles)
		return svc_usage("validate needs at least one FILE");
	if (office) {
		struct sb_err err = SB_ERR_INIT;

		rc = svc_load_config(&cli, &cfg);
		if (rc)
			return rc;
		if (agid_policy_from_cfg(&pol, cfg, office, &err) < 0) {
			sb_cfg_free(cfg);
			fprintf(stderr, "send-bridge: %s\n", err.msg);
			return SVC_EXIT_USAGE;
		}
	}
	if (json)
		all = json_array();
	for (i = 1; i < argc; i++) {
		struct agid_doc_report *r = NULL;
		struct sb_err err = SB_ERR_INIT;
		int code;

		if (!strcmp(argv[i], "-c") || !strcmp(argv[i], "--config") ||
		    !strcmp(argv[i], "--profile") || !strcmp(argv[i], "--office")) {
			i++;
			continue;
		}
		if (argv[i][0] == '-' && argv[i][1])
			continue;
		rc = agid_doc_check_file(&r, argv[i], &pol, profile, &err);
		if (rc < 0) {
			/* could not check: the file is unreadable or the trust store is bad */
			if (json)
				json_array_append_new(all,
						      json_pack("{s:s, s:s, s:s}", "file", argv[i],
								"verdict", "not checked",
								"error", err.msg));
			else
				printf("%s: not checked: %s\n", argv[i], err.msg);
			worst = SVC_EXIT_USAGE;
			continue;
		}
		if (json)
			json_array_append_new(all, report_json(argv[i], r, cli.show_personal));
		else
			report_text(argv[i], r, cli.show_personal);
		code = r->verdict == AGID_INVALID ? SVC_EXIT_INVALID : SVC_EXIT_OK;
		if (code > worst && worst != SVC_EXIT_USAGE)
			worst = code;
		agid_doc_report_free(r);
	}
	if (json) {
		json_dumpf(all, stdout, JSON_INDENT(2));
		printf("\n");
		json_decref(all);
	}
	sb_cfg_free(cfg);
	return worst;
}
