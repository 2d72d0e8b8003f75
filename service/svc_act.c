/*
 * act.json version 1: parsing and complete validation (docs/act-format.md).
 *
 * The checks mirror what SEND refuses (../shared/specs/send/SUMMARY.md §3,
 * including the server-side rules the OpenAPI schema does not show) so that
 * a bad act stops here, with its JSON path, instead of costing a refused
 * notification. Unknown fields are refused too: a typo such as "abstarct"
 * would otherwise silently drop data from a legal act.
 */
#include <errno.h>
#include <linux/openat2.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "sb_common.h"
#include "sb_crypto.h"
#include "sb_ids.h"
#include "sb_json.h"
#include "sb_time.h"
#include "svc_act.h"

struct ctx {
	struct sb_problems *probs;
	char root[PATH_MAX];
	int rootfd;
	bool hash;
	size_t found;
};

#define PROBLEM(c, where, ...) \
	do { (c)->found++; sb_problems_add((c)->probs, (where), __VA_ARGS__); } while (0)

static void file_release(struct svc_act_file *f)
{
	free(f->name);
	free(f->path);
}

static void address_release(struct svc_act_address *a)
{
	free(a->address);
	free(a->address_details);
	free(a->at);
	free(a->zip);
	free(a->municipality);
	free(a->municipality_details);
	free(a->province);
	free(a->foreign_state);
}

void svc_act_free(struct svc_act *a)
{
	if (!a)
		return;
	for (size_t i = 0; i < a->nrecipients; i++) {
		struct svc_act_recipient *r = &a->recipients[i];

		free(r->tax_id);
		free(r->denomination);
		free(r->pec);
		address_release(&r->address);
		for (size_t k = 0; k < r->npayments; k++) {
			struct svc_act_payment *p = &r->payments[k];

			free(p->notice_code);
			free(p->creditor_tax_id);
			file_release(&p->pagopa_file);
			free(p->f24_title);
			file_release(&p->f24_file);
		}
		free(r->payments);
	}
	free(a->recipients);
	for (size_t i = 0; i < a->ndocuments; i++) {
		free(a->documents[i].title);
		file_release(&a->documents[i].file);
	}
	free(a->documents);
	free(a->id);
	free(a->dir);
	free(a->office);
	free(a->operator_id);
	free(a->operator_office);
	free(a->subject);
	free(a->abstract);
	free(a->taxonomy_code);
	free(a->group);
	free(a->pagopa_int_mode);
	free(a->protocol_number);
	free(a->protocol_date);
	free(a->payment_expiration_date);
	free(a);
}

const char *svc_fee_policy_name(enum svc_fee_policy p)
{
	return p == SVC_FEE_DELIVERY_MODE ? "DELIVERY_MODE" : "FLAT_RATE";
}

const char *svc_comm_type_name(enum svc_comm_type t)
{
	return t == SVC_REGISTERED_LETTER_890 ? "REGISTERED_LETTER_890" : "AR_REGISTERED_LETTER";
}

static void join(char *out, size_t size, const char *prefix, const char *key)
{
	int n;

	if (prefix && *prefix)
		n = snprintf(out, size, "%s.%s", prefix, key);
	else
		n = snprintf(out, size, "%s", key);
	/* Paths are short by construction; a cut one still points at the right place. */
	if (n < 0)
		out[0] = '\0';
}

/* Refuse members not in allowed (NULL-terminated). */
static void check_keys(struct ctx *c, json_t *obj, const char *prefix,
		       const char *const *allowed)
{
	const char *key;
	json_t *v;

	json_object_foreach(obj, key, v) {
		bool ok = false;
		char where[256];

		for (const char *const *a = allowed; *a && !ok; a++)
			ok = !strcmp(*a, key);
		if (!ok) {
			char q[80];

			join(where, sizeof(where), prefix, "");
			if (where[0] && where[strlen(where) - 1] == '.')
				where[strlen(where) - 1] = '\0';
			snprintf(q, sizeof(q), "%.60s", key);
			for (char *p = q; *p; p++)
				if ((unsigned char)*p < 0x20)
					*p = '?';
			PROBLEM(c, where[0] ? where : "act.json", "unknown field '%s'", q);
		}
	}
}

/* Characters that SEND accepts in a denomination: ISO-8859-1, no '|'. */
static bool latin1_ok(const char *s)
{
	const unsigned char *p = (const unsigned char *)s;

	while (*p) {
		if (*p == '|')
			return false;
		if (*p < 0x80) {
			p++;
		} else if ((*p & 0xe0) == 0xc0) {
			/* two-byte sequences up to U+00FF start with C2 or C3 */
			if (*p > 0xc3)
				return false;
			p += 2;
		} else {
			return false;
		}
	}
	return true;
}

static bool printable_ascii(const char *s)
{
	for (; *s; s++)
		if (*s < 0x20 || *s > 0x7e)
			return false;
	return true;
}

