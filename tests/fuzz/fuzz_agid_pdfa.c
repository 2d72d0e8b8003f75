/*
 * libFuzzer target over the PDF checks: agid_pdfa (qpdf structure walk,
 * XMP, ICC, embedded files), the PAdES verification of whatever signature
 * dictionaries it found, and the .p7m detector and unwrapper. Caps are
 * lowered so that each input costs little; a crash, a leak, a sanitizer
 * report or an input slower than -timeout is a finding.
 * Build and run: make fuzz (FUZZ_TIME=seconds); see tests/fuzz/README.md.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "agid_pdfa.h"
#include "agid_sig.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct agid_pdfa_opts o = AGID_PDFA_OPTS_INIT;
	struct agid_pdfa_report *r = NULL;
	struct agid_sig_report sig = AGID_SIG_REPORT_INIT;
	unsigned char *content = NULL;
	size_t clen = 0;

	o.max_objects = 20000;
	o.max_stream = 1024 * 1024;
	o.time_budget_ms = 2000;
	if (size > 4 * 1024 * 1024)
		return 0;
	if (agid_pdfa_check_mem(&r, data, size, &o, NULL) == 0) {
		if (agid_sig_check_pdf(&sig, r, data, size, NULL, NULL) == 0)
			agid_sig_report_release(&sig);
		agid_pdfa_report_free(r);
	}
	if (agid_p7m_detect(data, size) &&
	    agid_p7m_unwrap(data, size, NULL, &content, &clen, &sig, NULL) == 0) {
		free(content);
		agid_sig_report_release(&sig);
	}
	return 0;
}
