/*
 * libFuzzer target: the act manifest parser (service/svc_act.c) on arbitrary
 * bytes. Files named by the input are looked up in an empty temporary
 * folder, so every path check runs without touching real files.
 * Seed corpus: the act.json files of fixtures/ (see scripts/fuzz.sh).
 */
#include <stdint.h>
#include <stdlib.h>
#include <unistd.h>

#include "sb_common.h"
#include "svc_act.h"

static char dir[] = "/tmp/sb-fuzz-act-XXXXXX";

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static int ready;
	struct sb_problems probs = SB_PROBLEMS_INIT;
	struct sb_err err = SB_ERR_INIT;
	struct svc_act *a = NULL;

	if (!ready) {
		if (!mkdtemp(dir))
			abort();
		ready = 1;
	}
	if (svc_act_parse(&a, dir, (const char *)data, size, true, &probs, &err) == 0)
		SB_ASSERT(a && a->nrecipients > 0 && a->ndocuments > 0);
	else
		SB_ASSERT(!a && sb_problems_count(&probs) > 0);
	svc_act_free(a);
	sb_problems_release(&probs);
	return 0;
}