static bool has_control(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			return true;
	return false;
}

/*
 * A string member: type, presence and length (in characters) are checked.
 * Returns a new copy or NULL (missing, or a problem was recorded).
 */
static char *get_str(struct ctx *c, json_t *obj, const char *prefix, const char *key,
		     bool required, size_t min, size_t max)
{
	json_t *v = json_object_get(obj, key);
	char where[256];
	const char *s;
	size_t n;

	join(where, sizeof(where), prefix, key);
	if (!v || json_is_null(v)) {
		if (required)
			PROBLEM(c, where, "required");
		return NULL;
	}
	if (!json_is_string(v)) {
		PROBLEM(c, where, "expected a string");
		return NULL;
	}
	s = json_string_value(v);
	if (strlen(s) != json_string_length(v)) {
		PROBLEM(c, where, "contains a NUL character");
		return NULL;
	}
	n = sb_utf8_len(s);
	if (n < min) {
		PROBLEM(c, where, n ? "shorter than %zu characters" : "empty", min);
		return NULL;
	}
	if (n > max) {
		PROBLEM(c, where, "longer than %zu characters (%zu)", max, n);
		return NULL;
	}
	if (has_control(s)) {
		PROBLEM(c, where, "contains control characters");
		return NULL;
	}
	return sb_xstrdup(s);
}

static bool get_int(struct ctx *c, json_t *obj, const char *prefix, const char *key,
		    bool required, int64_t min, int64_t max, int64_t *out)
{
	json_t *v = json_object_get(obj, key);
	char where[256];
	json_int_t n;

	join(where, sizeof(where), prefix, key);
	if (!v) {
		if (required)
			PROBLEM(c, where, "required");
		return false;
	}
	if (!json_is_integer(v)) {
		PROBLEM(c, where, "expected a whole number");
		return false;
	}
	n = json_integer_value(v);
	if (n < min || n > max) {
		PROBLEM(c, where, "%lld out of range %lld..%lld", (long long)n, (long long)min,
			(long long)max);
		return false;
	}
	*out = (int64_t)n;
	return true;
}

static bool get_bool(struct ctx *c, json_t *obj, const char *prefix, const char *key,
		     bool required, bool *out)
{
	json_t *v = json_object_get(obj, key);
	char where[256];

	join(where, sizeof(where), prefix, key);
	if (!v) {
		if (required)
			PROBLEM(c, where, "required");
		return false;
	}
	if (!json_is_boolean(v)) {
		PROBLEM(c, where, "expected true or false");
		return false;
	}
	*out = json_is_true(v);
	return true;
}

static json_t *get_obj(struct ctx *c, json_t *obj, const char *prefix,
			     const char *key, bool required)
{
	json_t *v = json_object_get(obj, key);
	char where[256];

	join(where, sizeof(where), prefix, key);
	if (!v) {
		if (required)
			PROBLEM(c, where, "required");
		return NULL;
	}
	if (!json_is_object(v)) {
		PROBLEM(c, where, "expected an object");
		return NULL;
	}
	return v;
}

static json_t *get_array(struct ctx *c, json_t *obj, const char *key, size_t min,
			       size_t max, const char *prefix)
{
	json_t *v = json_object_get(obj, key);
	char where[256];

	join(where, sizeof(where), prefix, key);
	if (!v) {
		PROBLEM(c, where, "required");
		return NULL;
	}
	if (!json_is_array(v)) {
		PROBLEM(c, where, "expected an array");
		return NULL;
	}
	if (json_array_size(v) < min) {
		PROBLEM(c, where, "needs at least %zu item(s)", min);
		return NULL;
	}
	if (json_array_size(v) > max) {
		PROBLEM(c, where, "at most %zu items (SEND's limit), found %zu", max,
			json_array_size(v));
		return NULL;
	}
	return v;
}

enum file_kind { FILE_PDF, FILE_JSON };

/* The path the kernel has for an open descriptor; -1 without /proc. */
static int fd_path(int fd, char out[PATH_MAX])
{
	char link[32];
	ssize_t n;

	snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
	n = readlink(link, out, PATH_MAX - 1);
	if (n <= 0 || n >= PATH_MAX - 1 || out[0] != '/')
		return -1;
	out[n] = '\0';
	return 0;
}

static bool inside(const char *root, const char *path)
{
	size_t len = strlen(root);

	return !strncmp(path, root, len) && path[len] == '/';
}

/*
 * Open NAME read-only under the act folder, with no way out of it: openat2's
 * RESOLVE_BENEATH refuses ".." and any symbolic link (absolute, or relative)
 * that leads outside the folder in the call that opens, so nothing can be
 * swapped between the check and the open, and it costs a few system calls
 * where realpath costs one per path component (the stored act is parsed again
 * at each step). O_NONBLOCK: a named pipe must not hold the worker until a
 * writer comes (regular files ignore it). Without openat2 (Linux before 5.6,
 * or a sandbox that filters it) or /proc, the name is resolved with realpath
 * and the result checked and opened. Fills REAL with the file's real path;
 * -1 with errno on failure, EXDEV when the name leads outside.
 */
