/*
 * A source of PDND vouchers (Bearer tokens) for a purpose. The SEND client
 * and the e-service clients take one of these, so that send/ does not depend
 * on pdnd/: pdnd/ provides the real provider (client assertion, token
 * endpoint, cache), and a file-based one exists for testing.
 */
#ifndef SB_VOUCHER_H
#define SB_VOUCHER_H

#include "sb_buf.h"
#include "sb_err.h"

struct sb_voucher_provider {
	/*
	 * Append a valid voucher for purpose_id to out (a secret: wipe it after
	 * use). Returns 0, SB_ETEMP (token server unreachable: retry later),
	 * SB_EREJECT (PDND refused: configuration to fix) or SB_ECONFIG.
	 * Must be thread-safe.
	 */
	int (*get)(void *ctx, const char *purpose_id, struct sb_buf *out, struct sb_err *err);
	void *ctx;
};

#endif
