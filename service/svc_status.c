/*
 * The acts as staff see them: see svc_status.h. One query joins acts with
 * their notification, receipts, newest event and outcome; acts rejected at
 * intake come from outcomes alone (they never had a row in acts).
 */
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sb_common.h"
#include "sb_sql.h"
#include "sb_log.h"
#include "sb_time.h"
#include "svc_status.h"
#include "svc_store.h"

#define COLS                                                                              \
	" a.act_id, a.office, n.protocol_number, n.iun, a.state,"                         \
	" (SELECT e.category FROM events e WHERE e.iun = n.iun ORDER BY e.id DESC LIMIT 1)," \
	" coalesce(a.last_error, CASE n.status WHEN 'CANCELLED' THEN CASE WHEN EXISTS"  \
	"  (SELECT 1 FROM outcomes o WHERE o.act = a.id AND o.step = 'late')"           \
	"  THEN 'cancelled at SEND after it was notified' ELSE 'cancelled at SEND' END END)," \
	" (SELECT r.tax_id FROM recipients r WHERE r.act = a.id ORDER BY r.idx LIMIT 1),"  \
	" (SELECT r.denomination FROM recipients r WHERE r.act = a.id ORDER BY r.idx LIMIT 1)," \
	" (SELECT count(*) FROM recipients r WHERE r.act = a.id),"                        \
	" (SELECT count(*) FROM receipts c WHERE c.act = a.id),"                          \
	" coalesce(n.cost_cents, -1), a.updated_at,"                                      \
	" (SELECT CASE o.state WHEN 'closed' THEN 'done/' ELSE 'rejected/' END || o.folder" \
	"  FROM outcomes o WHERE o.act = a.id AND o.folder IS NOT NULL ORDER BY o.id DESC LIMIT 1)"

static const char query_sql[] =
	"SELECT" COLS " FROM acts a LEFT JOIN notifications n ON n.act = a.id"
	" WHERE (?1 IS NULL OR a.act_id = ?1 OR n.protocol_number = ?1 OR n.iun = ?1"
	"        OR EXISTS (SELECT 1 FROM recipients r"
	" WHERE r.act = a.id AND r.tax_id = upper(?1)))"
	"   AND (?2 IS NULL OR a.office = ?2) AND (?3 IS NULL OR a.state = ?3)"
	" UNION ALL"
	" SELECT o.act_id, NULL, NULL, NULL, o.state, NULL,"
	"  json_extract(o.reason, '$.problems[0].path') || ': ' ||"
	"  json_extract(o.reason, '$.problems[0].message'),"
	"  NULL, NULL, 0, 0, -1, o.at, 'rejected/' || o.folder"
	" FROM outcomes o WHERE o.act IS NULL AND (?1 IS NULL OR o.act_id = ?1)"
	"   AND ?2 IS NULL AND (?3 IS NULL OR ?3 = o.state)"
	" ORDER BY 13 DESC, 1 LIMIT ?4";

static char *dup_col(sqlite3_stmt *st, int i)
{
	const unsigned char *t = sqlite3_column_text(st, i);

	return t ? sb_xstrdup((const char *)t) : NULL;
}

static void bind_opt(sqlite3_stmt *st, int i, const char *v)
{
	if (v && *v)
		sqlite3_bind_text(st, i, v, (int)strlen(v), SQLITE_TRANSIENT);
	else
		sqlite3_bind_null(st, i);
}

int svc_status_list(struct svc_store *s, const struct svc_status_filter *f,
		    struct svc_status_row **rows_out, size_t *n_out, struct sb_err *err)
{
	sqlite3 *db = svc_store_db(s);
	sqlite3_stmt *st = NULL;
	struct svc_status_row *rows = NULL;
	size_t n = 0;
	int rc;

	rc = sb_sql_prepare(db, query_sql, &st);
	if (rc != SQLITE_OK)
		return sb_err_set(err, SB_EIO, rc, "store: listing acts: %s", sqlite3_errmsg(db));
	bind_opt(st, 1, f->query);
	bind_opt(st, 2, f->office);
	bind_opt(st, 3, f->state);
	sqlite3_bind_int64(st, 4, f->limit ? (int64_t)f->limit : -1);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		struct svc_status_row *r;

		rows = sb_xrealloc(rows, (n + 1) * sizeof(*rows));
		r = &rows[n++];
		r->act_id = dup_col(st, 0);
		r->office = dup_col(st, 1);
		r->protocol_number = dup_col(st, 2);
		r->iun = dup_col(st, 3);
		r->state = dup_col(st, 4);
		r->last_event = dup_col(st, 5);
		r->note = dup_col(st, 6);
		r->tax_id = dup_col(st, 7);
		r->denomination = dup_col(st, 8);
		r->nrecipients = sqlite3_column_int64(st, 9);
		r->receipts = sqlite3_column_int64(st, 10);
		r->cost_cents = sqlite3_column_int64(st, 11);
		r->updated_at = sqlite3_column_int64(st, 12);
		r->folder = dup_col(st, 13);
	}
	sb_sql_finish(st);
	if (rc != SQLITE_DONE) {
		svc_status_rows_free(rows, n);
		return sb_err_set(err, rc == SQLITE_BUSY ? SB_ETEMP : SB_EIO, rc,
				  "store: listing acts: %s", sqlite3_errmsg(db));
	}
	*rows_out = rows;
	*n_out = n;
	return 0;
}