static int open_beneath(const struct ctx *c, const char *name, char real[PATH_MAX])
{
	struct open_how how = { .flags = O_RDONLY | O_CLOEXEC | O_NONBLOCK,
				.resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS };
	char full[PATH_MAX];
	int fd, tries = 0;

	/*
	 * EAGAIN: a link inside the folder went through "..", and a rename
	 * anywhere on the system (the daemon makes many) kept the kernel from
	 * proving that it stayed beneath; it asks for another try.
	 */
	do
		fd = (int)syscall(SYS_openat2, c->rootfd, name, &how, sizeof(how));
	while (fd < 0 && errno == EAGAIN && ++tries < 3);
	if (fd >= 0 && fd_path(fd, real) == 0 && inside(c->root, real))
		return fd;
	if (fd >= 0)
		close(fd);
	else if (errno != ENOSYS && errno != EPERM && errno != EAGAIN)
		return -1;
	if ((size_t)snprintf(full, sizeof(full), "%s/%s", c->root, name) >= sizeof(full)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	if (!realpath(full, real))
		return -1;
	if (!inside(c->root, real)) {
		errno = EXDEV;
		return -1;
	}
	return open(real, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
}

/*
 * Resolve a file name from the manifest inside the act folder. The name must
 * be relative, without "..", and its real path (after symlinks) must stay in
 * the folder; the file must be a non-empty regular file of the right kind.
 */
static bool resolve_file(struct ctx *c, const char *where, const char *name, enum file_kind kind,
			 struct svc_act_file *out)
{
	char real[PATH_MAX];
	unsigned char magic[5];
	struct stat st;
	const char *p;
	uint64_t max = kind == FILE_PDF ? SB_MAX_PDF : SB_MAX_F24_JSON;
	int fd;
	ssize_t n;

	if (!*name) {
		PROBLEM(c, where, "empty file name");
		return false;
	}
	if (name[0] == '/') {
		PROBLEM(c, where,
			"absolute paths are not allowed: name a file inside the act folder");
		return false;
	}
	if (strchr(name, '\\')) {
		PROBLEM(c, where, "backslashes are not allowed in file names");
		return false;
	}
	for (p = name; *p;) {
		size_t len = strcspn(p, "/");

		if ((len == 2 && !strncmp(p, "..", 2))) {
			PROBLEM(c, where,
				"'..' is not allowed: the file must be inside the act folder");
			return false;
		}
		p += len;
		while (*p == '/')
			p++;
	}
	fd = open_beneath(c, name, real);
	if (fd < 0) {
		if (errno == ENAMETOOLONG)
			PROBLEM(c, where, "file name too long");
		else if (errno == ENOENT)
			PROBLEM(c, where, "file not found in the act folder");
		else if (errno == EXDEV)
			PROBLEM(c, where, "leaves the act folder (symbolic link to outside)");
		else
			PROBLEM(c, where, "cannot open file: %s", strerror(errno));
		return false;
	}
	if (fstat(fd, &st) < 0) {
		PROBLEM(c, where, "cannot open file: %s", strerror(errno));
		close(fd);
		return false;
	}
	if (!S_ISREG(st.st_mode)) {
		PROBLEM(c, where, "not a regular file");
		close(fd);
		return false;
	}
	if (st.st_size == 0) {
		PROBLEM(c, where, "file is empty");
		close(fd);
		return false;
	}
	if ((uint64_t)st.st_size > max) {
		PROBLEM(c, where, "file is %llu bytes, above the limit of %llu",
			(unsigned long long)st.st_size, (unsigned long long)max);
		close(fd);
		return false;
	}
	n = read(fd, magic, sizeof(magic));
	close(fd);
	if (kind == FILE_PDF && (n != 5 || memcmp(magic, "%PDF-", 5))) {
		PROBLEM(c, where, "not a PDF file (SEND accepts application/pdf only)");
		return false;
	}
	if (kind == FILE_JSON && (n < 1 || (magic[0] != '{' && magic[0] != ' ' &&
					    magic[0] != '\n' && magic[0] != '\t'))) {
		PROBLEM(c, where, "not a JSON file (F24 metadata must be application/json)");
		return false;
	}
	if (c->hash) {
		unsigned char d[SB_SHA256_LEN];
		struct sb_buf hex = SB_BUF_INIT(65);
		struct sb_err err = SB_ERR_INIT;

		if (sb_sha256_file(real, d, NULL, &err) < 0) {
			PROBLEM(c, where, "%s", err.msg);
			return false;
		}
		sb_hex_encode(d, sizeof(d), &hex);
		memcpy(out->sha256, hex.buf, 65);
		sb_buf_release(&hex);
	}
	out->name = sb_xstrdup(name);
	out->path = sb_xstrdup(real);
	out->size = (uint64_t)st.st_size;
	return true;
}

static bool get_file(struct ctx *c, json_t *obj, const char *prefix, const char *key,
		     bool required, enum file_kind kind, struct svc_act_file *out)
{
	char where[256];
	char *name = get_str(c, obj, prefix, key, required, 1, 255);
	bool ok;

	if (!name)
		return false;
	join(where, sizeof(where), prefix, key);
	ok = resolve_file(c, where, name, kind, out);
	free(name);
	return ok;
}

static bool date_ok(const char *s)
{
	int64_t t;

	return sb_time_parse_date(s, &t) == 0;
}

static bool is_italy(const char *foreign_state)
{
	return !foreign_state || !*foreign_state || !strncmp(foreign_state, "ITAL", 4) ||
	       !strncmp(foreign_state, "Ital", 4);
}

static void parse_address(struct ctx *c, json_t *o, const char *prefix,
			  struct svc_act_address *a)
{
	static const char *const keys[] = { "address", "addressDetails", "at", "zip",
					    "municipality", "municipalityDetails", "province",
					    "foreignState", NULL };
	char where[256];

	check_keys(c, o, prefix, keys);
	a->address = get_str(c, o, prefix, "address", true, 2, 1024);
	a->address_details = get_str(c, o, prefix, "addressDetails", false, 0, 1024);
	a->at = get_str(c, o, prefix, "at", false, 0, 44);
	a->zip = get_str(c, o, prefix, "zip", false, 0, 15);
	a->municipality = get_str(c, o, prefix, "municipality", true, 2, 256);
	a->municipality_details = get_str(c, o, prefix, "municipalityDetails", false, 0, 256);
	a->province = get_str(c, o, prefix, "province", false, 0, 256);
	a->foreign_state = get_str(c, o, prefix, "foreignState", false, 0, 256);
	if (is_italy(a->foreign_state)) {
		join(where, sizeof(where), prefix, "zip");
		if (!a->zip && !json_object_get(o, "zip"))
			PROBLEM(c, where, "required for an address in Italy");
		else if (a->zip && !sb_cap_valid(a->zip))
			PROBLEM(c, where, "not a valid CAP (five digits)");
		join(where, sizeof(where), prefix, "province");
		if (!a->province && !json_object_get(o, "province"))
			PROBLEM(c, where,
				"required for an address in Italy (SEND refuses it without)");
		else if (a->province && !sb_province_valid(a->province))
			PROBLEM(c, where,
				"not an Italian province code (two capital letters, e.g. RM)");
	} else if (a->zip) {
		bool ok = true;

		for (const char *p = a->zip; *p; p++)
			ok = ok && (((*p >= '0' && *p <= '9') || (*p >= 'A' && *p <= 'Z') ||
				     (*p >= 'a' && *p <= 'z') || *p == ' ' || *p == '-' ||
				     *p == '_'));
		join(where, sizeof(where), prefix, "zip");
		if (!ok)
			PROBLEM(c, where, "only letters, digits, spaces and '-' are allowed");
	}
}

static void parse_payment(struct ctx *c, json_t *o, const char *prefix,
			  struct svc_act_payment *p)
{
	static const char *const keys[] = { "pagoPa", "f24", NULL };
	static const char *const pkeys[] = { "noticeCode", "creditorTaxId", "applyCost", "file",
					     NULL };
	static const char *const fkeys[] = { "title", "applyCost", "file", NULL };
	json_t *pp, *f24;
	char sub[256], where[256];
	struct sb_err err = SB_ERR_INIT;

	check_keys(c, o, prefix, keys);
	pp = get_obj(c, o, prefix, "pagoPa", false);
	f24 = get_obj(c, o, prefix, "f24", false);
	if (!json_object_get(o, "pagoPa") && !json_object_get(o, "f24"))
		PROBLEM(c, prefix, "needs pagoPa or f24 (or both)");
	if (pp) {
		join(sub, sizeof(sub), prefix, "pagoPa");
		check_keys(c, pp, sub, pkeys);
		p->has_pagopa = true;
		p->notice_code = get_str(c, pp, sub, "noticeCode", true, 1, 18);
		join(where, sizeof(where), sub, "noticeCode");
		if (p->notice_code && !sb_notice_code_valid(p->notice_code))
			PROBLEM(c, where, "must be exactly 18 digits");
		p->creditor_tax_id = get_str(c, pp, sub, "creditorTaxId", true, 1, 11);
		join(where, sizeof(where), sub, "creditorTaxId");
		if (p->creditor_tax_id && sb_piva_check(p->creditor_tax_id, &err) < 0)
			PROBLEM(c, where, "%s", err.msg);
		get_bool(c, pp, sub, "applyCost", true, &p->pagopa_apply_cost);
		if (json_object_get(pp, "file"))
			p->has_pagopa_file = get_file(c, pp, sub, "file", false, FILE_PDF,
						      &p->pagopa_file);
	}
	if (f24) {
		join(sub, sizeof(sub), prefix, "f24");
		check_keys(c, f24, sub, fkeys);
		p->has_f24 = true;
		p->f24_title = get_str(c, f24, sub, "title", true, 1, 512);
		get_bool(c, f24, sub, "applyCost", true, &p->f24_apply_cost);
		get_file(c, f24, sub, "file", true, FILE_JSON, &p->f24_file);
	}
}

static void parse_recipient(struct ctx *c, json_t *o, size_t idx,
			    struct svc_act_recipient *r)
{
	static const char *const keys[] = { "type", "taxId", "denomination", "digitalDomicile",
					    "physicalAddress", "payments", NULL };
	static const char *const dkeys[] = { "type", "address", NULL };
	char prefix[64], where[256], sub[128];
	struct sb_err err = SB_ERR_INIT;
	json_t *dd, *pa, *pays;
	char *type;

	snprintf(prefix, sizeof(prefix), "recipients[%zu]", idx);
	if (!json_is_object(o)) {
		PROBLEM(c, prefix, "expected an object");
		return;
	}
	check_keys(c, o, prefix, keys);
	type = get_str(c, o, prefix, "type", true, 1, 2);
	join(where, sizeof(where), prefix, "type");
	if (type && strcmp(type, "PF") && strcmp(type, "PG"))
		PROBLEM(c, where, "must be PF (person) or PG (company or body)");
	r->type = type && !strcmp(type, "PG") ? SVC_PG : SVC_PF;
	r->tax_id = get_str(c, o, prefix, "taxId", true, 1, 16);
	join(where, sizeof(where), prefix, "taxId");
	if (r->tax_id && type) {
		if (r->type == SVC_PF && sb_cf_person_check(r->tax_id, &err) < 0)
			PROBLEM(c, where, "%s", err.msg);
		else if (r->type == SVC_PG && sb_piva_check(r->tax_id, &err) < 0)
			PROBLEM(c, where, "%s (SEND requires a numeric tax id for PG)", err.msg);
	}
	free(type);
	r->denomination = get_str(c, o, prefix, "denomination", true, 1, 88);
	join(where, sizeof(where), prefix, "denomination");
	if (r->denomination && !latin1_ok(r->denomination))
		PROBLEM(c, where, "only ISO-8859-1 characters and no '|' (SEND's rule)");

	dd = get_obj(c, o, prefix, "digitalDomicile", false);
	if (dd) {
		char *dtype;

		join(sub, sizeof(sub), prefix, "digitalDomicile");
		check_keys(c, dd, sub, dkeys);
		dtype = get_str(c, dd, sub, "type", true, 1, 8);
		join(where, sizeof(where), sub, "type");
		if (dtype && strcmp(dtype, "PEC"))
			PROBLEM(c, where, "must be PEC");
		free(dtype);
		r->pec = get_str(c, dd, sub, "address", true, 3, 320);
		join(where, sizeof(where), sub, "address");
		if (r->pec && !sb_email_valid(r->pec))
			PROBLEM(c, where, "not a valid PEC address");
	}
	pa = get_obj(c, o, prefix, "physicalAddress", true);
	if (pa) {
		join(sub, sizeof(sub), prefix, "physicalAddress");
		r->has_address = true;
		parse_address(c, pa, sub, &r->address);
	}
	if (json_object_get(o, "payments")) {
		pays = get_array(c, o, "payments", 0, SEND_MAX_PAYMENTS, prefix);
		if (pays) {
			SB_ALLOC_ARRAY(r->payments, json_array_size(pays));
			r->npayments = json_array_size(pays);
			for (size_t k = 0; k < r->npayments; k++) {
				json_t *item = json_array_get(pays, k);

				snprintf(sub, sizeof(sub), "%s.payments[%zu]", prefix, k);
				if (!json_is_object(item)) {
					PROBLEM(c, sub, "expected an object");
					continue;
				}
				parse_payment(c, item, sub, &r->payments[k]);
			}
		}
	}
}

/* SEND's fee rules (server side, per recipient) and unique notice codes across the act. */
static void check_payment_rules(struct ctx *c, struct svc_act *a)
{
	for (size_t i = 0; i < a->nrecipients; i++) {
		const struct svc_act_recipient *r = &a->recipients[i];
		bool pagopa = false, pagopa_cost = false, f24 = false, f24_cost = false;
		char where[128];

		for (size_t k = 0; k < r->npayments; k++) {
			const struct svc_act_payment *p = &r->payments[k];

			snprintf(where, sizeof(where), "recipients[%zu].payments[%zu]", i, k);
			pagopa |= p->has_pagopa;
			f24 |= p->has_f24;
			pagopa_cost |= p->has_pagopa && p->pagopa_apply_cost;
			f24_cost |= p->has_f24 && p->f24_apply_cost;
			if (a->fee_policy == SVC_FEE_FLAT_RATE &&
			    ((p->has_pagopa && p->pagopa_apply_cost) ||
			     (p->has_f24 && p->f24_apply_cost)))
				PROBLEM(c, where,
					"applyCost must be false with feePolicy FLAT_RATE");
			if (!p->has_pagopa || !p->notice_code || !p->creditor_tax_id)
				continue;
			for (size_t j = 0; j <= i; j++) {
				const struct svc_act_recipient *q = &a->recipients[j];
				size_t lim = j == i ? k : q->npayments;

				for (size_t m = 0; m < lim; m++) {
					const struct svc_act_payment *o = &q->payments[m];

					if (o->has_pagopa && o->notice_code && o->creditor_tax_id &&
					    !strcmp(o->notice_code, p->notice_code) &&
					    !strcmp(o->creditor_tax_id, p->creditor_tax_id))
						PROBLEM(c, where,
							"creditorTaxId and noticeCode repeat "
							"recipients[%zu].payments[%zu]", j, m);
				}
			}
		}
		snprintf(where, sizeof(where), "recipients[%zu].payments", i);
		if (a->fee_policy == SVC_FEE_DELIVERY_MODE && pagopa && !pagopa_cost)
			PROBLEM(c, where,
				"with feePolicy DELIVERY_MODE one pagoPa payment needs "
				"applyCost true");
		if (a->fee_policy == SVC_FEE_DELIVERY_MODE && f24 && !f24_cost)
			PROBLEM(c, where,
				"with feePolicy DELIVERY_MODE one f24 payment needs "
				"applyCost true");
	}
}

static void check_unique_files(struct ctx *c, const struct svc_act *a)
{
	for (size_t i = 0; i < a->ndocuments; i++) {
		for (size_t j = 0; j < i; j++) {
			const char *x = a->documents[i].file.path, *y = a->documents[j].file.path;
			char where[64];

			if (x && y && !strcmp(x, y)) {
				snprintf(where, sizeof(where), "documents[%zu].file", i);
				PROBLEM(c, where,
					"same file as documents[%zu] (SEND refuses duplicates)", j);
			}
		}
	}
}

static void check_office_name(struct ctx *c, const char *where, const char *s)
{
	for (const char *p = s; *p; p++) {
		if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '-' ||
		      *p == '_')) {
			PROBLEM(c, where, "only lower-case letters, digits, '-' and '_'");
			return;
		}
	}
}

static void parse_top(struct ctx *c, json_t *root, struct svc_act *a)
{
	static const char *const keys[] = {
		"version", "office", "operator", "subject", "abstract", "taxonomyCode", "group",
		"pagoPaIntMode", "protocol", "paymentExpirationDate", "amount", "feePolicy",
		"physicalCommunicationType", "recipients", "documents", NULL,
	};
	static const char *const okeys[] = { "userId", "office", NULL };
	static const char *const pkeys[] = { "number", "date", NULL };
	static const char *const fkeys[] = { "type", "paFee", "vat", NULL };
	json_t *op, *proto, *fee, *recs, *docs;
	int64_t v = 0, t;
	char *s;

	check_keys(c, root, "", keys);
	if (get_int(c, root, "", "version", true, 0, INT32_MAX, &v) && v != SVC_ACT_VERSION)
		PROBLEM(c, "version", "unsupported version %lld (this send-bridge reads %d)",
			(long long)v, SVC_ACT_VERSION);
	a->version = (int)v;
	a->office = get_str(c, root, "", "office", true, 1, 64);
	if (a->office)
		check_office_name(c, "office", a->office);
	op = get_obj(c, root, "", "operator", true);
	if (op) {
		check_keys(c, op, "operator", okeys);
		a->operator_id = get_str(c, op, "operator", "userId", true, 1, 128);
		if (a->operator_id && !printable_ascii(a->operator_id))
			PROBLEM(c, "operator.userId", "printable ASCII only");
		a->operator_office = get_str(c, op, "operator", "office", false, 1, 64);
		if (a->operator_office)
			check_office_name(c, "operator.office", a->operator_office);
	}
	a->subject = get_str(c, root, "", "subject", true, 1, 134);
	a->abstract = get_str(c, root, "", "abstract", false, 0, 1024);
	a->taxonomy_code = get_str(c, root, "", "taxonomyCode", true, 1, 7);
	if (a->taxonomy_code && !sb_taxonomy_code_valid(a->taxonomy_code))
		PROBLEM(c, "taxonomyCode", "must be six digits and a capital letter, e.g. 010101P");
	a->group = get_str(c, root, "", "group", false, 1, 1024);
	if (a->group && !printable_ascii(a->group))
		PROBLEM(c, "group", "printable ASCII only");
	a->pagopa_int_mode = get_str(c, root, "", "pagoPaIntMode", false, 1, 5);
	if (a->pagopa_int_mode && strcmp(a->pagopa_int_mode, "NONE") &&
	    strcmp(a->pagopa_int_mode, "SYNC") && strcmp(a->pagopa_int_mode, "ASYNC"))
		PROBLEM(c, "pagoPaIntMode", "must be NONE, SYNC or ASYNC");
	proto = get_obj(c, root, "", "protocol", false);
	if (proto) {
		check_keys(c, proto, "protocol", pkeys);
		a->protocol_number = get_str(c, proto, "protocol", "number", true, 1, 256);
		if (a->protocol_number && !printable_ascii(a->protocol_number))
			PROBLEM(c, "protocol.number", "printable ASCII only");
		a->protocol_date = get_str(c, proto, "protocol", "date", true, 10, 10);
		if (a->protocol_date && !date_ok(a->protocol_date))
			PROBLEM(c, "protocol.date", "must be a date YYYY-MM-DD");
	}
	a->payment_expiration_date = get_str(c, root, "", "paymentExpirationDate", false, 10, 10);
	if (a->payment_expiration_date && !date_ok(a->payment_expiration_date))
		PROBLEM(c, "paymentExpirationDate", "must be a date YYYY-MM-DD");
	a->has_amount = get_int(c, root, "", "amount", false, 0, INT32_MAX, &a->amount);

	fee = get_obj(c, root, "", "feePolicy", true);
	if (fee) {
		check_keys(c, fee, "feePolicy", fkeys);
		s = get_str(c, fee, "feePolicy", "type", true, 1, 16);
		if (s && strcmp(s, "FLAT_RATE") && strcmp(s, "DELIVERY_MODE"))
			PROBLEM(c, "feePolicy.type", "must be FLAT_RATE or DELIVERY_MODE");
		a->fee_policy = s && !strcmp(s, "DELIVERY_MODE") ? SVC_FEE_DELIVERY_MODE
								 : SVC_FEE_FLAT_RATE;
		a->has_pa_fee = get_int(c, fee, "feePolicy", "paFee", false, 0, 100, &t);
		a->pa_fee = a->has_pa_fee ? t : 0;
		a->has_vat = get_int(c, fee, "feePolicy", "vat", false, 0, 100, &t);
		a->vat = a->has_vat ? t : 0;
		if (s && a->fee_policy == SVC_FEE_DELIVERY_MODE) {
			if (!json_object_get(fee, "paFee"))
				PROBLEM(c, "feePolicy.paFee",
					"required with DELIVERY_MODE (eurocent 0..100)");
			if (!json_object_get(fee, "vat"))
				PROBLEM(c, "feePolicy.vat",
					"required with DELIVERY_MODE (percent 0..100)");
		}
		free(s);
	}
	s = get_str(c, root, "", "physicalCommunicationType", true, 1, 32);
	if (s && strcmp(s, "AR_REGISTERED_LETTER") && strcmp(s, "REGISTERED_LETTER_890"))
		PROBLEM(c, "physicalCommunicationType",
			"must be AR_REGISTERED_LETTER or REGISTERED_LETTER_890");
	a->comm_type = s && !strcmp(s, "REGISTERED_LETTER_890") ? SVC_REGISTERED_LETTER_890
								 : SVC_AR_REGISTERED_LETTER;
	free(s);

	recs = get_array(c, root, "recipients", 1, SEND_MAX_RECIPIENTS, "");
	if (recs) {
		SB_ALLOC_ARRAY(a->recipients, json_array_size(recs));
		a->nrecipients = json_array_size(recs);
		for (size_t i = 0; i < a->nrecipients; i++)
			parse_recipient(c, json_array_get(recs, i), i, &a->recipients[i]);
		for (size_t i = 0; i < a->nrecipients; i++) {
			for (size_t j = 0; j < i; j++) {
				const char *x = a->recipients[i].tax_id,
					*y = a->recipients[j].tax_id;
				char where[64];

				if (x && y && !strcmp(x, y)) {
					snprintf(where, sizeof(where), "recipients[%zu].taxId", i);
					PROBLEM(c, where, "same tax id as recipients[%zu] "
						"(SEND refuses duplicates)", j);
				}
			}
		}
		check_payment_rules(c, a);
	}
	docs = get_array(c, root, "documents", 1, SEND_MAX_DOCUMENTS, "");
	if (docs) {
		static const char *const dkeys[] = { "file", "title", NULL };

		SB_ALLOC_ARRAY(a->documents, json_array_size(docs));
		a->ndocuments = json_array_size(docs);
		for (size_t i = 0; i < a->ndocuments; i++) {
			json_t *d = json_array_get(docs, i);
			char prefix[64];

			snprintf(prefix, sizeof(prefix), "documents[%zu]", i);
			if (!json_is_object(d)) {
				PROBLEM(c, prefix, "expected an object");
				continue;
			}
			check_keys(c, d, prefix, dkeys);
			a->documents[i].title = get_str(c, d, prefix, "title", true, 1, 512);
			get_file(c, d, prefix, "file", true, FILE_PDF, &a->documents[i].file);
		}
		check_unique_files(c, a);
	}
}