void svc_status_rows_free(struct svc_status_row *rows, size_t n)
{
	for (size_t i = 0; rows && i < n; i++) {
		struct svc_status_row *r = &rows[i];

		free(r->act_id);
		free(r->office);
		free(r->protocol_number);
		free(r->iun);
		free(r->state);
		free(r->last_event);
		free(r->note);
		free(r->tax_id);
		free(r->denomination);
		free(r->folder);
	}
	free(rows);
}

const char *svc_status_recipient(const struct svc_status_row *r, bool personal, bool name,
				 char *buf, size_t size)
{
	const char *v = name ? r->denomination : r->tax_id;

	if (!v)
		return "";
	if (personal)
		return v;
	return sb_pii_mask(name ? SB_PII_NAME : SB_PII_TAXID, v, buf, size);
}

static const char *cost(const struct svc_status_row *r, char *buf, size_t size)
{
	if (r->cost_cents < 0)
		return "-";
	snprintf(buf, size, "%lld.%02lld", (long long)(r->cost_cents / 100),
		 (long long)(r->cost_cents % 100));
	return buf;
}

static const char *dash(const char *s)
{
	return s && *s ? s : "-";
}

void svc_status_print(FILE *out, const struct svc_status_row *rows, size_t n, bool personal)
{
	fprintf(out, "%-24s %-20s %-16s %-26s %-10s %-24s %-8s %-8s %-18s %s\n", "ACT", "OFFICE",
		"PROTOCOL", "IUN", "STATE", "LAST-EVENT", "RECEIPTS", "COST", "RECIPIENT", "NOTE");
	for (size_t i = 0; i < n; i++) {
		const struct svc_status_row *r = &rows[i];
		char tax[64], money[32], who[96];

		snprintf(who, sizeof(who), "%s%s",
			 dash(svc_status_recipient(r, personal, false, tax, sizeof(tax))),
			 r->nrecipients > 1 ? " +more" : "");
		fprintf(out, "%-24s %-20s %-16s %-26s %-10s %-24s %-8lld %-8s %-18s %s%s%s%s\n",
			r->act_id, dash(r->office), dash(r->protocol_number), dash(r->iun),
			r->state, dash(r->last_event), (long long)r->receipts,
			cost(r, money, sizeof(money)), who,
			r->note ? r->note : "", r->note && r->folder ? " " : "",
			r->folder && strcmp(r->state, "closed") ? "reason: " : "",
			r->folder && strcmp(r->state, "closed") ? r->folder : "");
	}
}

static int html_text(struct sb_buf *b, const char *s)
{
	int rc = 0;

	for (; s && *s && rc == 0; s++) {
		switch (*s) {
		case '<': rc = sb_buf_adds(b, "&lt;"); break;
		case '>': rc = sb_buf_adds(b, "&gt;"); break;
		case '&': rc = sb_buf_adds(b, "&amp;"); break;
		case '"': rc = sb_buf_adds(b, "&quot;"); break;
		case '\'': rc = sb_buf_adds(b, "&#39;"); break;
		default: rc = sb_buf_addch(b, *s);
		}
	}
	return rc;
}

int svc_status_html(struct sb_buf *b, const struct svc_status_row *rows, size_t n)
{
	static const char *const heads[] = { "act", "office", "protocol", "IUN", "state",
					     "last event", "receipts", "cost", "recipient",
					     "note" };
	int rc = sb_buf_adds(b, "<table><tr>");

	for (size_t i = 0; i < SB_ARRAY_SIZE(heads); i++)
		rc |= sb_buf_addf(b, "<th>%s</th>", heads[i]);
	rc |= sb_buf_adds(b, "</tr>\n");
	for (size_t i = 0; i < n && rc == 0; i++) {
		const struct svc_status_row *r = &rows[i];
		char tax[64], money[32], receipts[24];
		const char *cells[] = { r->act_id, dash(r->office), dash(r->protocol_number),
					dash(r->iun), r->state, dash(r->last_event), receipts,
					cost(r, money, sizeof(money)),
					dash(svc_status_recipient(r, false, false, tax,
								  sizeof(tax))),
					r->note ? r->note : "" };

		snprintf(receipts, sizeof(receipts), "%lld", (long long)r->receipts);
		rc |= sb_buf_adds(b, "<tr>");
		for (size_t k = 0; k < SB_ARRAY_SIZE(cells); k++) {
			rc |= sb_buf_adds(b, "<td>");
			rc |= html_text(b, cells[k]);
			rc |= sb_buf_adds(b, "</td>");
		}
		rc |= sb_buf_adds(b, "</tr>\n");
	}
	rc |= sb_buf_adds(b, "</table>\n");
	return rc < 0 ? SB_ETOOBIG : 0;
}