int svc_act_parse(struct svc_act **out, const char *dir, const char *json, size_t len,
		  bool hash, struct sb_problems *probs, struct sb_err *err)
{
	struct sb_problems local = SB_PROBLEMS_INIT;
	struct sb_err jerr = SB_ERR_INIT;
	struct svc_act *a = NULL;
	json_t *root = NULL;
	struct ctx c;
	const char *slash;
	int rc = 0;

	memset(&c, 0, sizeof(c));
	c.probs = probs ? probs : &local;
	c.hash = hash;
	/* The folder's real path, from the descriptor the files are opened under. */
	c.rootfd = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (c.rootfd >= 0 && fd_path(c.rootfd, c.root) < 0 && !realpath(dir, c.root)) {
		int e = errno;

		close(c.rootfd);
		c.rootfd = -1;
		errno = e;
	}
	if (c.rootfd < 0) {
		rc = sb_err_set(err, SB_ENOTFOUND, errno, "act folder '%s': %s", dir,
				strerror(errno));
		goto cleanup;
	}
	if (!sb_utf8_valid(json, len)) {
		PROBLEM(&c, "act.json", "not valid UTF-8 (the manifest must be UTF-8 encoded)");
		goto done;
	}
	if (sb_json_parse(json, len, SB_MAX_MANIFEST, "the manifest", &root, &jerr) < 0) {
		PROBLEM(&c, "act.json", "%s", jerr.msg);
		goto done;
	}
	if (!json_is_object(root)) {
		PROBLEM(&c, "act.json", "the manifest must be a JSON object");
		goto done;
	}
	a = sb_xcalloc(1, sizeof(*a));
	slash = strrchr(c.root, '/');
	a->id = sb_xstrdup(slash ? slash + 1 : c.root);
	a->dir = sb_xstrdup(c.root);
	parse_top(&c, root, a);
done:
	if (c.found) {
		rc = sb_err_set(err, SB_EINVAL, 0, "act '%s' has %zu problem(s)", dir, c.found);
		svc_act_free(a);
	} else {
		*out = a;
	}
cleanup:
	if (c.rootfd >= 0)
		close(c.rootfd);
	json_decref(root);
	sb_problems_release(&local);
	return rc;
}

int svc_act_load(struct svc_act **out, const char *dir, bool hash, struct sb_problems *probs,
		 struct sb_err *err)
{
	char path[PATH_MAX];
	struct sb_buf b = SB_BUF_INIT(SB_MAX_MANIFEST);
	char chunk[8192];
	struct stat st;
	int fd, rc;

	if ((size_t)snprintf(path, sizeof(path), "%s/act.json", dir) >= sizeof(path))
		return sb_err_set(err, SB_EINVAL, 0, "act folder path too long");
	/* O_NONBLOCK: an act.json that is a named pipe is refused, not waited on. */
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
	if (fd < 0) {
		if (probs)
			sb_problems_add(probs, "act.json", errno == ELOOP ?
					"must be a regular file, not a symbolic link" :
					"missing or unreadable: %s", strerror(errno));
		return sb_err_set(err, errno == ENOENT ? SB_ENOTFOUND : SB_EINVAL, errno,
				  "cannot open '%s': %s", path, strerror(errno));
	}
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		close(fd);
		if (probs)
			sb_problems_add(probs, "act.json", "not a regular file");
		return sb_err_set(err, SB_EINVAL, 0, "'%s' is not a regular file", path);
	}
	if ((uint64_t)st.st_size > SB_MAX_MANIFEST) {
		close(fd);
		if (probs)
			sb_problems_add(probs, "act.json", "too large (%llu bytes, max %u)",
					(unsigned long long)st.st_size, SB_MAX_MANIFEST);
		return sb_err_set(err, SB_ETOOBIG, 0, "'%s' larger than %u bytes", path,
				  SB_MAX_MANIFEST);
	}
	for (;;) {
		ssize_t n = read(fd, chunk, sizeof(chunk));

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		if (sb_buf_add(&b, chunk, (size_t)n) < 0)
			break;
	}
	close(fd);
	rc = svc_act_parse(out, dir, sb_buf_cstr(&b), b.len, hash, probs, err);
	sb_buf_release(&b);
	return rc;
}
